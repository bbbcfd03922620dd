"""Webhooks a fake account sends: amoCRM's v2 form-encoded bodies, delivered from background threads.

The body format follows docs/amocrm.md#webhooks-amocrm-sends: PHP-style bracket keys, every value a string, several
actions for several deals in one POST, the `account[...]` block last.
"""

import itertools
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlparse

from .entities import Deal, DealChange

USER_AGENT = "amoCRM-WebHook-client/1.0"
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
DELIVERY_TIMEOUT_SECONDS = 5
# amoCRM disables a destination that failed more than 100 times in 2 hours (docs/amocrm.md#webhooks-amocrm-sends).
FAILURES_BEFORE_DISABLE = 100
FAILURE_WINDOW_SECONDS = 2 * 3600

# Deliveries go straight to the destination: an HTTP(S)_PROXY in the environment must not intercept them.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class LeadEvent:
    """One deal under one action, its fields already rendered as (`[field]...`, value) pairs."""

    action: str
    pairs: list[tuple[str, str]]


@dataclass
class Subscription:
    id: int
    destination: str
    settings: list[str]
    sort: int
    created_at: int
    updated_at: int
    disabled: bool = False
    failures: deque = field(default_factory=deque)

    def to_api(self, account: Any) -> dict:
        return {
            "id": self.id,
            "destination": self.destination,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "account_id": account.account_id,
            "created_by": account.catalog.admin.id,
            "sort": self.sort,
            "disabled": self.disabled,
            "settings": list(self.settings),
        }


def lead_event(action: str, deal: Deal, account: Any, change: DealChange | None = None) -> LeadEvent:
    """The full v2 field set of `deal` for `action` (add, update, status, responsible, restore)."""
    pairs = [
        ("[id]", deal.id),
        ("[name]", deal.name),
        ("[status_id]", deal.status_id),
        ("[price]", deal.price or ""),  # amoCRM sends an empty price as ""
        ("[responsible_user_id]", deal.responsible_user_id),
        ("[last_modified]", deal.updated_at),
        ("[modified_user_id]", deal.updated_by),
        ("[created_user_id]", deal.created_by),
        ("[date_create]", deal.created_at),
        ("[pipeline_id]", deal.pipeline_id),
        ("[account_id]", account.account_id),
        ("[created_at]", deal.created_at),
        ("[updated_at]", deal.updated_at),
    ]
    if change is not None and action == "status":
        pairs.append(("[old_status_id]", change.old_status_id))
        if change.old_pipeline_id != deal.pipeline_id:
            pairs.append(("[old_pipeline_id]", change.old_pipeline_id))
    if change is not None and action == "responsible":
        pairs.append(("[old_responsible_user_id]", change.old_responsible_user_id))
    for index, tag_id in enumerate(deal.tag_ids):
        tag = account.store.tag_by_id("leads", tag_id)
        pairs += [(f"[tags][{index}][id]", tag_id), (f"[tags][{index}][name]", tag.name if tag else "")]
    for index, (field_id, values) in enumerate(deal.custom_fields.items()):
        pairs += _custom_field_pairs(index, field_id, values, account)
    return LeadEvent(action, [(key, _as_text(value)) for key, value in pairs])


def reduced_status_event(deal: Deal, change: DealChange) -> LeadEvent:
    """The ids-only body stage automations send: no name, no price."""
    pairs = [("[id]", deal.id), ("[status_id]", deal.status_id), ("[pipeline_id]", deal.pipeline_id),
             ("[old_status_id]", change.old_status_id), ("[old_pipeline_id]", change.old_pipeline_id)]
    return LeadEvent("status", [(key, str(value)) for key, value in pairs])


def delete_event(deal: Deal) -> LeadEvent:
    return LeadEvent("delete", [("[id]", str(deal.id)), ("[type]", "lead")])


def encode_body(events: list[LeadEvent], account: Any, *, reduced: bool = False) -> str:
    """`leads[<action>][<i>][<field>]=...&account[...]=...`, percent-encoded as amoCRM sends it."""
    pairs: list[tuple[str, str]] = []
    positions: defaultdict[str, int] = defaultdict(int)
    for event in events:
        index = positions[event.action]
        positions[event.action] += 1
        pairs += [(f"leads[{event.action}][{index}]{key}", value) for key, value in event.pairs]
    pairs += [("account[subdomain]", account.subdomain), ("account[id]", str(account.account_id))]
    if not reduced:
        pairs.append(("account[_links][self]", account.origin))
    return urlencode(pairs)


def _custom_field_pairs(index: int, field_id: int, values: list[dict], account: Any) -> list[tuple[str, Any]]:
    custom_field = account.catalog.lead_fields.by_id(field_id)
    prefix = f"[custom_fields][{index}]"
    pairs: list[tuple[str, Any]] = [(f"{prefix}[id]", field_id), (f"{prefix}[name]", custom_field.name)]
    if custom_field.code:
        pairs.append((f"{prefix}[code]", custom_field.code))
    for position, value in enumerate(values):
        if custom_field.type in ("date", "date_time", "birthday"):
            # A date arrives as a bare timestamp, without a [value] key (docs/amocrm.md#webhooks-amocrm-sends).
            pairs.append((f"{prefix}[values][{position}]", value["value"]))
            continue
        pairs.append((f"{prefix}[values][{position}][value]", value["value"]))
        if value.get("enum_id"):
            pairs.append((f"{prefix}[values][{position}][enum]", value["enum_id"]))
    return pairs


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return "" if value is None else str(value)


class WebhookOutbox:
    """Subscriptions of one account and every delivery made to them."""

    def __init__(self, clock: Any) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._next_subscription_id = 1
        self._delivery_ids = itertools.count(1)
        self.subscriptions: dict[str, Subscription] = {}
        self.deliveries: list[dict] = []

    def subscribe(self, *, destination: str, settings: list[str], sort: int) -> Subscription:
        """A new destination, or new settings for a known one (which also re-enables it)."""
        now = int(self._clock())
        with self._lock:
            existing = self.subscriptions.get(destination)
            if existing:
                existing.settings, existing.sort, existing.updated_at = settings, sort, now
                existing.disabled = False
                existing.failures.clear()
                return existing
            subscription = Subscription(id=self._next_subscription_id, destination=destination, settings=settings,
                                        sort=sort, created_at=now, updated_at=now)
            self._next_subscription_id += 1
            self.subscriptions[destination] = subscription
            return subscription

    def export(self) -> dict:
        """The subscriptions (not the deliveries, nor the recent failures), as JSON-ready data (persistence.py)."""
        with self._lock:
            return {"next_id": self._next_subscription_id, "subscriptions": [
                {"id": item.id, "destination": item.destination, "settings": list(item.settings), "sort": item.sort,
                 "created_at": item.created_at, "updated_at": item.updated_at, "disabled": item.disabled}
                for item in self.subscriptions.values()]}

    def restore(self, saved: dict, *, subscriptions: bool = True) -> None:
        """Take back what export() gave; ids continue after the saved ones even without the subscriptions."""
        with self._lock:
            kept = saved.get("subscriptions", []) if subscriptions else []
            for data in kept:
                self.subscriptions[data["destination"]] = Subscription(**data)
            self._next_subscription_id = max(self._next_subscription_id, int(saved.get("next_id", 1)),
                                             *(data["id"] + 1 for data in kept))

    def unsubscribe(self, destination: str) -> bool:
        with self._lock:
            return self.subscriptions.pop(destination, None) is not None

    def disable(self, destination: str | None = None) -> int:
        """Disable one destination's subscription (or every one), as amoCRM does after failures; returns how many."""
        with self._lock:
            chosen = [item for item in self.subscriptions.values() if destination in (None, item.destination)]
            for item in chosen:
                item.disabled = True
            return len(chosen)

    def active_subscriptions(self) -> list[Subscription]:
        with self._lock:
            return sorted((item for item in self.subscriptions.values() if not item.disabled), key=lambda s: s.sort)

    def publish(self, events: list[LeadEvent], account: Any, *, reduced: bool = False) -> None:
        """Send every subscriber the events it asked for, in one POST each, without waiting for it."""
        for subscription in self.active_subscriptions():
            wanted = [event for event in events if f"{event.action}_lead" in subscription.settings]
            if not wanted:
                continue
            body = encode_body(wanted, account, reduced=reduced)
            names = [f"leads.{event.action}" for event in wanted]
            with self._lock:
                self._pending += 1
            threading.Thread(target=self._deliver_in_background, args=(subscription, body, names),
                             name="sandbox-webhook", daemon=True).start()

    def deliver(self, destination: str, body: str, *, content_type: str = FORM_CONTENT_TYPE,
                events: list[str] | None = None) -> dict:
        """POST `body` now and record the outcome; used by the background threads and the control API."""
        sent_at = self._clock()
        started = time.monotonic()
        status, error = None, None
        if urlparse(destination).scheme not in ("http", "https"):
            raise ValueError("A webhook destination must be an http(s) URL")
        # The destination is whatever a test subscribed (validated as http/https): plain http to localhost
        # is the point here.
        request = urllib.request.Request(destination, data=body.encode("utf-8"), method="POST",  # noqa: S310
                                         headers={"Content-Type": content_type, "User-Agent": USER_AGENT})
        try:
            with _OPENER.open(request, timeout=DELIVERY_TIMEOUT_SECONDS) as answer:
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError) as exc:
            error = str(getattr(exc, "reason", exc))
        record = {
            "destination": destination,
            "body": body,
            "content_type": content_type,
            "user_agent": USER_AGENT,
            "events": events or [],
            "status": status,
            "error": error,
            "ok": status is not None and 200 <= status < 300,
            "duration_ms": round((time.monotonic() - started) * 1000, 1),
            "sent_at": sent_at,
        }
        with self._lock:
            record["id"] = next(self._delivery_ids)
            self.deliveries.append(record)
        return record

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no delivery is in flight; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def deliveries_snapshot(self) -> list[dict]:
        with self._lock:
            return [dict(record) for record in self.deliveries]

    def clear_subscriptions(self) -> None:
        with self._lock:
            self.subscriptions.clear()

    def clear_deliveries(self) -> None:
        with self._lock:
            self.deliveries.clear()

    def _deliver_in_background(self, subscription: Subscription, body: str, names: list[str]) -> None:
        try:
            record = self.deliver(subscription.destination, body, events=names)
            if not record["ok"]:
                self._count_failure(subscription, record["sent_at"])
        finally:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()

    def _count_failure(self, subscription: Subscription, now: float) -> None:
        with self._lock:
            failures = subscription.failures
            failures.append(now)
            while failures and failures[0] <= now - FAILURE_WINDOW_SECONDS:
                failures.popleft()
            if len(failures) > FAILURES_BEFORE_DISABLE:
                subscription.disabled = True
