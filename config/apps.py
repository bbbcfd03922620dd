"""App config for project-wide pieces: system checks and Celery signal hooks."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConfigAppConfig(AppConfig):
    name = "config"
    label = "config"
    verbose_name = _("Project")

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
