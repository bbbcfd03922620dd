"""amoCRM URLs: OAuth callback and the webhook receiver."""

from django.urls import path

from . import views

urlpatterns = [
    path("amocrm/oauth/callback/", views.oauth_callback, name="amocrm-oauth-callback"),
    path("api/webhooks/amocrm/<str:key>/", views.webhook_receive, name="amocrm-webhook"),
]
