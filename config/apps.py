"""App config for project-wide pieces: system checks and Celery signal hooks."""

from django.apps import AppConfig


class ConfigAppConfig(AppConfig):
    name = "config"
    label = "config"
    verbose_name = "Project"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
