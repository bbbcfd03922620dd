"""Sales Celery tasks: the hourly reconciliation that catches webhook deliveries amoCRM lost."""

import random

from celery import shared_task

from amocrm.errors import AmoCRMError
from config.queue import publish

from . import services


@shared_task(name="sales.tasks.reconcile_all_accounts", ignore_result=True)
def reconcile_all_accounts() -> int:
    """Fan out one reconciliation per connected account (each retries on its own)."""
    account_ids = services.accounts_to_reconcile()
    return sum(publish(reconcile_account, account_id) for account_id in account_ids)


@shared_task(name="sales.tasks.reconcile_account", bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=5)
def reconcile_account(self, account_id: int) -> int:
    """List the account's deals updated since its checkpoint and apply them (idempotent)."""
    try:
        return services.account_reconcile_deals(account_id=account_id)
    except AmoCRMError as exc:
        if not exc.transient:
            raise
        # Exponential backoff with jitter, so accounts that failed together do not retry together.
        countdown = min(1800, 2 ** self.request.retries * 30) * random.uniform(0.75, 1.25)
        raise self.retry(exc=exc, countdown=countdown) from exc
