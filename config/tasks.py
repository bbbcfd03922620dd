"""Project-wide tasks: the worker heartbeat shown by /healthz/."""

import logging
import time

from celery import shared_task
from django.core.cache import cache

HEARTBEAT_KEY = "worker:heartbeat"

logger = logging.getLogger(__name__)


@shared_task(name="config.tasks.heartbeat", ignore_result=True)
def heartbeat() -> float:
    """Record that a worker consumed a task just now (beat sends one every 30 s)."""
    now = time.time()
    cache.set(HEARTBEAT_KEY, now, timeout=24 * 3600)
    logger.info("worker heartbeat recorded")
    return now
