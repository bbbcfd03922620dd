"""App config for leads: connects the signal receivers (default source, resumed pushes, CORS per source)."""

from django.apps import AppConfig


class LeadsConfig(AppConfig):
    name = "leads"
    verbose_name = "Leads"

    def ready(self) -> None:
        from . import receivers  # noqa: F401 — importing connects the receivers
        from .intake import cors  # noqa: F401
