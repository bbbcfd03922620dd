"""Monitoring URLs: the status API and the Prometheus endpoint."""

from django.urls import path

from . import views

urlpatterns = [
    path("api/status/", views.StatusApi.as_view(), name="monitoring-status"),
    path("metrics", views.metrics_view, name="monitoring-metrics"),
]
