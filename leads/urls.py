"""Lead intake URLs: the public form intake and the form-builder hook."""

from django.urls import path

from .intake.api import LeadIntakeApi, LeadIntakeNoSlashApi
from .intake.hook import LeadHookApi, LeadHookNoSlashApi

urlpatterns = [
    path("api/leads/", LeadIntakeApi.as_view(), name="lead-intake"),
    # Without the slash too: a form builder's webhook URL is easily mistyped, and a redirect would
    # turn the POST into a GET.
    path("api/leads", LeadIntakeNoSlashApi.as_view()),
    path("api/leads/hook/<str:secret>/", LeadHookApi.as_view(), name="lead-hook"),
    path("api/leads/hook/<str:secret>", LeadHookNoSlashApi.as_view()),
]
