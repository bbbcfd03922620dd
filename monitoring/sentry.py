"""Error tracking with Sentry (optional: nothing happens without SENTRY_DSN), with personal data and secrets scrubbed.

Web (Django), workers and beat (Celery) report errors; beat's periodic tasks are monitored as
Sentry cron monitors (a missed or failed run shows there). Nothing personal leaves the process:
`send_default_pii=False` (no user, no IP, no cookies), no request bodies, and every string of an
event and of its breadcrumbs goes through `scrub`: phone numbers, email addresses, tokens (bearer,
JWT, Telegram bot tokens, encrypted values), key=value secrets, and the URL secrets of our paths
(the webhook key, a lead hook secret; config.logging.mask_url_secrets). Values under secret-looking
keys are replaced whole (config.logging.redact).

Called from settings, before Django's apps load: no model imports here.
"""

import re

from config.logging import REDACTED, mask_url_secrets, redact

# The top-level domain has a letter: a release such as amocrm-django@0.1.0 is not an address.
EMAIL = re.compile(r"[\w.%+-]+@[\w-]+(?:\.[\w-]+)*\.[A-Za-z][\w-]*")
# Ten or more digits with the usual separators: +7 (912) 345-67-89, 89123456789, +79123456789.
PHONE = re.compile(r"(?<![\w])\+?\d(?:[\s().-]{0,3}\d){9,15}(?![\w])")
BEARER = re.compile(r"(?i)\b(bearer|token)\s+[\w.~+/=-]{8,}")
JWT = re.compile(r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*")
TELEGRAM_TOKEN = re.compile(r"(?<!\d)\d{6,12}:[\w-]{30,}")  # also inside ".../bot<token>/..."
FERNET = re.compile(r"fernet:[\w=-]+")
KEY_VALUE = re.compile(
    r"(?i)\b(access_token|refresh_token|client_secret|secret|password|code|token|api_key|key)"
    r"([\"']?\s*[=:]\s*[\"']?)([^\s&\"',;()\[\]{}]{4,})"
)


def scrub(text: str) -> str:
    """The text without personal data or secrets (see the module docstring for what is removed)."""
    text = mask_url_secrets(text)
    text = TELEGRAM_TOKEN.sub("[token]", text)
    text = JWT.sub("[token]", text)
    text = FERNET.sub("[encrypted]", text)
    text = BEARER.sub(lambda match: f"{match.group(1)} [token]", text)
    text = KEY_VALUE.sub(lambda match: f"{match.group(1)}{match.group(2)}{REDACTED}", text)
    text = EMAIL.sub("[email]", text)
    return PHONE.sub("[phone]", text)


def _scrub_value(value, depth: int = 0):
    if depth > 20:
        return value
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrub_value(item, depth + 1) for key, item in redact(value).items()}
    if isinstance(value, list | tuple):
        return [_scrub_value(item, depth + 1) for item in value]
    return value


# Event fields the SDK fills from the configuration, never from data: left as they are.
TRUSTED_FIELDS = {"release", "environment", "sdk", "modules", "platform", "event_id", "timestamp", "level"}


def before_send(event, hint):
    logentry = event.get("logentry")
    if isinstance(logentry, dict):
        # A log call's arguments are bare values (a token is just a string): only the scrubbed text goes.
        logentry.pop("params", None)
    return {key: value if key in TRUSTED_FIELDS else _scrub_value(value) for key, value in event.items()}


def before_breadcrumb(crumb, hint):
    return _scrub_value(crumb)


def init_sentry(*, dsn: str, environment: str, release: str, traces_sample_rate: float = 0.0, **options) -> None:
    """Start the SDK for this process (web, worker or beat), with the Django and Celery integrations."""
    import sentry_sdk
    from sentry_sdk.integrations.celery import CeleryIntegration
    from sentry_sdk.integrations.django import DjangoIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release,
        integrations=[DjangoIntegration(), CeleryIntegration(monitor_beat_tasks=True)],
        send_default_pii=False,
        max_request_body_size="never",
        before_send=before_send,
        before_send_transaction=before_send,
        before_breadcrumb=before_breadcrumb,
        traces_sample_rate=traces_sample_rate,
        **options,
    )
