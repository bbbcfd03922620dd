"""Lead Celery tasks: thin wrappers that take ids and call the push engine and the sweeper."""

import logging

from celery import shared_task

from config.queue import publish

from .push import engine, schedule

logger = logging.getLogger(__name__)


@shared_task(name="leads.tasks.push_account_leads", bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=None)
def push_account_leads(self, account_id: int) -> dict:
    """Push the account's due leads. Idempotent: a second run finds them sent (or adopts what was created)."""
    outcome = engine.leads_push(account_id=account_id)
    if outcome.retry_in is not None:
        # Backoff with jitter is computed by the engine from the leads' attempts.
        raise self.retry(countdown=outcome.retry_in)
    if outcome.more:
        publish(push_account_leads, account_id)
    return outcome.as_dict()


@shared_task(name="leads.tasks.sweep_pending_leads", ignore_result=True)
def sweep_pending_leads() -> int:
    """Queue pushes for leads whose own task never ran (broker down) or whose push died (beat, every 30 s)."""
    return schedule.leads_sweep()
