"""Queueing an account's push: after commit, only when none is queued (the mark); the sweeper for what the queue lost.

The lead row is the outbox: a push that could not be queued (the broker down or hung) loses
nothing, because the sweeper (beat, every 30 s) queues a push for every account with leads
waiting. See leads/push/mark.py for the mark that keeps one push queued per account.
"""

import logging
from datetime import timedelta

from django.db import transaction

from config.queue import publish

from .. import marks, selectors
from . import mark

logger = logging.getLogger(__name__)

# The sweeper leaves fresh leads to the task their request queued.
SWEEP_AFTER = timedelta(seconds=10)


def lead_schedule_push(*, account_id: int) -> None:
    """After the current transaction commits, queue a push for the account unless one is already queued.

    A broker that is down loses nothing: the lead stays pending and the sweeper queues it.
    """
    transaction.on_commit(lambda: _publish_push(account_id))


def _publish_push(account_id: int) -> bool:
    try:
        if not mark.place(account_id):
            return False
    except marks.Unavailable:
        return False  # Redis, the broker too, timed out moments ago: the sweeper queues the push
    except Exception as exc:  # noqa: BLE001 — without the cache, queue every time
        logger.warning("push debounce unavailable", extra={"error": repr(exc)})
    return publish_marked_push(account_id)


def publish_marked_push(account_id: int) -> bool:
    """Queue the push whose mark this caller set; give the mark back when the broker is down."""
    if publish(_push_task(), account_id):
        return True
    mark.clear(account_id)
    return False


def leads_sweep() -> int:
    """Queue a push for every connected account with leads the queue may have lost; returns how many."""
    task = _push_task()
    return sum(publish(task, account_id) for account_id in selectors.accounts_to_sweep(pending_for=SWEEP_AFTER))


def _push_task():
    """The push task. Imported when needed: leads/tasks.py imports this module (the allowed task ↔ service pair)."""
    from ..tasks import push_account_leads

    return push_account_leads
