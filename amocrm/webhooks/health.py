"""Webhook health: is our subscription still there and enabled in amoCRM? Re-create it once by itself if not.

amoCRM disables a destination that failed too often and never says so (docs/amocrm.md); deals then
change without a single delivery. A beat task (`check_webhooks`) lists the account's subscriptions
(`GET /api/v4/webhooks`), finds ours by its destination and records what it saw on the account
(`webhook_state`, `webhook_checked_at`). A subscription disabled, missing, or missing some of our
events is re-created once (`webhook_resubscribed_at`); when that fails, or when it is found broken
again within RESUBSCRIBE_COOLDOWN of the last re-creation (amoCRM keeps disabling it: something is
wrong on our side), the state stays disabled/missing and the alert rule "webhook disabled or
missing" (monitoring/rules.py) tells a person.
"""

import logging
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from ..client import AmoCRMClient
from ..errors import AmoCRMError
from ..models import Account, WebhookState
from ..services import WEBHOOK_EVENTS, account_subscribe_webhook

logger = logging.getLogger(__name__)

# A subscription re-created this recently and broken again is left to a person (one automatic attempt per problem).
RESUBSCRIBE_COOLDOWN = timedelta(hours=24)


def subscription_state(webhooks: list[dict], destination: str) -> str:
    """ok, disabled or missing: our destination's subscription among the listed ones (missing events: missing)."""
    ours = [hook for hook in webhooks if hook.get("destination") == destination]
    if not ours:
        return WebhookState.MISSING
    if any(hook.get("disabled") for hook in ours):
        return WebhookState.DISABLED
    if not set(WEBHOOK_EVENTS) <= set(ours[0].get("settings") or []):
        return WebhookState.MISSING
    return WebhookState.OK


def _record(account: Account, state: str, now: datetime, **extra) -> None:
    Account.objects.filter(pk=account.pk).update(webhook_state=state, webhook_checked_at=now, **extra)


def account_check_webhook(*, account_id: int, now: datetime | None = None) -> str:
    """Check one connected account's subscription; returns the state recorded (or "skipped", "unknown").

    A failed listing (amoCRM down, token trouble) records nothing but the time: other rules cover
    an unreachable amoCRM, and a guess here would raise a second alarm for the same cause.
    """
    now = now or timezone.now()
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.can_call_api:
        return "skipped"
    try:
        state = subscription_state(AmoCRMClient(account).webhooks_list(), account.webhook_url)
    except AmoCRMError as exc:
        logger.warning("webhook check failed", extra={"account": account.pk, "error": str(exc)})
        return "unknown"
    if state == WebhookState.OK:
        _record(account, state, now)
        return state
    recent = account.webhook_resubscribed_at and now - account.webhook_resubscribed_at < RESUBSCRIBE_COOLDOWN
    if recent or not account_subscribe_webhook(account=account):
        logger.error("webhook subscription broken", extra={"account": account.pk, "webhook_state": state,
                                                           "resubscribed_recently": bool(recent)})
        _record(account, state, now)
        return state
    logger.warning("webhook subscription re-created", extra={"account": account.pk, "was": state})
    _record(account, WebhookState.OK, now, webhook_resubscribed_at=now)
    return WebhookState.OK


def accounts_check_webhooks() -> dict[int, str]:
    """Check every connected account's subscription; {account id: state}."""
    ids = Account.objects.filter(state=Account.State.CONNECTED).order_by("pk").values_list("pk", flat=True)
    return {account_id: account_check_webhook(account_id=account_id) for account_id in ids}


def account_deals_changed_seen(*, account_id: int, changed_at: datetime | None) -> None:
    """Reconciliation saw a deal changed at `changed_at` in amoCRM: kept when later than the one recorded.

    The rule "no webhook while deals change" compares it with the last delivery received.
    """
    if changed_at is not None:
        Account.objects.filter(pk=account_id).filter(
            Q(deals_changed_seen_at__isnull=True) | Q(deals_changed_seen_at__lt=changed_at)
        ).update(deals_changed_seen_at=changed_at)
