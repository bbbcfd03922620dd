"""Sending Celery tasks without failing or stalling the caller: `publish` sends now, `enqueue_on_commit` after commit.

Either way the row the task is about was stored first and is the outbox: a task that could not be
sent (the broker down or hung) is found again by a periodic sweeper, so callers never retry here.
"""

import logging

from django.db import transaction

from .breaker import redis_breaker

logger = logging.getLogger(__name__)


def publish(task, *args) -> bool:
    """Send now, inside or outside a transaction; False when the broker cannot be reached.

    A broker that does not answer within REDIS_PUBLISH_TIMEOUT opens the process's circuit breaker
    (config.breaker): until it closes, publishing is skipped at once instead of waiting again.
    Inside a transaction, send only what may run before the commit (or use `enqueue_on_commit`).
    """
    if not redis_breaker.allow():
        logger.info("enqueue skipped: the broker timed out recently; the sweeper will pick it up",
                    extra={"task": task.name, "task_args": list(args)})
        return False
    try:
        task.apply_async(args=list(args), retry=False)
    except Exception as exc:  # noqa: BLE001 — kombu raises OperationalError, OSError, redis errors…
        redis_breaker.failed(exc)
        logger.warning("enqueue failed; the sweeper will pick it up",
                       extra={"task": task.name, "task_args": list(args), "error": repr(exc)})
        return False
    redis_breaker.succeeded()
    return True


def enqueue_on_commit(task, *args) -> None:
    """`publish` once the current transaction commits (at once outside one), so the task sees the stored row."""
    transaction.on_commit(lambda: publish(task, *args))
