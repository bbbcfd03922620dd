"""Processing of stored webhook deliveries: parse, refuse foreign ones, collapse duplicates, dispatch each event.

A delivery is processed by the `process_webhook_event` task, by the sweeper when the broker was
down at ingest, and again from the admin's "Reprocess" action. Every handler is idempotent and
order-tolerant (see sales.services), so running a delivery twice, or two deliveries about one
deal at once, never changes the outcome — the state checks here only save work.
"""

import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import F
from django.utils import timezone

from config.queue import enqueue_on_commit, publish
from sales.services import DealEvent, deal_events_apply

from ..client import AmoCRMClient
from ..models import SyncLog, WebhookEvent
from .parser import WebhookItem, WebhookParseError, extract_delivery, item_int, item_modified_at, parse_body

logger = logging.getLogger(__name__)

# amoCRM resends a delivery it thinks failed; the same bytes again within this window is that resend.
DUPLICATE_WINDOW = timedelta(minutes=10)
# A delivery still `received` this long after arriving was never enqueued (broker down) or its
# message was lost: the sweeper enqueues it again.
SWEEP_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500
# The sweeper enqueues one delivery at most this often, so a long queue is not flooded with copies.
SWEEP_REPEAT_SECONDS = 300

State = WebhookEvent.State
# Deliveries in these states are waiting for (another) run; the others are final until "Reprocess".
PROCESSABLE = (State.RECEIVED, State.FAILED)

# A handler turns one webhook item into what it means for the domain; the delivery's deal events
# are then applied together (one re-read request for all the deals that need one).
Handler = Callable[[WebhookItem], DealEvent]


def _deal_changed(item: WebhookItem) -> DealEvent:
    modified = item_modified_at(item)
    return DealEvent(
        deal_id=item.entity_id,
        pipeline_id=item_int(item, "pipeline_id"),
        status_id=item_int(item, "status_id"),
        old_status_id=item_int(item, "old_status_id"),
        responsible_user_id=item_int(item, "responsible_user_id"),
        modified_at=datetime.fromtimestamp(modified, tz=UTC) if modified else None,
    )


def _deal_deleted(item: WebhookItem) -> DealEvent:
    return DealEvent(deal_id=item.entity_id, kind=DealEvent.DELETE)


def _deal_restored(item: WebhookItem) -> DealEvent:
    return DealEvent(deal_id=item.entity_id, kind=DealEvent.RESTORE)


EVENT_HANDLERS: dict[tuple[str, str], Handler] = {
    ("leads", "add"): _deal_changed,
    ("leads", "update"): _deal_changed,
    ("leads", "status"): _deal_changed,
    ("leads", "responsible"): _deal_changed,
    ("leads", "delete"): _deal_deleted,
    ("leads", "restore"): _deal_restored,
}

# Events amoCRM may send that this integration has no use for (recorded as ignored, quietly).
_PEOPLE_ACTIONS = ("add", "update", "delete", "restore", "responsible", "note")
IGNORED_EVENTS: frozenset[tuple[str, str]] = frozenset(
    {("leads", "note")}
    | {(entity, action) for entity in ("contacts", "companies") for action in _PEOPLE_ACTIONS}
    | {("tasks", action) for action in ("add", "update", "delete")}
)


def webhook_event_process(*, event_id: int) -> str:
    """Process one stored delivery; returns its final state. Raises only transient amoCRM errors.

    Parse failures, foreign account ids and permanent errors end as `failed`/`rejected` with the
    reason in `error`; a transient error (network, 429, 5xx) is recorded as `failed` too and
    re-raised so the task retries with backoff — a retry picks `failed` deliveries up again.
    """
    event = WebhookEvent.objects.select_related("account").filter(pk=event_id).first()
    if event is None or event.state not in PROCESSABLE:
        return event.state if event else "missing"
    first_attempt = event.attempts == 0
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    try:
        state, note = _process(event, first_attempt=first_attempt)
    except Exception as exc:
        _finish(event, State.FAILED, f"{exc.__class__.__name__}: {exc}")
        if getattr(exc, "transient", False):
            raise
        if not hasattr(exc, "transient"):  # not an AmoCRMError: a bug worth a traceback
            logger.exception("webhook processing failed", extra={"webhook_event": event.pk})
        return State.FAILED
    _finish(event, state, note)
    return state


def _process(event: WebhookEvent, *, first_attempt: bool) -> tuple[str, str]:
    account = event.account
    try:
        parsed = parse_body(bytes(event.body), event.content_type)
    except WebhookParseError as exc:
        return State.FAILED, f"The body cannot be parsed: {exc}"
    WebhookEvent.objects.filter(pk=event.pk).update(parsed=_storable(parsed))
    delivery = extract_delivery(parsed)

    claimed = delivery.account_id
    if claimed is not None and account.amocrm_account_id and claimed != account.amocrm_account_id:
        return State.REJECTED, (f"The delivery is for amoCRM account {claimed}, "
                                f"this URL belongs to account {account.amocrm_account_id}.")
    # Only the first look collapses a resend; "Reprocess" and retries always run the events.
    if first_attempt and _is_resend(event):
        return State.DUPLICATE, ""

    deal_events = []
    ignored = 0
    unknown = set()
    for item in delivery.items:
        key = (item.entity, item.action)
        handler = EVENT_HANDLERS.get(key)
        if handler is None or item.entity_id is None:
            if handler is None and key not in IGNORED_EVENTS:
                unknown.add(f"{item.entity}.{item.action}")
            ignored += 1
            continue
        deal_events.append(handler(item))
    outcomes: Counter[str] = Counter({"ignored": ignored} if ignored else {})
    if deal_events:
        client = AmoCRMClient(account, log_context={"webhook_event": event.pk})
        outcomes += deal_events_apply(account=account, events=deal_events, client=client)
    _log(event, outcomes)
    note = f"Unknown event type(s), ignored: {', '.join(sorted(unknown))}." if unknown else ""
    return (State.PROCESSED if deal_events else State.IGNORED), note


def _is_resend(event: WebhookEvent) -> bool:
    """Same bytes as the account's previous delivery, within the window, and that one was not refused.

    Only the directly preceding delivery counts: reduced bodies carry no timestamp, so a deal moved
    won → lost → won produces two byte-identical "won" deliveries that are not a resend.
    """
    previous = (
        WebhookEvent.objects.filter(account_id=event.account_id, pk__lt=event.pk,
                                    received_at__gte=event.received_at - DUPLICATE_WINDOW)
        .order_by("-pk").values("body_sha256", "state").first()
    )
    return (previous is not None and previous["body_sha256"] == event.body_sha256
            and previous["state"] not in (State.FAILED, State.REJECTED))


def _storable(value):
    """PostgreSQL's jsonb refuses NUL characters, which a hostile or broken body may contain."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_storable(key): _storable(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_storable(child) for child in value]
    return value


def _finish(event: WebhookEvent, state: str, error: str) -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(state=state, error=error[:5000], processed_at=timezone.now())


def _log(event: WebhookEvent, outcomes: Counter) -> None:
    SyncLog.objects.create(
        account_id=event.account_id, operation="webhook.process", direction=SyncLog.Direction.INBOUND,
        status=SyncLog.Status.OK, context={"webhook_event": event.pk, "outcomes": dict(outcomes)},
    )


def webhook_event_reprocess(*, event_id: int) -> bool:
    """Put a delivery back to `received` and enqueue it (after commit); False when it does not exist."""
    from ..tasks import process_webhook_event

    updated = WebhookEvent.objects.filter(pk=event_id).update(state=State.RECEIVED, error="", processed_at=None)
    if updated:
        enqueue_on_commit(process_webhook_event, event_id)
    return bool(updated)


def webhook_events_sweep(*, older_than: timedelta = SWEEP_AFTER, limit: int = SWEEP_BATCH) -> int:
    """Enqueue deliveries left `received` (broker down at ingest, message lost); returns how many."""
    from ..tasks import process_webhook_event

    stale = (WebhookEvent.objects.filter(state=State.RECEIVED, received_at__lt=timezone.now() - older_than)
             .order_by("received_at").values_list("pk", flat=True)[:limit])
    enqueued = 0
    for event_id in stale:
        if not cache.add(f"webhook-event:swept:{event_id}", 1, timeout=SWEEP_REPEAT_SECONDS):
            continue
        if not publish(process_webhook_event, event_id):
            cache.delete(f"webhook-event:swept:{event_id}")
            break  # the broker is still down; the next sweep tries again
        enqueued += 1
    return enqueued
