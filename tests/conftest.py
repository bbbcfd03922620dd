"""Shared fixtures; refuses to run when PostgreSQL or Redis does not answer."""

import socket
from urllib.parse import urlparse

import pytest


def _answers(url: str, default_port: int) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def pytest_configure(config):
    from django.conf import settings

    problems = []
    db = settings.DATABASES["default"]
    if db["ENGINE"] != "django.db.backends.postgresql":
        problems.append("DATABASE_URL must point at PostgreSQL for the tests.")
    elif not _answers(f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432):
        problems.append(
            f"PostgreSQL does not answer at {db.get('HOST')}:{db.get('PORT') or 5432}. Start it with:\n"
            "  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    if not settings.REDIS_URL or not _answers(settings.REDIS_URL, 6379):
        problems.append(
            f"Redis does not answer at {settings.REDIS_URL or '(REDIS_URL unset)'}. Start it with:\n"
            '  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
        )
    if problems:
        raise pytest.UsageError("The tests need real services:\n" + "\n".join(problems))


@pytest.fixture(autouse=True)
def _clean_cache():
    """Every test starts with an empty cache (throttles, locks, idempotency windows)."""
    from django.core.cache import cache

    cache.clear()
    yield
