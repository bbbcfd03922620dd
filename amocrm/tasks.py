"""amoCRM Celery tasks: thin wrappers that take ids and call services."""

from celery import shared_task
from django.conf import settings

from . import services, tokens
from .errors import TransientError
from .models import Account
from .webhooks.health import accounts_check_webhooks
from .webhooks.processing import webhook_event_process, webhook_events_sweep


@shared_task(name="amocrm.tasks.refresh_expiring_tokens", ignore_result=True)
def refresh_expiring_tokens() -> int:
    """Refresh tokens expiring within the hour; also keeps idle accounts' refresh tokens alive."""
    return tokens.account_refresh_expiring_tokens()


@shared_task(name="amocrm.tasks.prune_sync_log", ignore_result=True)
def prune_sync_log() -> int:
    """Delete the sync log older than SYNC_LOG_RETENTION_DAYS, in batches."""
    return services.sync_log_prune(older_than_days=settings.SYNC_LOG_RETENTION_DAYS)


@shared_task(name="amocrm.tasks.prune_webhook_events", ignore_result=True)
def prune_webhook_events() -> int:
    """Delete webhook deliveries older than WEBHOOK_EVENT_RETENTION_DAYS, in batches."""
    return services.webhook_events_prune(older_than_days=settings.WEBHOOK_EVENT_RETENTION_DAYS)


# Transient errors only (network, 429, 5xx): 5 s, 10 s, 20 s … at most 10 minutes, each a random part
# of that (full jitter), so deliveries that failed together do not retry together. Permanent errors
# end the delivery `failed` inside the service, visible for "Reprocess".
@shared_task(name="amocrm.tasks.process_webhook_event", bind=True, ignore_result=True, acks_late=True,
             reject_on_worker_lost=True, autoretry_for=(TransientError,), retry_backoff=5, retry_backoff_max=600,
             retry_jitter=True, max_retries=8)
def process_webhook_event(self, event_id: int) -> str:
    """Parse and apply one stored webhook delivery (idempotent: a second run changes nothing)."""
    return webhook_event_process(event_id=event_id)


@shared_task(name="amocrm.tasks.sweep_webhook_events", ignore_result=True)
def sweep_webhook_events() -> int:
    """Enqueue stored deliveries that were never processed (the broker was down when they arrived)."""
    return webhook_events_sweep()


@shared_task(name="amocrm.tasks.check_webhooks", ignore_result=True)
def check_webhooks() -> dict:
    """Beat: each connected account's webhook subscription still there and enabled; re-created once if not."""
    return accounts_check_webhooks()


@shared_task(name="amocrm.tasks.sync_account_metadata", ignore_result=True)
def sync_account_metadata(account_id: int) -> None:
    services.account_sync_metadata(account=Account.objects.get(pk=account_id))


@shared_task(name="amocrm.tasks.check_account_connection", ignore_result=True)
def check_account_connection(account_id: int) -> dict:
    """One authenticated call; used by operators (and the e2e tests) to exercise the connection."""
    return services.account_test_connection(account=Account.objects.get(pk=account_id))


@shared_task(name="amocrm.tasks.subscribe_webhook", ignore_result=True)
def subscribe_webhook(account_id: int, attempt: int) -> bool:
    """Try the webhook subscription again after a passing error; the service queues the next try if needed."""
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.can_call_api or account.webhook_subscribed_at:
        return False
    return services.account_subscribe_webhook(account=account, attempt=attempt)
