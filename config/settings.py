"""Django settings, all driven by the environment (see .env.example for every variable)."""

import importlib.util
import os
import re
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

from config.conversions import read as _conversion_settings

BASE_DIR = Path(__file__).resolve().parent.parent


class _Env(environ.Env):
    """django-environ, except that an empty variable (`NAME=` in .env) counts as unset."""

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        if self.ENVIRON.get(f"{self.prefix}{var}") != "" or default is self.NOTSET:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        return self.parse_value(default, cast) if parse_default and default is not None else default


env = _Env()
# A local .env is read when present; real environment variables always win. ENV_FILE names
# another file, or none when empty (the tests use that so a developer's .env cannot leak in).
ENV_FILE = os.environ.get("ENV_FILE")
if ENV_FILE is None:
    if (BASE_DIR / ".env").is_file():
        env.read_env(BASE_DIR / ".env", overwrite=False)
elif ENV_FILE:
    if not Path(ENV_FILE).is_file():
        raise ImproperlyConfigured(f"ENV_FILE names {ENV_FILE}, which is not a file.")
    env.read_env(ENV_FILE, overwrite=False)

VERSION = "0.1.0"

# ------------------------------------------------------------------------------
# Core
# ------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

# Directory for everything the embedded mode writes (SQLite file, broker queue, cache).
VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()


def _required_in_production(name: str, dev_default: str) -> str:
    """Return the variable, or a development default; refuse to start without it when DEBUG is off."""
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default
    raise ImproperlyConfigured(
        f"{name} must be set when DEBUG is off (see .env.example for how to generate one)."
    )


SECRET_KEY = _required_in_production(
    "SECRET_KEY", "django-insecure-development-only-key-never-use-in-production-0123456789"
)
# Fernet keys (comma-separated, newest first) that encrypt client secrets and tokens at rest.
_DEV_FIELD_ENCRYPTION_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE="
FIELD_ENCRYPTION_KEY = [
    key.strip() for key in _required_in_production("FIELD_ENCRYPTION_KEY", _DEV_FIELD_ENCRYPTION_KEY).split(",")
    if key.strip()
]

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
PORT = env.int("PORT", default=8000)
# Public base URL of this site; webhook and OAuth redirect URLs are built from it.
SITE_URL = env.str("SITE_URL", default=f"http://localhost:{PORT}").rstrip("/")
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[SITE_URL])

INSTALLED_APPS = [
    "unfold",  # the admin's theme (config/unfold.py); before django.contrib.admin so its templates win
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "corsheaders",
    "config.apps.ConfigAppConfig",
    "amocrm.apps.AmocrmConfig",
    "leads.apps.LeadsConfig",
    "sales.apps.SalesConfig",
    "monitoring.apps.MonitoringConfig",
    "conversions.apps.ConversionsConfig",
]
# The amoCRM sandbox (a fake amoCRM for tests, benchmarks and demos, `manage.py amocrm_sandbox`) lives
# next to the product in a checkout but is left out of the production image: an app only where it exists.
if importlib.util.find_spec("amocrm_sandbox") is not None:
    INSTALLED_APPS.append("amocrm_sandbox")

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",  # the language: session/cookie (the switcher), then the browser
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The language when neither the switcher nor the browser's Accept-Language picks one of LANGUAGES.
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="ru")
LANGUAGES = [("ru", "Русский"), ("en", "English")]
# Per-app catalogues sit in <app>/locale; this one holds templates/ and config/.
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# ------------------------------------------------------------------------------
# Database
# ------------------------------------------------------------------------------
# Default: a SQLite file, so `make run` needs no server. Tests, CI and production use
# PostgreSQL through psycopg 3 (DATABASE_URL=postgres://...).
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the worker and beat read while one of them writes; the busy
    # timeout makes a writer wait for the lock instead of failing; IMMEDIATE transactions take
    # the write lock up front so two writers never deadlock upgrading a read lock.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
    DATABASES["default"]["CONN_MAX_AGE"] = 0
else:
    # Persistent connections (with a health check before reuse) save a TCP + auth round trip
    # per request: the intake endpoint's budget is a few milliseconds.
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
# No ATOMIC_REQUESTS: services open their own short transactions where they need them and
# enqueue tasks with transaction.on_commit; wrapping every request (webhook ingest, intake)
# in a transaction would only hold locks longer and add round trips.
DATABASES["default"]["ATOMIC_REQUESTS"] = False

# ------------------------------------------------------------------------------
# Redis outages on the request path: short timeouts and a circuit breaker
# ------------------------------------------------------------------------------
# A Redis that hangs must not hang the intake or the webhook receiver: the database carries the
# outbox and the double-click check. Connect and reply timeout of the intake's Redis calls
# (leads.marks: throttle, double click, push mark), seconds.
REDIS_INTAKE_TIMEOUT = env.float("REDIS_INTAKE_TIMEOUT", default=0.5)
# Connect and reply timeout of the broker (publishing a task; the worker's own calls too), seconds.
REDIS_PUBLISH_TIMEOUT = env.float("REDIS_PUBLISH_TIMEOUT", default=1.0)
# After a Redis call times out, this process skips Redis for this long, then one call probes it (config.breaker).
REDIS_BREAKER_SECONDS = env.float("REDIS_BREAKER_SECONDS", default=10.0)

# ------------------------------------------------------------------------------
# Redis, cache, Celery
# ------------------------------------------------------------------------------
# REDIS_URL: broker, cache (throttles, idempotency window) and the shared rate limiter.
# Unset: an embedded filesystem broker and file cache under VAR_DIR (one machine only).
REDIS_URL = env.str("REDIS_URL", default="")

if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "amo",
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

CELERY_BROKER_URL = REDIS_URL or "filesystem://localhost//"
CELERY_BROKER_DIR = VAR_DIR / "broker"
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=300)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=240)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "default"
# Publishing must not hang a web request when the broker is down: fail fast, the outbox
# sweepers enqueue what was missed.
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
if REDIS_URL:
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {"socket_connect_timeout": REDIS_PUBLISH_TIMEOUT, "socket_timeout": REDIS_PUBLISH_TIMEOUT,
         "visibility_timeout": 3600}
    )
else:
    CELERY_BROKER_TRANSPORT_OPTIONS.update(
        {
            "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
            "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
            "control_folder": str(CELERY_BROKER_DIR / "control"),
            "store_processed": False,
        }
    )
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# ------------------------------------------------------------------------------
# Django REST framework and OpenAPI
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exceptions.api_exception_handler",
    "DEFAULT_THROTTLE_RATES": {"lead_intake": env.str("LEAD_INTAKE_THROTTLE", default="30/min")},
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "amoCRM integration API",
    "DESCRIPTION": "Website lead intake and amoCRM webhooks.",
    "VERSION": VERSION,
    "SERVE_INCLUDE_SCHEMA": False,
}

# Number of reverse proxies in front of the app whose X-Forwarded-For entries are trusted
# when recording a visitor's IP (0: use REMOTE_ADDR only).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# CORS is decided per lead source (leads.intake.cors); nothing is allowed globally.
CORS_ALLOW_ALL_ORIGINS = False
CORS_URLS_REGEX = r"^/api/leads/?$"
CORS_ALLOW_HEADERS = ["accept", "content-type", "idempotency-key", "x-requested-with"]

# ------------------------------------------------------------------------------
# amoCRM
# ------------------------------------------------------------------------------
AMOCRM_RATE_LIMIT = env.float("AMOCRM_RATE_LIMIT", default=7)
# Length of the limiter's sliding window, seconds: a little over amoCRM's second absorbs timing jitter.
AMOCRM_RATE_WINDOW = env.float("AMOCRM_RATE_WINDOW", default=1.2)
AMOCRM_PROXY = env.str("AMOCRM_PROXY", default="")
# Extra origins accepted as account hosts besides *.amocrm.ru, *.amocrm.com, *.kommo.com.
AMOCRM_TRUSTED_HOSTS = env.list("AMOCRM_TRUSTED_HOSTS", default=[])
AMOCRM_OAUTH_URL = env.str("AMOCRM_OAUTH_URL", default="")
AMOCRM_CONNECT_TIMEOUT = env.float("AMOCRM_CONNECT_TIMEOUT", default=5)
AMOCRM_READ_TIMEOUT = env.float("AMOCRM_READ_TIMEOUT", default=30)
SYNC_LOG_RETENTION_DAYS = env.int("SYNC_LOG_RETENTION_DAYS", default=30)
PHONE_DEFAULT_REGION = env.str("PHONE_DEFAULT_REGION", default="RU")

# ------------------------------------------------------------------------------
# amoCRM webhooks: per-key rate, work per task run, retention
# ------------------------------------------------------------------------------
# Deliveries accepted per webhook key, as "N/period" (s, min, hour, day); more are answered 429
# and not stored. Generous on purpose: amoCRM disables an endpoint after 100 failed deliveries in
# two hours and a bulk change sends many deliveries at once, so this only stops a flood from a
# leaked key.
WEBHOOK_THROTTLE = env.str("WEBHOOK_THROTTLE", default="600/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", WEBHOOK_THROTTLE):
    raise ImproperlyConfigured(f"WEBHOOK_THROTTLE must look like 600/min, not {WEBHOOK_THROTTLE!r}.")
# Posts accepted per lead source on its form-builder hook (/api/leads/hook/<secret>/), which has no per-IP limit.
LEAD_HOOK_THROTTLE = env.str("LEAD_HOOK_THROTTLE", default="600/min")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", LEAD_HOOK_THROTTLE):
    raise ImproperlyConfigured(f"LEAD_HOOK_THROTTLE must look like 600/min, not {LEAD_HOOK_THROTTLE!r}.")
# Items (events) of one delivery handled per task run; a larger delivery continues in follow-up
# runs, so one run stays well inside the task time limit.
WEBHOOK_ITEMS_PER_RUN = env.int("WEBHOOK_ITEMS_PER_RUN", default=1000)
# Days of webhook deliveries kept before the periodic prune.
WEBHOOK_EVENT_RETENTION_DAYS = env.int("WEBHOOK_EVENT_RETENTION_DAYS", default=30)

# ------------------------------------------------------------------------------
# Security
# ------------------------------------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
# Only the `preload` directive in the header (check --deploy asks for it); getting onto the
# browsers' preload list is a separate, manual submission at hstspreload.org.
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Admin messages in the session (the database), not a cookie: some carry the webhook URL, whose key is a secret.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"
# The intake endpoint caps bodies itself (64 KiB); this is the global ceiling for forms.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
SILENCED_SYSTEM_CHECKS = env.list("SILENCED_SYSTEM_CHECKS", default=[])

from .unfold import UNFOLD  # noqa: E402,F401  (the admin's theme: names, sidebar, language switcher)

# ------------------------------------------------------------------------------
# Admin security: login lockout (django-axes)
# ------------------------------------------------------------------------------
# Failed admin log-ins are counted per user name and client address (the address as
# config.net.client_ip sees it, so TRUSTED_PROXY_COUNT applies and a forged X-Forwarded-For
# does not reset the count); AXES_FAILURE_LIMIT failures lock that pair out for
# AXES_COOLOFF_MINUTES (0: until `manage.py axes_reset_username NAME`). Keyed on the pair, so
# guessing from one address cannot lock the real operator out from another.
INSTALLED_APPS += ["axes"]
# Last: it turns axes' lockout signal into the lockout page.
MIDDLEWARE += ["axes.middleware.AxesMiddleware"]
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_MINUTES = env.int("AXES_COOLOFF_MINUTES", default=30)
AXES_COOLOFF_TIME = timedelta(minutes=AXES_COOLOFF_MINUTES) if AXES_COOLOFF_MINUTES > 0 else None
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "config.net.client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "admin/login_locked.html"
# No start-up line on stdout (`manage.py amocrm_connect --json` prints exactly one JSON object);
# failed and locked-out log-ins are still logged as warnings.
AXES_VERBOSE = False

# ------------------------------------------------------------------------------
# Admin security: Content-Security-Policy (django-csp) and self-hosted API docs
# ------------------------------------------------------------------------------
# One policy for every response (admin pages add 'unsafe-eval': config/csp.py). Scripts only from our
# own origin, never inline, so an injected <script> or onclick= cannot run; nothing is loaded from
# another origin. Styles allow 'unsafe-inline' (and only styles): the admin's badges and pre blocks
# use style attributes and Swagger UI sets inline styles, while injected CSS cannot send anything
# anywhere because every fetch directive is 'self'. img-src allows data: for the icons inside Swagger UI's stylesheet.
# No form-action: the Connect action's form answers with a redirect to amoCRM's consent page,
# which browsers check against form-action.
INSTALLED_APPS += ["csp", "drf_spectacular_sidecar"]
# config.csp: django-csp's middleware plus 'unsafe-eval' for the admin's Alpine.js, on /admin/ pages only.
MIDDLEWARE.insert(MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
                  "config.csp.AdminAwareCSPMiddleware")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "frame-ancestors": [NONE],
    },
}
# Swagger UI from the drf-spectacular-sidecar package (collected into our static files), its
# init script a separate file (SpectacularSwaggerSplitView in config/urls.py), no online
# validator (it would send the schema URL to swagger.io).
SPECTACULAR_SETTINGS.update({
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
})

# ------------------------------------------------------------------------------
# Monitoring: alerts, status API, Prometheus metrics
# ------------------------------------------------------------------------------
# Alert email goes through Django's email backend: EMAIL_URL as django-environ reads it
# (smtp+tls://user:password@host:587, smtps://..., consolemail://, dummymail://). Unset: the console
# backend with DEBUG (messages printed), otherwise no email at all (an email channel then fails
# visibly with "the mail server did not accept the message").
vars().update(env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "dummymail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="amocrm-alerts@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=15)
# How often beat evaluates the alert rules, seconds.
ALERTS_EVALUATE_SECONDS = env.int("ALERTS_EVALUATE_SECONDS", default=60)
# Conversions to the ad platforms: goal names, the Yandex Metrika upload (config/conversions.py).
globals().update(_conversion_settings(env))
# GET /api/status/: `Authorization: Bearer $STATUS_TOKEN` (or a staff session). Unset: staff sessions only.
STATUS_TOKEN = env.str("STATUS_TOKEN", default="")
# GET /metrics: `Authorization: Bearer $METRICS_TOKEN`, or a client address in METRICS_ALLOWED_IPS
# (addresses or networks, comma-separated, e.g. 10.0.0.0/8; the address as config.net.client_ip sees it).
# Neither set: /metrics refuses everyone (loopback is allowed with DEBUG, for `make run`).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"] if DEBUG else [])
# Prometheus scrapes over the internal network, without TLS: no https redirect for /metrics.
SECURE_REDIRECT_EXEMPT += [r"^metrics$"]
# Where every process writes its metric samples (prometheus-client's multiprocess mode), one directory per
# process group below it (monitoring/multiprocess.py). The web and worker processes of one host must share it
# (docker compose: the `metrics` volume) for /metrics to show the workers' pushes too.
METRICS_DIR = Path(env.str("METRICS_DIR", default=str(VAR_DIR / "metrics"))).resolve()
try:
    from monitoring.multiprocess import default_group as _metrics_group

    _metrics_group(METRICS_DIR)
except OSError as exc:
    raise ImproperlyConfigured(f"METRICS_DIR {METRICS_DIR} cannot be written: {exc.strerror}.") from exc

# ------------------------------------------------------------------------------
# Error tracking: Sentry (optional)
# ------------------------------------------------------------------------------
# Nothing is sent without SENTRY_DSN. Web, worker and beat report errors, beat's tasks are monitored,
# personal data and secrets are scrubbed from every event (monitoring/sentry.py).
SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production")
# Share of requests and tasks traced for performance monitoring (0: errors only).
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
if SENTRY_DSN:
    from monitoring.sentry import init_sentry

    init_sentry(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=f"amocrm-django@{VERSION}",
                traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)

# ------------------------------------------------------------------------------
# Logging: one line of JSON per record on stdout, with the request id.
# ------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logging.RequestIdFilter"}},
    "formatters": {"json": {"()": "config.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        # Only the JSON handler: Django's own plain-text console handler (active with DEBUG) would
        # print django.request lines a second time, unmasked ("Not Found: /api/webhooks/amocrm/<key>/").
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        # runserver's request lines, JSON like the rest (Django gives them a plain-text handler).
        "django.server": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "urllib3": {"level": "WARNING"},
    },
}
