"""Processing of stored webhook deliveries: parse, refuse foreign ones, collapse duplicates, dispatch each event.

A delivery is processed by the `process_webhook_event` task, by the sweeper when the broker was
down at ingest, and again from the admin's "Reprocess" action. Every handler is idempotent and
order-tolerant (see sales.services), so running a delivery twice, or two deliveries about one
deal at once, never changes the outcome — the state checks here only save work.
"""

import logging
import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from config.queue import enqueue_on_commit, publish
from monitoring import metrics
from sales.services import UNEXPECTED, DealEvent, deal_events_apply

from ..client import AmoCRMClient
from ..errors import AmoCRMError
from ..models import SyncLog, WebhookEvent
from ..values import to_moment
from .parser import WebhookItem, WebhookParseError, extract_delivery, item_int, item_timestamps, parse_body

logger = logging.getLogger(__name__)

# amoCRM resends a delivery it thinks failed; the same bytes again within this window is that resend.
DUPLICATE_WINDOW = timedelta(minutes=10)
# A delivery still `received` this long after arriving was never enqueued (broker down) or its
# message was lost: the sweeper enqueues it again.
SWEEP_AFTER = timedelta(seconds=60)
SWEEP_BATCH = 500
# The sweeper enqueues one delivery at most this often, so a long queue is not flooded with copies.
SWEEP_REPEAT_SECONDS = 300
# Item failures kept on the event (the count is exact; a delivery of thousands of bad items keeps the first
# ones), and how many of them its error text names.
ITEM_ERRORS_KEPT = 200
ITEM_ERRORS_NAMED = 25

State = WebhookEvent.State
# Deliveries in these states are waiting for (another) run; the others are final until "Reprocess".
PROCESSABLE = (State.RECEIVED, State.FAILED)

# A handler turns one webhook item into what it means for the domain; the delivery's deal events
# are then applied together (one re-read request for all the deals that need one).
Handler = Callable[[WebhookItem], DealEvent]


class ItemError(ValueError):
    """One item of a delivery says something impossible; the message tells the operator what."""


def _modified_at(item: WebhookItem) -> datetime | None:
    """The newest of the item's times; an item carrying a time no calendar has is refused by name."""
    moments = []
    for name, stamp in item_timestamps(item).items():
        moment = to_moment(stamp)
        if moment is None:
            raise ItemError(_("%(field)s “%(value)s” is not a valid time") % {"field": name, "value": stamp})
        moments.append(moment)
    return max(moments, default=None)


def _deal_changed(item: WebhookItem) -> DealEvent:
    return DealEvent(
        deal_id=item.entity_id,
        pipeline_id=item_int(item, "pipeline_id"),
        status_id=item_int(item, "status_id"),
        old_status_id=item_int(item, "old_status_id"),
        responsible_user_id=item_int(item, "responsible_user_id"),
        modified_at=_modified_at(item),
        item=item.label,
    )


def _deal_deleted(item: WebhookItem) -> DealEvent:
    return DealEvent(deal_id=item.entity_id, kind=DealEvent.DELETE, item=item.label)


def _deal_restored(item: WebhookItem) -> DealEvent:
    return DealEvent(deal_id=item.entity_id, kind=DealEvent.RESTORE, item=item.label)


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


@dataclass
class _Run:
    """What one task run did to a delivery."""

    state: str
    note: str = ""
    items_total: int | None = None
    items_done: int = 0
    item_errors: list[dict] = field(default_factory=list)  # this run's failed items

    @property
    def unfinished(self) -> bool:
        return self.items_total is not None and self.items_done < self.items_total


def webhook_event_process(*, event_id: int) -> str:
    """Process one stored delivery (or its next WEBHOOK_ITEMS_PER_RUN items); returns its state after this run.

    Parse failures, foreign account ids and permanent errors end as `failed`/`rejected` with the
    reason in `error`; a transient error (network, 429, 5xx) is recorded as `failed` too and
    re-raised so the task retries with backoff — a retry picks `failed` deliveries up again and
    carries on from the last finished run. An item that cannot be processed fails alone: the rest
    of the delivery is processed, and the delivery ends `failed` with every such item named. A
    delivery with more items than one run may take stays `received`, records how far it got and
    enqueues its follow-up run.
    """
    event = WebhookEvent.objects.select_related("account").filter(pk=event_id).first()
    if event is None or event.state not in PROCESSABLE:
        return event.state if event else "missing"
    first_attempt = event.attempts == 0
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=F("attempts") + 1)
    try:
        run = _process(event, first_attempt=first_attempt)
    except Exception as exc:
        if not isinstance(exc, AmoCRMError):  # a bug worth a traceback, not an operator's text
            logger.exception("webhook processing failed", extra={"webhook_event": event.pk})
            message = _("Processing stopped on %(reason)s. Reprocess the event once the cause is fixed.") % {
                "reason": UNEXPECTED}
        else:
            message = f"{exc.__class__.__name__}: {exc}"
        _finish(event, State.FAILED, message)
        if isinstance(exc, AmoCRMError) and exc.transient:
            raise  # the task retries it (amocrm.tasks.process_webhook_event)
        return State.FAILED
    if run.unfinished:
        _continue_later(event, run)
        return State.RECEIVED
    _finish(event, run.state, run.note, run=run)
    return run.state


def _process(event: WebhookEvent, *, first_attempt: bool) -> _Run:
    account = event.account
    try:
        # Cleaned before anything reads it: jsonb and text columns refuse NUL and lone surrogates.
        parsed = _storable(parse_body(bytes(event.body), event.content_type))
    except WebhookParseError as exc:
        return _Run(State.FAILED, _("The body cannot be parsed: %(reason)s") % {"reason": exc})
    start = event.items_done
    if not start:
        WebhookEvent.objects.filter(pk=event.pk).update(parsed=parsed)
    delivery = extract_delivery(parsed)

    claimed = delivery.account_id
    if claimed is not None and account.amocrm_account_id and claimed != account.amocrm_account_id:
        return _Run(State.REJECTED, (f"The delivery is for amoCRM account {claimed}, "
                                     f"this URL belongs to account {account.amocrm_account_id}."))
    # Only the first look collapses a resend; "Reprocess" and retries always run the events.
    if first_attempt and not start and _is_resend(event):
        return _Run(State.DUPLICATE)

    items = delivery.items
    done = min(len(items), start + max(1, settings.WEBHOOK_ITEMS_PER_RUN))
    run = _Run(State.PROCESSED, items_total=len(items), items_done=done)
    deal_events = []
    ignored = 0
    for item in items[start:done]:
        handler = EVENT_HANDLERS.get((item.entity, item.action))
        if handler is None or item.entity_id is None:
            ignored += 1
            continue
        try:
            deal_events.append(handler(item))
        except ItemError as exc:
            run.item_errors.append(_item_error(item.label, item.entity_id, str(exc)))
        except Exception:  # noqa: BLE001 — one poison item must not stop the delivery
            logger.exception("webhook item could not be read",
                             extra={"webhook_event": event.pk, "item": item.label})
            run.item_errors.append(_item_error(item.label, item.entity_id, str(UNEXPECTED)))
    outcomes: Counter[str] = Counter({"ignored": ignored} if ignored else {})
    outcomes["failed"] += len(run.item_errors)
    if deal_events:
        client = AmoCRMClient(account, log_context={"webhook_event": event.pk})
        applied = deal_events_apply(account=account, events=deal_events, client=client)
        outcomes += applied.outcomes
        run.item_errors += [_item_error(", ".join(failure.items), failure.deal_id, failure.reason)
                            for failure in applied.failures]
    _log(event, +outcomes)
    if run.unfinished:
        return run

    failed = event.items_failed + len(run.item_errors)
    handled = any(item.entity_id is not None and (item.entity, item.action) in EVENT_HANDLERS for item in items)
    unknown = {f"{item.entity}.{item.action}" for item in items
               if (item.entity, item.action) not in EVENT_HANDLERS and (item.entity, item.action) not in IGNORED_EVENTS}
    notes = []
    if failed:
        run.state = State.FAILED
        notes.append(_failed_items_text(failed, len(items), [*event.item_errors, *run.item_errors]))
    elif not handled:
        run.state = State.IGNORED
    if unknown:
        notes.append(f"Unknown event type(s), ignored: {', '.join(sorted(unknown))}.")
    run.note = "\n".join(notes)
    return run


def _item_error(label: str, deal_id: int | None, reason: str) -> dict:
    return {"item": label, "deal": deal_id, "error": reason}


def _failed_items_text(failed: int, total: int, errors: list[dict]) -> str:
    """The event's error: how many items failed, then each one by name (the first ITEM_ERRORS_NAMED)."""
    lines = [ngettext(
        "%(failed)d item of %(total)d could not be processed; the rest of the delivery was. "
        "Fix the cause, then reprocess the event (processing it again changes nothing that is already right).",
        "%(failed)d items of %(total)d could not be processed; the rest of the delivery was. "
        "Fix the cause, then reprocess the event (processing it again changes nothing that is already right).",
        failed) % {"failed": failed, "total": total}]
    for error in errors[:ITEM_ERRORS_NAMED]:
        deal = _(", deal %(deal)s") % {"deal": error["deal"]} if error.get("deal") is not None else ""
        lines.append(f"- {error['item']}{deal}: {error['error']}.")
    if failed > len(lines) - 1:
        lines.append(_("… and %(more)d more.") % {"more": failed - (len(lines) - 1)})
    return "\n".join(lines)


def _continue_later(event: WebhookEvent, run: _Run) -> None:
    """Record how far this run got and enqueue the next one (after commit).

    Conditional on the progress this run started from, so a duplicate run (the sweeper's copy of a
    follow-up still queued) neither counts its items twice nor enqueues a second chain.
    """
    # Imported here, as in the two functions below: the task module imports this one (a task ↔ service pair).
    from ..tasks import process_webhook_event

    failed = event.items_failed + len(run.item_errors)
    errors = [*event.item_errors, *run.item_errors][:ITEM_ERRORS_KEPT]
    note = _("Processed %(done)d of %(total)d items so far; the rest follows in the next run.") % {
        "done": run.items_done, "total": run.items_total}
    if failed:
        note += "\n" + _failed_items_text(failed, run.items_total, errors)
    moved = WebhookEvent.objects.filter(pk=event.pk, items_done=event.items_done).update(
        state=State.RECEIVED, items_total=run.items_total, items_done=run.items_done, items_failed=failed,
        item_errors=errors, error=_clean_text(note)[:5000], processed_at=None,
    )
    if moved:
        # The follow-up is on its way: keep the sweeper from sending a copy meanwhile.
        cache.set(_swept_key(event.pk), 1, timeout=SWEEP_REPEAT_SECONDS)
        enqueue_on_commit(process_webhook_event, event.pk)


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


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _clean_text(value: str) -> str:
    """PostgreSQL refuses NUL characters and lone surrogates (JSON's "\\ud800"), which a hostile body may hold."""
    return _UNSTORABLE.sub("\ufffd", value)


def _storable(value):
    """The parsed body with every string cleaned and no non-finite number, as jsonb can store it."""
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, dict):
        return {_storable(key): _storable(child) for key, child in value.items()}
    if isinstance(value, list):
        return [_storable(child) for child in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _finish(event: WebhookEvent, state: str, error: str, *, run: _Run | None = None) -> None:
    values = {"state": state, "error": _clean_text(error)[:5000], "processed_at": timezone.now()}
    if run is not None and run.items_total is not None:
        values.update(items_total=run.items_total, items_done=run.items_done,
                      items_failed=F("items_failed") + len(run.item_errors),
                      item_errors=[*event.item_errors, *run.item_errors][:ITEM_ERRORS_KEPT])
    WebhookEvent.objects.filter(pk=event.pk).update(**values)
    metrics.webhook_event(state)


def _log(event: WebhookEvent, outcomes: Counter) -> None:
    SyncLog.objects.create(
        account_id=event.account_id, operation="webhook.process", direction=SyncLog.Direction.INBOUND,
        status=SyncLog.Status.OK, context={"webhook_event": event.pk, "outcomes": dict(outcomes)},
    )


def webhook_event_reprocess(*, event_id: int) -> bool:
    """Put a delivery back to `received` and enqueue it (after commit); False when it does not exist."""
    from ..tasks import process_webhook_event

    updated = WebhookEvent.objects.filter(pk=event_id).update(
        state=State.RECEIVED, error="", processed_at=None, items_total=None, items_done=0, items_failed=0,
        item_errors=[],
    )
    if updated:
        enqueue_on_commit(process_webhook_event, event_id)
    return bool(updated)


def _swept_key(event_id: int) -> str:
    return f"webhook-event:swept:{event_id}"


def webhook_events_sweep(*, older_than: timedelta = SWEEP_AFTER, limit: int = SWEEP_BATCH) -> int:
    """Enqueue deliveries left `received` (broker down at ingest, message lost); returns how many."""
    from ..tasks import process_webhook_event

    stale = (WebhookEvent.objects.filter(state=State.RECEIVED, received_at__lt=timezone.now() - older_than)
             .order_by("received_at").values_list("pk", flat=True)[:limit])
    enqueued = 0
    for event_id in stale:
        if not cache.add(_swept_key(event_id), 1, timeout=SWEEP_REPEAT_SECONDS):
            continue
        if not publish(process_webhook_event, event_id):
            cache.delete(_swept_key(event_id))
            break  # the broker is still down; the next sweep tries again
        enqueued += 1
    return enqueued
