"""Every Prometheus metric family of the product, and the one-line functions the code calls to record events.

Events (a lead accepted, an amoCRM call answered, a webhook delivery) are counters and histograms
that the process doing the work records through the functions below; in multiprocess mode (see
monitoring/multiprocess.py) they land in files that `/metrics` merges across gunicorn and Celery
processes. State (leads by status, token expiry, queue depth, lag) is not recorded here: it is read
from the database and Redis when Prometheus scrapes (monitoring/collectors.py).

A recording function never raises: a metric must not break the work it measures.

Metric names follow Prometheus' conventions: `amocrm_` prefix, `_total` counters, base units
(seconds), small label sets (operation, status, reason: a handful of values each, never ids of
leads or deals).
"""

import functools
import logging
from datetime import datetime
from decimal import Decimal

from prometheus_client import Counter, Histogram

logger = logging.getLogger(__name__)

# Push latency (accepted → sent): seconds to hours, since a lead may wait for a reconnect.
PUSH_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 24 * 3600)
# One amoCRM call: milliseconds to the 30 s read timeout.
REQUEST_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
# Waiting for a rate-limiter slot: nothing to the limiter's give-up time.
LIMITER_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)

LEADS_INTAKE = Counter(
    "amocrm_leads_intake", "Lead submissions answered by the intake, by outcome and reason.", ["outcome", "reason"]
)
LEADS_PUSHED = Counter(
    "amocrm_leads_pushed", "Leads a push finished with, by outcome (sent, failed, retry).", ["outcome"]
)
PUSH_LATENCY = Histogram(
    "amocrm_lead_push_latency_seconds", "Seconds from a lead being accepted to its deal existing in amoCRM.",
    buckets=PUSH_BUCKETS,
)
AMOCRM_REQUESTS = Counter(
    "amocrm_requests", "amoCRM API calls by operation and HTTP status (\"error\": no answer).", ["operation", "status"]
)
AMOCRM_REQUEST_SECONDS = Histogram(
    "amocrm_request_duration_seconds", "Duration of amoCRM API calls by operation.", ["operation"],
    buckets=REQUEST_BUCKETS,
)
AMOCRM_RATE_LIMITED = Counter("amocrm_rate_limited", "amoCRM answers 429 Too Many Requests.")
LIMITER_WAIT = Histogram(
    "amocrm_rate_limiter_wait_seconds", "Seconds a call waited for a slot of the per-account rate limiter.",
    buckets=LIMITER_BUCKETS,
)
TOKEN_REFRESHES = Counter("amocrm_token_refreshes", "Token refreshes by outcome (ok, failed, revoked).", ["outcome"])
WEBHOOK_DELIVERIES = Counter(
    "amocrm_webhook_deliveries", "Webhook deliveries by the HTTP status the receiver answered.", ["status"]
)
WEBHOOK_EVENTS = Counter(
    "amocrm_webhook_events", "Webhook deliveries processed, by the state they ended in.", ["state"]
)
SALES = Counter("amocrm_sales", "Sales recorded (won) and reverted, by currency.", ["event", "currency"])
REVENUE = Counter(
    "amocrm_sales_revenue", "Amount of the sales recorded (won) and reverted, by currency.", ["event", "currency"]
)
ALERT_NOTIFICATIONS = Counter(
    "amocrm_alert_notifications", "Alert messages sent through channels, by channel kind and outcome.",
    ["channel", "outcome"],
)
ALERT_EVALUATIONS = Counter("amocrm_alert_evaluations", "Runs of the alert rules' evaluation, by outcome.", ["outcome"])

# Known label values start at 0 in every process, so a dashboard shows a flat line, not "no data".
for _reason in ("new", "duplicate", "idempotent", "spam"):
    LEADS_INTAKE.labels(outcome="accepted", reason=_reason)
for _reason in ("invalid", "unknown_source", "origin", "throttled", "too_large", "media_type", "conflict", "error"):
    LEADS_INTAKE.labels(outcome="refused", reason=_reason)
for _outcome in ("sent", "failed", "retry"):
    LEADS_PUSHED.labels(outcome=_outcome)
for _outcome in ("ok", "failed", "revoked"):
    TOKEN_REFRESHES.labels(outcome=_outcome)
for _status in ("200", "403", "404", "413", "429"):
    WEBHOOK_DELIVERIES.labels(status=_status)
for _state in ("processed", "ignored", "duplicate", "failed", "rejected"):
    WEBHOOK_EVENTS.labels(state=_state)
for _kind in ("email", "telegram", "webhook"):
    for _outcome in ("sent", "failed"):
        ALERT_NOTIFICATIONS.labels(channel=_kind, outcome=_outcome)
for _outcome in ("ok", "error"):
    ALERT_EVALUATIONS.labels(outcome=_outcome)


def _safe(record):
    """Run a recording function; log and swallow anything it raises (a full disk, a bad label)."""

    def wrapper(*args, **kwargs):
        try:
            record(*args, **kwargs)
        except Exception:  # noqa: BLE001 (a metric never breaks the work it measures)
            logger.warning("metric not recorded", extra={"metric": record.__name__}, exc_info=True)

    wrapper.__name__ = record.__name__
    wrapper.__doc__ = record.__doc__
    return wrapper


@_safe
def lead_accepted(reason: str = "new") -> None:
    """The intake stored a lead (reason: new, spam) or answered with an earlier one (duplicate, idempotent)."""
    LEADS_INTAKE.labels(outcome="accepted", reason=reason).inc()


@_safe
def lead_refused(reason: str) -> None:
    """The intake refused a submission (invalid, unknown_source, origin, throttled, too_large, media_type, conflict)."""
    LEADS_INTAKE.labels(outcome="refused", reason=reason).inc()


@_safe
def lead_pushed(outcome: str, count: int = 1) -> None:
    """A push finished with `count` leads: sent, failed (gave up or refused by amoCRM) or retry (backed off)."""
    if count:
        LEADS_PUSHED.labels(outcome=outcome).inc(count)


@_safe
def push_latency(seconds: float) -> None:
    """A lead's deal exists in amoCRM `seconds` after the lead was accepted."""
    PUSH_LATENCY.observe(max(0.0, seconds))


# The intake's refusals by exception class name (DRF's and the intake's own), so this module imports neither.
REFUSAL_REASONS = {
    "ValidationError": "invalid", "ParseError": "invalid", "PermissionDenied": "origin", "Throttled": "throttled",
    "PayloadTooLarge": "too_large", "UnsupportedMediaType": "media_type", "IdempotencyKeyReused": "conflict",
}


def refusal_reason(exc: BaseException) -> str:
    """The reason label of an exception the intake answered with; an unknown source is a ValidationError on it."""
    reason = REFUSAL_REASONS.get(type(exc).__name__, "error")
    detail = getattr(exc, "detail", None)
    if reason == "invalid" and isinstance(detail, dict) and set(detail) == {"source"}:
        return "unknown_source"
    return reason


@_safe
def lead_refused_by(exc: BaseException) -> None:
    """The intake answered a submission with `exc` (its view's handle_exception): counted by refusal_reason."""
    lead_refused(refusal_reason(exc))


@_safe
def lead_sent(accepted_at: datetime | None, sent_at: datetime | None = None) -> None:
    """One lead's deal exists in amoCRM: counts it sent and observes accepted → sent."""
    LEADS_PUSHED.labels(outcome="sent").inc()
    if accepted_at is not None:
        PUSH_LATENCY.observe(max(0.0, ((sent_at or datetime.now(accepted_at.tzinfo)) - accepted_at).total_seconds()))


@_safe
def amocrm_request(operation: str, status: int | str | None, seconds: float) -> None:
    """One amoCRM call answered `status` (None: no answer) after `seconds`; a 429 also counts as rate limited."""
    AMOCRM_REQUESTS.labels(operation=operation, status=str(status) if status is not None else "error").inc()
    AMOCRM_REQUEST_SECONDS.labels(operation=operation).observe(max(0.0, seconds))
    if status == 429:
        AMOCRM_RATE_LIMITED.inc()


@_safe
def limiter_wait(seconds: float) -> None:
    """A call waited `seconds` for a slot of its account's rate limiter."""
    LIMITER_WAIT.observe(max(0.0, seconds))


@_safe
def token_refresh(outcome: str) -> None:
    """A token refresh call ended: ok, failed (transient: network, 5xx) or revoked (needs re-authorization)."""
    TOKEN_REFRESHES.labels(outcome=outcome).inc()


@_safe
def webhook_delivery(status: int) -> None:
    """The webhook receiver answered a delivery with `status` (200, 403, 404, 411, 413, 429)."""
    WEBHOOK_DELIVERIES.labels(status=str(status)).inc()


@_safe
def webhook_event(state: str) -> None:
    """A stored delivery was processed and ended `state` (processed, ignored, duplicate, failed, rejected)."""
    WEBHOOK_EVENTS.labels(state=state).inc()


@_safe
def sale_recorded(amount: Decimal | float | int, currency: str) -> None:
    """A deal became a sale (or was won again) for `amount` in `currency`."""
    SALES.labels(event="won", currency=currency or "none").inc()
    REVENUE.labels(event="won", currency=currency or "none").inc(float(amount or 0))


@_safe
def sale_reverted(amount: Decimal | float | int, currency: str) -> None:
    """A sale left the won stage or its deal was deleted; its amount no longer counts as revenue."""
    SALES.labels(event="reverted", currency=currency or "none").inc()
    REVENUE.labels(event="reverted", currency=currency or "none").inc(float(amount or 0))


WON = "won"


@_safe
def sale_moved(old_state: str, new_state: str, amount: Decimal | float | int, currency: str) -> None:
    """A sale changed state: into won counts a sale and its revenue, out of won a reversal of its amount."""
    if new_state == WON and old_state != WON:
        sale_recorded(amount, currency)
    elif old_state == WON and new_state != WON:
        sale_reverted(amount, currency)


def counts_webhook_deliveries(view):
    """Decorates the webhook receiver: every answer it gives is counted by status (webhook_delivery)."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        webhook_delivery(response.status_code)
        return response

    return wrapper


@_safe
def alert_notification(channel_kind: str, outcome: str) -> None:
    """An alert message through a channel of `channel_kind` was sent or failed."""
    ALERT_NOTIFICATIONS.labels(channel=channel_kind, outcome=outcome).inc()


@_safe
def alert_evaluation(outcome: str) -> None:
    """One evaluation of the alert rules finished: ok or error."""
    ALERT_EVALUATIONS.labels(outcome=outcome).inc()
