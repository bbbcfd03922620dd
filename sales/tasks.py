"""Sales Celery tasks: the hourly reconciliation that catches webhook deliveries amoCRM lost."""

from celery import shared_task

from amocrm.errors import TransientError
from config.queue import publish

from . import reconcile


@shared_task(name="sales.tasks.reconcile_all_accounts", ignore_result=True)
def reconcile_all_accounts() -> int:
    """Fan out one reconciliation per connected account (each retries on its own)."""
    return sum(publish(reconcile_account, account_id) for account_id in reconcile.accounts_to_reconcile())


# A transient amoCRM error (network, 5xx, 429) retries with exponential backoff and full jitter (30 s,
# 60 s … 30 min), so accounts that failed together do not retry together; any other error does not.
@shared_task(name="sales.tasks.reconcile_account", ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=5, autoretry_for=(TransientError,), retry_backoff=30,
             retry_backoff_max=1800, retry_jitter=True)
def reconcile_account(account_id: int) -> int:
    """List the account's deals updated since its checkpoint and apply them (idempotent)."""
    return reconcile.account_reconcile_deals(account_id=account_id)
