"""Django app config for the conversions export."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ConversionsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversions"
    verbose_name = _("Conversions to ad platforms")
