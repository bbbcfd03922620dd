"""Enqueue a task after the current transaction commits, without ever failing or stalling the request over it."""

import logging

from django.db import transaction

from .breaker import redis_breaker

logger = logging.getLogger(__name__)


def publish(task, *args) -> bool:
    """Send now; False when the broker cannot be reached (the stored row stays the outbox for the sweeper).

    A broker that does not answer within REDIS_PUBLISH_TIMEOUT opens the process's circuit breaker
    (config.breaker): until it closes, publishing is skipped at once instead of waiting again.
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
    transaction.on_commit(lambda: publish(task, *args))
