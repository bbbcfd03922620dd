"""App config for monitoring: alerts, the status API, Prometheus metrics and error tracking."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = _("Monitoring and alerts")
    default_auto_field = "django.db.models.BigAutoField"
