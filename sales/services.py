"""Sales from amoCRM deals: the deal → sale rule, the re-reads that feed it, and a webhook delivery's deal events.

Webhooks are unsigned and may arrive late, twice, out of order or reduced to ids, so they are
treated as hints: a sale is only ever written from the deal as the amoCRM API returns it
(re-read with `GET /api/v4/leads/{id}`, or listed by the reconciliation in sales/reconcile.py), and
only when that deal is not older than what the sale already reflects (`Sale.deal_updated_at`).

One verb per operation:

- `sale_apply_deal` — THE rule: a deal as the API returned it → create, update, revert or delete its sale.
- `deal_apply` — a deal as the API returned it: mirror it onto our leads (leads.mirror), then the rule.
- `deals_reread` — re-read deals under their locks, in batches, and apply each (a deal that is gone
  deletes its sale: `sale_mark_deleted`).
- `sale_reread` — the admin's "Re-read from amoCRM" for one sale.
- `deal_events_apply` — a webhook delivery's deal events: mirror at once, re-read what may change a sale.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy

from amocrm.client import PAGE_LIMIT, AmoCRMClient
from amocrm.models import Account
from amocrm.values import main_contact_id, to_int, to_moment
from config.locks import hold_locks, lock_key
from leads.mirror import lead_mirror_deal
from leads.models import Lead
from leads.selectors import lead_of_contact, lead_that_created_deal
from monitoring import metrics

from .losses import deal_loss_apply
from .models import Sale

logger = logging.getLogger(__name__)

# Deals locked, re-read (one list request) and applied together. A lock per deal of a whole bulk
# change (14,000 deals in one delivery) exhausts PostgreSQL's shared lock table ("out of shared
# memory"); one page of the list endpoint at a time keeps a worker's locks bounded.
DEAL_BATCH = PAGE_LIMIT
# What an operator reads when a deal or item failed on something we did not foresee.
UNEXPECTED = gettext_lazy("an unexpected error (the details are in the application log)")


@dataclass(frozen=True)
class DealEvent:
    """What one webhook item says about a deal; any field but the id may be missing (reduced bodies)."""

    CHANGE, DELETE, RESTORE = "change", "delete", "restore"

    deal_id: int
    kind: str = CHANGE
    pipeline_id: int | None = None
    status_id: int | None = None
    old_status_id: int | None = None
    responsible_user_id: int | None = None
    modified_at: datetime | None = None
    # Which webhook item said so (``leads[status][3]``), to name it when it cannot be applied.
    item: str = ""


@dataclass(frozen=True)
class DealFailure:
    """A deal (and the webhook items about it) that could not be applied; `reason` is for the operator."""

    deal_id: int
    items: tuple[str, ...]
    reason: str


@dataclass
class AppliedEvents:
    """What applying a delivery's deal events did: outcome counts (for the sync log) and the failures."""

    outcomes: Counter = field(default_factory=Counter)
    failures: list[DealFailure] = field(default_factory=list)


# --- The rule: a deal as the API returns it → its sale ---------------------------------------------


def _attribute(*, account: Account, deal_id: int, contact_id: int | None,
               won_at: datetime) -> tuple[Lead | None, str]:
    """The lead that created the deal; else the last lead of the deal's main contact before the win."""
    lead = lead_that_created_deal(account=account, deal_id=deal_id)
    if lead is not None:
        return lead, Sale.Attribution.DEAL
    if contact_id is not None:
        # Last touch: the campaign that brought the contact back most recently before the deal closed.
        lead = lead_of_contact(account=account, contact_id=contact_id, before=won_at)
        if lead is not None:
            return lead, Sale.Attribution.CONTACT
    return None, Sale.Attribution.NONE


def sale_apply_deal(*, account: Account, deal: dict) -> Sale | None:
    """Create, update, revert or delete the deal's sale from the deal as the amoCRM API returned it.

    A deal in a won stage upserts its sale (amount, currency, name, stage, responsible, won at,
    attribution); any other deal only reverts an existing sale (or marks it deleted when the deal
    is), and creates nothing. A deal older than the sale's `deal_updated_at` changes nothing. Safe
    to run concurrently for the same deal: the row is locked, and a racing insert's IntegrityError
    is retried as an update.
    """
    deal_id = int(deal["id"])
    pipeline_id = to_int(deal.get("pipeline_id"))
    stage_id = to_int(deal.get("status_id"))
    updated_at = to_moment(deal.get("updated_at"))
    deleted = bool(deal.get("is_deleted"))
    won = not deleted and account.is_won(pipeline_id, stage_id)
    current = {
        "name": (deal.get("name") or "")[:255],
        "pipeline_id": pipeline_id,
        "stage_id": stage_id,
        "responsible_user_id": to_int(deal.get("responsible_user_id")),
        "deal_updated_at": updated_at,
    }
    if won:
        won_at = to_moment(deal.get("closed_at")) or updated_at or timezone.now()
        contact_id = main_contact_id(deal)
        try:
            amount = Decimal(str(deal.get("price") or 0))
        except InvalidOperation:
            amount = Decimal(0)
        current.update(amount=amount, currency=account.currency, won_at=won_at, amocrm_contact_id=contact_id)
        lead, attribution = _attribute(account=account, deal_id=deal_id, contact_id=contact_id, won_at=won_at)
        if lead is not None:
            current.update(lead_id=lead.pk, attribution=attribution)
    new_state = Sale.State.WON if won else (Sale.State.DELETED if deleted else Sale.State.REVERTED)

    for attempt in range(2):
        moves: list[tuple] = []
        try:
            sale = _sale_write(account=account, deal_id=deal_id, won=won, new_state=new_state, current=current,
                               updated_at=updated_at, moves=moves)
        except IntegrityError:
            # Another worker inserted the sale between our SELECT and INSERT: update that row instead.
            if attempt:
                raise
            continue
        for move in moves:  # counted once written: a write that failed (a price beyond the column) never counts
            metrics.sale_moved(*move)
        return sale
    return None  # not reached


def _sale_write(*, account: Account, deal_id: int, won: bool, new_state: str, current: dict, updated_at,
                moves: list) -> Sale | None:
    """The sale's row written under its lock; the state moves made are appended to `moves` (for the metrics)."""
    with transaction.atomic():
        sale = Sale.objects.select_for_update().filter(account=account, amocrm_deal_id=deal_id).first()
        if sale is None:
            if not won:
                return None
            moves.append(("", new_state, current["amount"], account.currency))
            return Sale.objects.create(account=account, amocrm_deal_id=deal_id, state=new_state, **current)
        if sale.deal_updated_at and updated_at and updated_at < sale.deal_updated_at:
            return sale  # an older picture of the deal than the one the sale already shows
        changed = [name for name, value in current.items() if getattr(sale, name) != value]
        if sale.state != new_state:
            moves.append((sale.state, new_state, current.get("amount", sale.amount), account.currency))
            sale.state, sale.state_changed_at = new_state, timezone.now()
            changed += ["state", "state_changed_at"]
        if changed:  # reconciliation re-lists unchanged deals every hour: write only what moved
            for name in changed:
                if name in current:
                    setattr(sale, name, current[name])
            sale.save(update_fields=[*changed, "updated_at"])
        return sale


def sale_mark_deleted(*, account: Account, deal_id: int) -> Sale | None:
    """The deal is gone from amoCRM (the API answers 204/404 for it): its sale, if any, becomes `deleted`."""
    move = None
    with transaction.atomic():
        sale = Sale.objects.select_for_update().filter(account=account, amocrm_deal_id=deal_id).first()
        if sale is not None and sale.state != Sale.State.DELETED:
            move = (sale.state, Sale.State.DELETED, sale.amount, sale.currency)
            sale.state = Sale.State.DELETED
            sale.state_changed_at = timezone.now()
            sale.save(update_fields=["state", "state_changed_at", "updated_at"])
    if move is not None:
        metrics.sale_moved(*move)
    return sale


def deal_apply(*, account: Account, deal: dict) -> Sale | None:
    """Apply one deal as the API returned it: the lead mirror, its loss (sales.losses), then the sale."""
    lead_mirror_deal(
        account=account, deal_id=int(deal["id"]), pipeline_id=to_int(deal.get("pipeline_id")),
        stage_id=to_int(deal.get("status_id")), responsible_user_id=to_int(deal.get("responsible_user_id")),
        modified_at=to_moment(deal.get("updated_at")),
    )
    deal_loss_apply(account=account, deal=deal)
    return sale_apply_deal(account=account, deal=deal)


# --- Re-reading deals through the API -----------------------------------------------------------


@contextmanager
def deals_locked(account: Account, deal_ids: list[int]) -> Iterator[None]:
    """Hold a lock per deal (config.locks), so one worker at a time re-reads and applies a deal.

    Without it, two workers handling two deliveries about one deal could read it before and after
    a change made within the same second (amoCRM times have one-second resolution, so the
    `deal_updated_at` guard cannot order them) and write in the opposite order. Callers lock at
    most DEAL_BATCH deals at a time: each lock takes a slot of PostgreSQL's shared lock table.
    """
    with hold_locks(lock_key("sales.deal", account.pk, deal_id) for deal_id in deal_ids):
        yield


def _read_deals(*, account: Account, deal_ids: list[int], client: AmoCRMClient | None) -> dict[int, dict]:
    """The deals as the API has them now, by id; a deal that is gone is absent.

    One deal: `GET /api/v4/leads/{id}`. More (a bulk stage change sends hundreds in one delivery):
    `GET /api/v4/leads?filter[id][]=...`, 250 per request, instead of one request per deal under
    the 7 requests/second limit. The list leaves deleted deals out, as the single read answers 204.
    """
    client = client or AmoCRMClient(account, log_context={"deals": len(deal_ids)})
    if len(deal_ids) == 1:
        deal = client.lead_get(deal_ids[0], with_contacts=True)
        return {deal_ids[0]: deal} if deal else {}
    return {int(deal["id"]): deal for deal in client.leads_list_by_ids(deal_ids)}


# Called with a deal id and the exception when one deal cannot be applied; without it the error propagates.
OnDealError = Callable[[int, Exception], None]


def deals_reread(*, account: Account, deal_ids: list[int], client: AmoCRMClient | None = None,
                 on_error: OnDealError | None = None) -> dict[int, Sale | None]:
    """Re-read the deals and apply what the API says; returns each applied deal's sale or None.

    A batch (DEAL_BATCH deals) at a time: lock the batch, read it with one request, apply it,
    unlock. amoCRM errors of a read propagate (a transient one is retried by the caller's task);
    a deal that cannot be applied goes to `on_error` and the others go on, or, without `on_error`,
    stops everything. A deal the API no longer has deletes its sale.
    """
    results: dict[int, Sale | None] = {}
    for start in range(0, len(deal_ids), DEAL_BATCH):
        batch = deal_ids[start:start + DEAL_BATCH]
        with deals_locked(account, batch):
            deals = _read_deals(account=account, deal_ids=batch, client=client)
            for deal_id in batch:
                try:
                    # In a transaction (a savepoint inside a caller's), so a deal the database refuses
                    # leaves the connection usable for the next one.
                    with transaction.atomic():
                        if deal_id in deals:
                            results[deal_id] = deal_apply(account=account, deal=deals[deal_id])
                        else:
                            results[deal_id] = sale_mark_deleted(account=account, deal_id=deal_id)
                except Exception as exc:  # noqa: BLE001 — one poison deal must not stop the batch
                    if on_error is None:
                        raise
                    on_error(deal_id, exc)
    return results


def sale_reread(*, sale: Sale) -> Sale | None:
    """Re-read a sale's deal now and apply it (the admin's "Re-read from amoCRM")."""
    return deals_reread(account=sale.account, deal_ids=[sale.amocrm_deal_id])[sale.amocrm_deal_id]


# --- Webhook events about deals ---------------------------------------------------------------

READ = "read"


def _triage(*, account: Account, event: DealEvent) -> str:
    """Mirror what the event says onto our lead; return READ when the deal's sale may change, else why not.

    The sale is touched only when the event may change it — the deal is said to be won, a won
    sale's deal is said to have left the won stage, it was deleted or restored — and then only
    through a re-read, unless the event is provably not newer than the sale.
    """
    if event.kind == DealEvent.RESTORE:
        return READ  # a restored deal may be won and may never have had a sale
    sale = (Sale.objects.filter(account=account, amocrm_deal_id=event.deal_id)
            .only("state", "deal_updated_at").first())
    if event.kind == DealEvent.DELETE:
        return READ if sale is not None else "no sale"
    lead_mirror_deal(account=account, deal_id=event.deal_id, pipeline_id=event.pipeline_id,
                     stage_id=event.status_id, responsible_user_id=event.responsible_user_id,
                     modified_at=event.modified_at, expected_stage_id=event.old_status_id)
    if event.status_id is None:
        return "mirrored"
    says_won = account.is_won(event.pipeline_id, event.status_id)
    if sale is None:
        return READ if says_won else "mirrored"
    if sale.state != Sale.State.WON and not says_won:
        return "mirrored"
    if event.modified_at and sale.deal_updated_at:
        if event.modified_at < sale.deal_updated_at:
            return "stale"
        if event.modified_at == sale.deal_updated_at and says_won == (sale.state == Sale.State.WON):
            return "unchanged"
    return READ


def deal_events_apply(*, account: Account, events: list[DealEvent],
                      client: AmoCRMClient | None = None) -> AppliedEvents:
    """Apply a delivery's deal events; returns how many ended how (for the sync log) and which failed.

    Leads are mirrored from each event at once; every deal whose sale may change is then re-read
    — once, however many events name it — and applied as the API returns it (the truth: a deal
    the API no longer shows as won gets no sale, or loses it). An event or a deal that fails on
    anything but an amoCRM error fails alone: it is logged with its traceback, reported in the
    result, and the rest goes on. amoCRM errors propagate (the caller's task retries transient ones).
    """
    result = AppliedEvents()
    to_read: dict[int, list[str]] = {}  # deal id -> the items naming it, in order of first mention
    for event in events:
        try:
            with transaction.atomic():
                outcome = _triage(account=account, event=event)
        except Exception:  # noqa: BLE001 — one poison item must not stop the delivery
            logger.exception("deal event could not be applied",
                             extra={"account": account.pk, "deal": event.deal_id, "item": event.item})
            result.failures.append(DealFailure(event.deal_id, (event.item,), str(UNEXPECTED)))
            result.outcomes["failed"] += 1
            continue
        if outcome == READ:
            to_read.setdefault(event.deal_id, []).append(event.item)
        else:
            result.outcomes[outcome] += 1

    def failed(deal_id: int, exc: Exception) -> None:
        logger.error("re-read deal could not be applied", exc_info=exc,
                     extra={"account": account.pk, "deal": deal_id})
        result.failures.append(DealFailure(deal_id, tuple(to_read[deal_id]), str(UNEXPECTED)))
        result.outcomes["failed"] += 1

    if to_read:
        sales = deals_reread(account=account, deal_ids=list(to_read), client=client, on_error=failed)
        for sale in sales.values():
            result.outcomes[f"sale {sale.state}" if sale else "not won"] += 1
    return result
