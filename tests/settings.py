"""Test settings: the project settings with PostgreSQL and Redis on 127.0.0.1 unless the env says otherwise."""

import os

os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/amocrm")
# A Redis database of its own, so tests never touch a developer's queues or cache.
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SITE_URL", "http://testserver")
os.environ.setdefault("AMOCRM_TRUSTED_HOSTS", "http://sandbox.test,http://127.0.0.1:8765")
os.environ.setdefault("LOG_LEVEL", "WARNING")

from config.settings import *  # noqa: E402,F403

ALLOWED_HOSTS = ["*"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
