"""App config for project-wide pieces: system checks, Celery signal hooks and the ready-made groups' upkeep."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConfigAppConfig(AppConfig):
    name = "config"
    label = "config"
    verbose_name = _("Project")

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from . import checks  # noqa: F401  (registers the system checks)
        from .roles import complete_integration_admins

        post_migrate.connect(complete_integration_admins, dispatch_uid="config.roles.complete_integration_admins")
