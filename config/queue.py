"""Enqueue a task after the current transaction commits, without ever failing the request over it."""

import logging

from django.db import transaction

logger = logging.getLogger(__name__)


def publish(task, *args) -> bool:
    """Send now; False when the broker cannot be reached (the stored row stays the outbox for the sweeper)."""
    try:
        task.apply_async(args=list(args), retry=False)
        return True
    except Exception as exc:  # noqa: BLE001 — kombu raises OperationalError, OSError, redis errors…
        logger.warning("enqueue failed; the sweeper will pick it up",
                       extra={"task": task.name, "task_args": list(args), "error": repr(exc)})
        return False


def enqueue_on_commit(task, *args) -> None:
    transaction.on_commit(lambda: publish(task, *args))
