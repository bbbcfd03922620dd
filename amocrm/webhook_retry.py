"""Trying a webhook subscription again after a passing error (429, 5xx, network), with backoff, by itself.

Right after Connect amoCRM may answer 429 or 5xx to the subscription; nothing would subscribe again
until an operator noticed, and deals won meanwhile would wait for the hourly reconciliation. The
retry is the Celery task `amocrm.tasks.subscribe_webhook`, sent by name (the task module imports the
services, which call this), with the account's `webhook_retry_at` shown as "will retry at …".
"""

import logging
from datetime import datetime, timedelta

from celery import current_app
from django.db import transaction
from django.utils import timezone

from config.retry import backoff_seconds

from .models import Account

logger = logging.getLogger(__name__)

TASK_NAME = "amocrm.tasks.subscribe_webhook"
# 30 s, 1 min, 2 min … up to 30 min between tries, for about 6 hours in all.
BASE_SECONDS, CAP_SECONDS, MAX_ATTEMPTS = 30, 1800, 16


def webhook_retry_schedule(*, account_id: int, attempt: int) -> datetime | None:
    """Queue try number `attempt` + 1 after the backoff and record when; None when the tries are used up.

    A first failure (a click on Subscribe, the health check, a connect) while a series of tries is
    already waiting starts no second series: the pending one's time is returned and nothing is queued.
    """
    if attempt >= MAX_ATTEMPTS:
        Account.objects.filter(pk=account_id).update(webhook_retry_at=None)
        return None
    if attempt == 0:
        pending = (Account.objects.filter(pk=account_id, webhook_retry_at__gt=timezone.now())
                   .values_list("webhook_retry_at", flat=True).first())
        if pending is not None:
            return pending
    delay = backoff_seconds(attempt + 1, base=BASE_SECONDS, cap=CAP_SECONDS)
    retry_at = timezone.now() + timedelta(seconds=delay)
    Account.objects.filter(pk=account_id).update(webhook_retry_at=retry_at)
    transaction.on_commit(lambda: _send(account_id, attempt + 1, delay))
    return retry_at


def _send(account_id: int, attempt: int, delay: float) -> None:
    try:
        current_app.send_task(TASK_NAME, args=[account_id, attempt], countdown=delay, retry=False)
    except Exception as exc:  # noqa: BLE001 — kombu raises OperationalError, OSError, redis errors…
        # The account page still shows the error and the "Subscribe webhook" button.
        logger.warning("webhook subscription retry not queued", extra={"account": account_id, "error": repr(exc)})
        Account.objects.filter(pk=account_id).update(webhook_retry_at=None)
