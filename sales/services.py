"""Sales from amoCRM deals: the lead mirror, won/reverted/deleted sales confirmed by the API, reconciliation.

Webhooks are unsigned and may arrive late, twice, out of order or reduced to ids, so they are
treated as hints: a sale is only ever written from the deal as the amoCRM API returns it
(re-read with `GET /api/v4/leads/{id}`, or listed by the reconciliation), and only when that
deal is not older than what the sale already reflects (`Sale.deal_updated_at`).
"""

import hashlib
import logging
from collections import Counter
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from amocrm.client import PAGE_LIMIT, AmoCRMClient
from amocrm.models import Account, SyncLog
from leads.models import Lead

from .models import Sale

logger = logging.getLogger(__name__)

# The first reconciliation of an account looks this far back; later ones start at the checkpoint.
RECONCILE_LOOKBACK = timedelta(days=7)
# Re-list a little before the checkpoint: amoCRM's clock and ours differ, and a deal saved while
# the previous run was listing may carry an updated_at just before that run's start.
RECONCILE_OVERLAP = timedelta(minutes=5)
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


def _moment(timestamp) -> datetime | None:
    """amoCRM's unix seconds as an aware datetime; None for missing or 0 (an unset date)."""
    try:
        value = int(timestamp)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(value, tz=UTC) if value > 0 else None


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _main_contact_id(deal: dict) -> int | None:
    contacts = ((deal.get("_embedded") or {}).get("contacts")) or []
    main = next((c for c in contacts if isinstance(c, dict) and c.get("is_main")), None)
    if main is None:
        main = next((c for c in contacts if isinstance(c, dict)), None)
    return _int_or_none(main.get("id")) if main else None


# --- The mirrored stage of our own leads ----------------------------------------------------------


def lead_mirror_deal(*, account: Account, deal_id: int, pipeline_id: int | None = None,
                     stage_id: int | None = None, responsible_user_id: int | None = None,
                     modified_at: datetime | None = None, expected_stage_id: int | None = None) -> int:
    """Copy where the deal is now onto the leads that created it; returns the number of leads updated.

    `Lead.stage_changed_at` holds the amoCRM modification time of the newest deal state mirrored,
    and an older one changes nothing. Reduced webhook bodies carry no time at all: they apply as a
    compare-and-set on the stage they say the deal left (`expected_stage_id`), or, lacking that,
    only while nothing timestamped has been mirrored yet.
    """
    values = {name: value for name, value in (("pipeline_id", pipeline_id), ("stage_id", stage_id),
                                               ("responsible_user_id", responsible_user_id)) if value is not None}
    if not values:
        return 0
    if modified_at is not None:
        guard = Q(stage_changed_at__isnull=True) | Q(stage_changed_at__lte=modified_at)
        values["stage_changed_at"] = modified_at
    elif expected_stage_id is not None:
        guard = Q(stage_id__isnull=True) | Q(stage_id=expected_stage_id)
    else:
        guard = Q(stage_changed_at__isnull=True)
    return Lead.objects.filter(guard, account=account, amocrm_deal_id=deal_id).update(**values)


# --- Sales from deals as the API returns them -----------------------------------------------------


def _attribute(*, account: Account, deal_id: int, contact_id: int | None,
               won_at: datetime) -> tuple[Lead | None, str]:
    """The lead that created the deal; else the last lead of the deal's main contact before the win."""
    lead = (Lead.objects.filter(account=account, amocrm_deal_id=deal_id).order_by("created_at").first())
    if lead is not None:
        return lead, Sale.Attribution.DEAL
    if contact_id is not None:
        of_contact = Lead.objects.filter(account=account, amocrm_contact_id=contact_id)
        # Last touch: the campaign that brought the contact back most recently before the deal closed.
        lead = (of_contact.filter(created_at__lte=won_at).order_by("-created_at").first()
                or of_contact.order_by("created_at").first())
        if lead is not None:
            return lead, Sale.Attribution.CONTACT
    return None, Sale.Attribution.NONE


def sale_sync_from_deal(*, account: Account, deal: dict) -> Sale | None:
    """Create, update, revert or delete the deal's sale from the deal as the amoCRM API returned it.

    A deal in a won stage upserts its sale (amount, currency, name, stage, responsible, won at,
    attribution); any other deal only reverts an existing sale, and creates nothing. A deal older
    than the sale's `deal_updated_at` changes nothing. Safe to run concurrently for the same deal:
    the row is locked, and a racing insert's IntegrityError is retried as an update.
    """
    deal_id = int(deal["id"])
    pipeline_id = _int_or_none(deal.get("pipeline_id"))
    stage_id = _int_or_none(deal.get("status_id"))
    updated_at = _moment(deal.get("updated_at"))
    deleted = bool(deal.get("is_deleted"))
    won = not deleted and account.is_won(pipeline_id, stage_id)
    current = {
        "name": (deal.get("name") or "")[:255],
        "pipeline_id": pipeline_id,
        "stage_id": stage_id,
        "responsible_user_id": _int_or_none(deal.get("responsible_user_id")),
        "deal_updated_at": updated_at,
    }
    if won:
        won_at = _moment(deal.get("closed_at")) or updated_at or timezone.now()
        contact_id = _main_contact_id(deal)
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
        try:
            with transaction.atomic():
                sale = Sale.objects.select_for_update().filter(account=account, amocrm_deal_id=deal_id).first()
                if sale is None:
                    if not won:
                        return None
                    return Sale.objects.create(account=account, amocrm_deal_id=deal_id, state=new_state, **current)
                if sale.deal_updated_at and updated_at and updated_at < sale.deal_updated_at:
                    return sale  # an older picture of the deal than the one the sale already shows
                changed = [field for field, value in current.items() if getattr(sale, field) != value]
                if sale.state != new_state:
                    sale.state, sale.state_changed_at = new_state, timezone.now()
                    changed += ["state", "state_changed_at"]
                if changed:  # reconciliation re-lists unchanged deals every hour: write only what moved
                    for field in changed:
                        if field in current:
                            setattr(sale, field, current[field])
                    sale.save(update_fields=[*changed, "updated_at"])
                return sale
        except IntegrityError:
            # Another worker inserted the sale between our SELECT and INSERT: update that row instead.
            if attempt:
                raise
    return None  # not reached


def sale_mark_deleted(*, account: Account, deal_id: int) -> Sale | None:
    """The deal is gone from amoCRM (the API answers 204/404 for it): its sale, if any, becomes `deleted`."""
    with transaction.atomic():
        sale = Sale.objects.select_for_update().filter(account=account, amocrm_deal_id=deal_id).first()
        if sale is not None and sale.state != Sale.State.DELETED:
            sale.state = Sale.State.DELETED
            sale.state_changed_at = timezone.now()
            sale.save(update_fields=["state", "state_changed_at", "updated_at"])
    return sale


def deal_sync(*, account: Account, deal: dict) -> Sale | None:
    """Apply one deal as the API returned it: the lead mirror, then the sale."""
    lead_mirror_deal(
        account=account, deal_id=int(deal["id"]), pipeline_id=_int_or_none(deal.get("pipeline_id")),
        stage_id=_int_or_none(deal.get("status_id")),
        responsible_user_id=_int_or_none(deal.get("responsible_user_id")),
        modified_at=_moment(deal.get("updated_at")),
    )
    return sale_sync_from_deal(account=account, deal=deal)


def deal_refresh(*, account: Account, deal_id: int, client: AmoCRMClient | None = None) -> Sale | None:
    """Re-read the deal through the API (the truth) and apply it; a deal that is gone deletes its sale."""
    return deals_refresh(account=account, deal_ids=[deal_id], client=client)[deal_id]


def sale_refresh(*, sale: Sale) -> Sale | None:
    """Re-read a sale's deal now and apply it (the admin's "Re-read from amoCRM")."""
    return deal_refresh(account=sale.account, deal_id=sale.amocrm_deal_id)


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


def _lock_key(account: Account, deal_id: int) -> int:
    digest = hashlib.blake2b(f"sales.deal:{account.pk}:{deal_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def _deals_locked(account: Account, deal_ids: list[int]):
    """Hold a PostgreSQL session advisory lock per deal, so one worker at a time re-reads and applies a deal.

    Without it, two workers handling two deliveries about one deal could read it before and after
    a change made within the same second (amoCRM times have one-second resolution, so the
    `deal_updated_at` guard cannot order them) and write in the opposite order. Locks are taken in
    key order (no deadlock between overlapping deliveries) and released even on errors; a killed
    worker's locks die with its connection. Callers lock at most DEAL_BATCH deals at a time: each
    lock takes a slot of PostgreSQL's shared lock table. Other databases (the SQLite laptop mode)
    skip this.
    """
    if connection.vendor != "postgresql":
        yield
        return
    keys = sorted({_lock_key(account, deal_id) for deal_id in deal_ids})
    taken = []
    try:
        with connection.cursor() as cursor:
            for key in keys:
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
                taken.append(key)
        yield
    finally:
        with connection.cursor() as cursor:
            for key in taken:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


# Called with a deal id and the exception when one deal cannot be applied; without it the error propagates.
OnDealError = Callable[[int, Exception], None]


def _apply_read_deal(*, account: Account, deal_id: int, deals: dict[int, dict]) -> Sale | None:
    # In a transaction (a savepoint inside a caller's), so a deal the database refuses leaves the
    # connection usable for the next one.
    with transaction.atomic():
        if deal_id in deals:
            return deal_sync(account=account, deal=deals[deal_id])
        return sale_mark_deleted(account=account, deal_id=deal_id)


def deals_refresh(*, account: Account, deal_ids: list[int], client: AmoCRMClient | None = None,
                  on_error: OnDealError | None = None) -> dict[int, Sale | None]:
    """Re-read the deals and apply what the API says; returns each applied deal's sale or None.

    A batch (DEAL_BATCH deals) at a time: lock the batch, read it with one request, apply it,
    unlock. amoCRM errors of a read propagate (a transient one is retried by the caller's task);
    a deal that cannot be applied goes to `on_error` and the others go on, or, without `on_error`,
    stops everything.
    """
    results: dict[int, Sale | None] = {}
    for start in range(0, len(deal_ids), DEAL_BATCH):
        batch = deal_ids[start:start + DEAL_BATCH]
        with _deals_locked(account, batch):
            deals = _read_deals(account=account, deal_ids=batch, client=client)
            for deal_id in batch:
                try:
                    results[deal_id] = _apply_read_deal(account=account, deal_id=deal_id, deals=deals)
                except Exception as exc:  # noqa: BLE001 — one poison deal must not stop the batch
                    if on_error is None:
                        raise
                    on_error(deal_id, exc)
    return results


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
        sales = deals_refresh(account=account, deal_ids=list(to_read), client=client, on_error=failed)
        for sale in sales.values():
            result.outcomes[f"sale {sale.state}" if sale else "not won"] += 1
    return result


# --- Reconciliation: catching deliveries amoCRM lost ------------------------------------------------


def account_reconcile_deals(*, account_id: int, lookback: timedelta = RECONCILE_LOOKBACK,
                            overlap: timedelta = RECONCILE_OVERLAP) -> int:
    """Apply every deal updated since the account's checkpoint; returns the number of deals seen.

    The listing already carries price, stage and closed_at, so no deal is re-read. The checkpoint
    moves to the moment this run started, and only after every page was applied: a failure
    leaves it where it was and the next run (or the task's retry) lists the same deals again.
    """
    account = Account.objects.get(pk=account_id)
    started = timezone.now()
    since = (account.reconciled_until - overlap) if account.reconciled_until else started - lookback
    client = AmoCRMClient(account, log_context={"reconcile": True})
    seen = 0
    for deal in client.leads_updated_since(int(since.timestamp())):
        seen += 1
        try:
            # Under the deal's lock, like a webhook's re-read, so the two never interleave; in a
            # transaction of its own, so a deal the database refuses leaves the connection usable.
            with _deals_locked(account, [int(deal["id"])]), transaction.atomic():
                deal_sync(account=account, deal=deal)
        except Exception as exc:  # noqa: BLE001 — a poison deal fails alone, or the checkpoint never moves
            _reconcile_failure(account=account, deal=deal, exc=exc)
    # Never move the checkpoint backwards (a slow run finishing after a newer one).
    Account.objects.filter(pk=account.pk).filter(
        Q(reconciled_until__isnull=True) | Q(reconciled_until__lt=started)
    ).update(reconciled_until=started)
    logger.info("deals reconciled", extra={"account": account.pk, "deals": seen, "since": since.isoformat()})
    return seen


def _reconcile_failure(*, account: Account, deal, exc: Exception) -> None:
    """Log the traceback and leave a sync-log error row an operator can find (by deal id)."""
    deal_id = _int_or_none(deal.get("id")) if isinstance(deal, dict) else None
    logger.error("reconciled deal could not be applied", exc_info=exc, extra={"account": account.pk, "deal": deal_id})
    SyncLog.objects.create(
        account=account, operation="reconcile.deal", direction=SyncLog.Direction.INBOUND,
        status=SyncLog.Status.ERROR, context={"deal": deal_id, "reconcile": True},
        error=_("Deal %(deal)s could not be applied during reconciliation: %(reason)s. The other deals were "
                "applied; this one is applied again with its next change in amoCRM, or by “Re-read from amoCRM” "
                "on its sale.") % {"deal": deal_id, "reason": UNEXPECTED},
    )


def accounts_to_reconcile() -> list[int]:
    """Ids of the accounts the API can be called for."""
    return list(Account.objects.filter(state=Account.State.CONNECTED).order_by("pk").values_list("pk", flat=True))
