"""Read-only views of the integration's health: the status API's answer and the state metrics' numbers.

Built for a million leads: outstanding leads come from the partial outbox index
(leads_lead_outstanding_idx) in one grouped query; the big statuses (sent, failed, spam) from one
grouped count cached for LEAD_COUNTS_CACHE_SECONDS; the latest webhook and the latest push from
backwards walks of the time indexes. Nothing iterates over leads.
"""

from datetime import datetime, timedelta

from django.core.cache import cache
from django.db.models import Count
from django.utils import timezone

from amocrm.crypto import redact
from amocrm.models import Account, SyncLog, Token, WebhookEvent, WebhookState
from config.logging import mask_url_secrets
from leads.models import Lead

from .models import Incident
from .rules import last_webhook_at, pending_by_account

LEAD_COUNTS_CACHE_SECONDS = 60
LEAD_COUNTS_KEY = "monitoring:lead-counts"
# The push calls in the sync log (one per batch of leads).
PUSH_OPERATIONS = ("leads.complex", "unsorted.create")
PUSH_LOOKBACK = timedelta(days=31)


def lead_counts_by_status() -> dict[int, dict[str, int]]:
    """{account id: {status: count}} for every status, the big ones cached (one scan of leads a minute at most)."""
    counts = cache.get(LEAD_COUNTS_KEY)
    if counts is None:
        counts = {}
        rows = (Lead.objects.exclude(status__in=[Lead.Status.PENDING, Lead.Status.SENDING])
                .values("account", "status").annotate(n=Count("pk")).order_by())
        for row in rows:
            counts.setdefault(row["account"], {})[row["status"]] = row["n"]
        cache.set(LEAD_COUNTS_KEY, counts, LEAD_COUNTS_CACHE_SECONDS)
    counts = {account_id: dict(by_status) for account_id, by_status in counts.items()}
    # The outstanding ones always exact, from the partial index.
    outstanding = (Lead.objects.filter(status__in=[Lead.Status.PENDING, Lead.Status.SENDING])
                   .values("account", "status").annotate(n=Count("pk")).order_by())
    for row in outstanding:
        counts.setdefault(row["account"], {})[row["status"]] = row["n"]
    return counts


def last_push_at(account_id: int, *, now: datetime) -> datetime | None:
    """When a push last reached amoCRM: the latest successful push call in the sync log (its account index)."""
    return (SyncLog.objects.filter(account_id=account_id, created_at__gte=now - PUSH_LOOKBACK,
                                   operation__in=PUSH_OPERATIONS, status=SyncLog.Status.OK)
            .order_by("-created_at").values_list("created_at", flat=True).first())


def webhook_state(account: Account, token: Token | None = None) -> dict:
    """The subscription: the health check's state (ok, disabled, missing) once it ran, else the last subscribe's."""
    state = account.webhook_state
    if state == WebhookState.UNKNOWN:
        if account.webhook_error:
            state = "error"
        elif account.webhook_subscribed_at:
            state = "subscribed"
        else:
            state = "not_subscribed"
    return {
        "state": state,
        "subscribed_at": account.webhook_subscribed_at,
        "checked_at": account.webhook_checked_at,
        "resubscribed_at": account.webhook_resubscribed_at,
        "deals_changed_seen_at": account.deals_changed_seen_at,
        "error": error_text(account.webhook_error, account, token) or "",
    }


# Shorter values are not replaced inside texts: replacing every "ab" would garble the message.
SCRUB_MIN_LENGTH = 8


def error_text(text: str, account: Account, token: Token | None) -> str | None:
    """An error stored for the account as operators may read it: its own secrets and URL secrets cut to …last4."""
    if not text:
        return None
    secrets = [account.client_secret, account.webhook_key]
    if token is not None:
        secrets += [token.access_token, token.refresh_token]
    for secret in secrets:
        if secret and len(secret) >= SCRUB_MIN_LENGTH:
            text = text.replace(secret, redact(secret))
    return mask_url_secrets(text)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def status_overview(*, now: datetime | None = None) -> dict:
    """The answer of GET /api/status/: overall status and one entry per account (no secrets).

    Overall:
    - "down": no account is connected (none configured, or every one needs re-authorization, is
      blocked, disabled or not connected): no lead can reach amoCRM;
    - "degraded": some account is connected, but an account (not disabled) is not healthy (needs
      re-authorization, blocked, not connected, token expiring, last call failed), or an alert
      incident is open;
    - "ok": otherwise.
    """
    now = now or timezone.now()
    accounts = list(Account.objects.all().order_by("name", "pk"))
    tokens = {token.account_id: token for token in Token.objects.filter(account__in=accounts)}
    for account in accounts:
        if account.pk in tokens:
            account.token = tokens[account.pk]  # health() reads it; no query per account
    pending = pending_by_account()
    counts = lead_counts_by_status()
    open_incidents: dict[int | None, list[str]] = {}
    for account_id, kind in Incident.objects.filter(resolved_at__isnull=True).values_list("account", "rule__kind"):
        open_incidents.setdefault(account_id, []).append(kind)

    entries = []
    for account in accounts:
        token = tokens.get(account.pk)
        outstanding = pending.get(account.pk, {})
        oldest = outstanding.get("oldest")
        entries.append({
            "id": account.pk,
            "name": account.name,
            "state": account.state,
            "health": account.health(),
            "token_expires_at": _iso(token.expires_at) if token else None,
            "token_long_lived": token.long_lived if token else None,
            "last_success_at": _iso(account.last_success_at),
            "last_error_at": _iso(account.last_error_at),
            "last_error": error_text(account.last_error, account, token),
            "webhook": {key: _iso(value) if isinstance(value, datetime) else value
                        for key, value in webhook_state(account, token).items()},
            "last_webhook_at": _iso(last_webhook_at(account.pk, now=now)),
            "leads": {
                "pending": counts.get(account.pk, {}).get(Lead.Status.PENDING, 0)
                + counts.get(account.pk, {}).get(Lead.Status.SENDING, 0),
                "failed": counts.get(account.pk, {}).get(Lead.Status.FAILED, 0),
                "oldest_pending_at": _iso(oldest),
                "oldest_pending_age_seconds": int((now - oldest).total_seconds()) if oldest else None,
                "last_push_at": _iso(last_push_at(account.pk, now=now)),
            },
            "open_incidents": sorted(open_incidents.get(account.pk, [])),
        })

    active = [entry for entry in entries if entry["state"] != Account.State.DISABLED]
    if not any(entry["state"] == Account.State.CONNECTED for entry in active):
        overall = "down"
    elif any(entry["health"] != "connected" for entry in active) or open_incidents:
        overall = "degraded"
    else:
        overall = "ok"
    return {"status": overall, "checked_at": now.isoformat(), "accounts": entries}


def webhook_backlog(*, now: datetime) -> tuple[int, float]:
    """Deliveries stored but not processed yet, and the age in seconds of the oldest (state index)."""
    row = WebhookEvent.objects.filter(state=WebhookEvent.State.RECEIVED).order_by("received_at").values_list(
        "received_at", flat=True)
    oldest = row.first()
    count = WebhookEvent.objects.filter(state=WebhookEvent.State.RECEIVED).count()
    return count, (now - oldest).total_seconds() if oldest else 0.0
