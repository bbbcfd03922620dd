"""Lead intake URLs."""

from django.urls import re_path

from .apis import LeadIntakeApi

urlpatterns = [
    # With and without the trailing slash: a form builder's webhook URL is easy to mistype, and a
    # redirect would turn the POST into a GET.
    re_path(r"^api/leads/?$", LeadIntakeApi.as_view(), name="lead-intake"),
]
