"""GET /healthz/: the database and the broker answer within short timeouts, or 503 naming what failed."""

import logging
import os
import time

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .tasks import HEARTBEAT_KEY

logger = logging.getLogger(__name__)


def check_database() -> None:
    # SET LOCAL only lasts inside a transaction (in autocommit it is a no-op with a warning).
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL statement_timeout = 2000")
        cursor.execute("SELECT 1")


def check_broker() -> None:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
        return
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]
    os.makedirs(folder, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise OSError(f"broker folder {folder} is not writable")


def worker_state() -> str:
    """Informational only: a stopped worker does not make the web tier unhealthy."""
    try:
        seen = cache.get(HEARTBEAT_KEY)
    except Exception:  # noqa: BLE001 (the cache may live on the broker that just failed)
        return "unknown"
    if seen is None:
        return "unknown"
    return "ok" if time.time() - float(seen) < 120 else "stale"


@never_cache
@require_GET
def healthz(request):
    body = {"status": "ok", "version": settings.VERSION}
    failed = False
    for name, check in (("database", check_database), ("broker", check_broker)):
        try:
            check()
            body[name] = "ok"
        except Exception as exc:  # noqa: BLE001 (any failure means "not healthy"; the detail goes to the log only)
            logger.warning("health check failed", extra={"component": name, "error": repr(exc)})
            body[name] = "unavailable"
            failed = True
    body["worker"] = worker_state() if not failed else "unknown"
    if failed:
        body["status"] = "unavailable"
    return JsonResponse(body, status=503 if failed else 200)
