"""amoCRM Celery tasks: thin wrappers that take ids and call services."""

import logging
import random

from celery import shared_task
from django.conf import settings

from . import services

logger = logging.getLogger(__name__)


@shared_task(name="amocrm.tasks.refresh_expiring_tokens", ignore_result=True)
def refresh_expiring_tokens() -> int:
    """Refresh tokens expiring within the hour; also keeps idle accounts' refresh tokens alive."""
    return services.account_refresh_expiring_tokens()


@shared_task(name="amocrm.tasks.prune_sync_log", ignore_result=True)
def prune_sync_log() -> int:
    """Delete the sync log older than SYNC_LOG_RETENTION_DAYS, in batches."""
    return services.sync_log_prune(older_than_days=settings.SYNC_LOG_RETENTION_DAYS)


@shared_task(name="amocrm.tasks.prune_webhook_events", ignore_result=True)
def prune_webhook_events() -> int:
    """Delete webhook deliveries older than WEBHOOK_EVENT_RETENTION_DAYS, in batches."""
    return services.webhook_events_prune(older_than_days=settings.WEBHOOK_EVENT_RETENTION_DAYS)


@shared_task(name="amocrm.tasks.process_webhook_event", bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, max_retries=8)
def process_webhook_event(self, event_id: int) -> str:
    """Parse and apply one stored webhook delivery (idempotent: a second run changes nothing)."""
    from .errors import AmoCRMError
    from .webhooks.processing import webhook_event_process

    try:
        return webhook_event_process(event_id=event_id)
    except AmoCRMError as exc:
        if not exc.transient:
            raise
        # Exponential backoff with jitter, so deliveries that failed together do not retry together.
        countdown = min(600, 2 ** self.request.retries * 5) * random.uniform(0.5, 1.5)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(name="amocrm.tasks.sweep_webhook_events", ignore_result=True)
def sweep_webhook_events() -> int:
    """Enqueue stored deliveries that were never processed (the broker was down when they arrived)."""
    from .webhooks.processing import webhook_events_sweep

    return webhook_events_sweep()


@shared_task(name="amocrm.tasks.sync_account_metadata", ignore_result=True)
def sync_account_metadata(account_id: int) -> None:
    from .models import Account

    services.account_sync_metadata(account=Account.objects.get(pk=account_id))


@shared_task(name="amocrm.tasks.check_account_connection", ignore_result=True)
def check_account_connection(account_id: int) -> dict:
    """One authenticated call; used by operators (and the e2e tests) to exercise the connection."""
    from .models import Account

    return services.account_test_connection(account=Account.objects.get(pk=account_id))
