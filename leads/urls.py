"""Lead intake URLs."""

from django.urls import path

from .intake.api import LeadIntakeApi, LeadIntakeNoSlashApi

urlpatterns = [
    path("api/leads/", LeadIntakeApi.as_view(), name="lead-intake"),
    # Without the slash too: a form builder's webhook URL is easily mistyped, and a redirect would
    # turn the POST into a GET.
    path("api/leads", LeadIntakeNoSlashApi.as_view()),
]
