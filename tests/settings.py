"""Test settings: the project settings with PostgreSQL and Redis on 127.0.0.1 unless the env says otherwise."""

import os

# Hermetic: a developer's .env must not change what the tests see.
os.environ["ENV_FILE"] = ""
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/amocrm")
# A Redis database of its own, so tests never touch a developer's queues or cache.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SITE_URL", "http://testserver")
os.environ.setdefault("AMOCRM_TRUSTED_HOSTS", "http://sandbox.test,http://127.0.0.1:8765")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# English unless a test asks for another language (Accept-Language, translation.override): the tests
# read English texts; the Russian catalogues are checked by tests/test_translations.py.
os.environ.setdefault("LANGUAGE_CODE", "en")
# One id per pytest run, inherited through the environment by the workers and servers a test
# starts (the `subprocess_env` fixture). It names this run's test database, cache key prefix and
# Celery queue, so runs side by side (CI next to a developer, two checkouts) never see each
# other's rows, keys or tasks.
TEST_RUN_ID = os.environ.setdefault("TEST_RUN_ID", str(os.getpid()))

from config.settings import *  # noqa: E402,F403
from config.settings import CACHES, DATABASES  # noqa: E402

ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{TEST_RUN_ID}"}
CACHES["default"]["KEY_PREFIX"] = f"amo:test-{TEST_RUN_ID}"
CELERY_TASK_DEFAULT_QUEUE = f"test-{TEST_RUN_ID}"
