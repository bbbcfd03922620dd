"""App config for leads: connects the signal receivers (default source, resumed pushes, CORS per source)."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = _("Leads")

    def ready(self) -> None:
        from . import receivers  # noqa: F401 — importing connects the receivers
        from .intake import cors  # noqa: F401
