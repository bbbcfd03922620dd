"""System checks for dangerous configuration combinations."""

from cryptography.fernet import Fernet
from django.conf import settings
from django.core.checks import Error, Warning, register


@register(deploy=False)
def check_configuration(app_configs, **kwargs):
    messages = []
    for key in settings.FIELD_ENCRYPTION_KEY:
        try:
            Fernet(key)
        except (ValueError, TypeError):
            messages.append(
                Error(
                    "FIELD_ENCRYPTION_KEY holds a value that is not a Fernet key.",
                    hint="Generate one: python -c "
                    "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'",
                    id="config.E001",
                )
            )
    if not settings.DEBUG:
        if not settings.SITE_URL.startswith("https://"):
            messages.append(
                Warning(
                    "SITE_URL is not https while DEBUG is off: amoCRM webhooks and OAuth redirects need https.",
                    id="config.W001",
                )
            )
        if settings.AMOCRM_TRUSTED_HOSTS:
            messages.append(
                Warning(
                    "AMOCRM_TRUSTED_HOSTS is set while DEBUG is off: client secrets may be sent to those hosts.",
                    hint="Use it for sandboxes and tests only.",
                    id="config.W002",
                )
            )
        if not settings.REDIS_URL:
            messages.append(
                Warning(
                    "REDIS_URL is not set while DEBUG is off: the embedded broker, cache and rate limiter "
                    "work on one machine only.",
                    id="config.W003",
                )
            )
        if "sqlite" in settings.DATABASES["default"]["ENGINE"]:
            messages.append(
                Warning("DATABASE_URL is SQLite while DEBUG is off: use PostgreSQL in production.", id="config.W004")
            )
    return messages
