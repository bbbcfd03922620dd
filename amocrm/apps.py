"""App config for the amoCRM connection."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class AmocrmConfig(AppConfig):
    name = "amocrm"
    verbose_name = _("amoCRM connection")
