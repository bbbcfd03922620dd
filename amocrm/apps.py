"""App config for the amoCRM connection."""

from django.apps import AppConfig


class AmocrmConfig(AppConfig):
    name = "amocrm"
    verbose_name = "amoCRM"
