"""Lead services: accept a form post as an outbox row, push pending leads to amoCRM in batches, operator actions."""

import hashlib
import json
import logging
import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy

from amocrm import errors
from amocrm.client import AmoCRMClient
from amocrm.models import Account, CustomField
from config.queue import publish

from . import marks, payloads
from .models import ContactMatch, Lead, LeadSource

logger = logging.getLogger(__name__)

# Identical submissions (same source, phone, email, message) this close together are one double click.
DOUBLE_SUBMIT_SECONDS = 10
# leads/complex takes at most 50 deals (amocrm-notes.md §2); notes and unsorted batches follow it.
BATCH_SIZE = 50
# One task run pushes batches for at most this long, well inside the soft time limit, then hands over.
PUSH_TIME_BUDGET = 120
# While a push task is queued for an account, new leads do not queue another one.
PUSH_SCHEDULED_SECONDS = 10
# A push told that leads were on their way when it started gives them this long to commit (see the mark).
PUSH_TAKE_GRACE = 1.0
# A lead that keeps failing transiently becomes `failed` (visible, retryable) after this many attempts.
MAX_ATTEMPTS = 15
BACKOFF_BASE_SECONDS = 5
BACKOFF_CAP_SECONDS = 1800
NOTE_RETRY_SECONDS = 60
# A push stopped by an error nobody foresaw runs again after about this long.
UNEXPECTED_RETRY_SECONDS = 60
# The sweeper leaves fresh leads to the task their request enqueued.
SWEEP_AFTER = timedelta(seconds=10)
# A claim is a lease: the push renews it as it works (at most every PUSH_LEASE_RENEW_AFTER seconds, one
# UPDATE of its batch), so a lease that ran out means the push died; the sweeper (every 30 s) then queues a
# push, which takes the leads back — about a minute after the death. A live push whose lease lapses during
# one long amoCRM call loses nothing: the push queued for it finds the account's lock held and steps aside.
PUSH_LEASE = timedelta(seconds=30)
PUSH_LEASE_RENEW_AFTER = 10
# Our clock and amoCRM's may differ: look for adopted deals updated a little before the attempt.
ADOPTION_CLOCK_MARGIN = timedelta(minutes=5)
SOURCE_CACHE_SECONDS = 5
# pg_try_advisory_lock(namespace, account id): one push per account across all workers and hosts.
PUSH_LOCK_NAMESPACE = 0x1EAD

# What an operator reads on a lead when the push met something it did not foresee (the log has the rest).
UNBUILDABLE = {
    "deal": gettext_lazy(
        "This lead could not be turned into an amoCRM deal: building it failed on this lead's values. Check "
        "the lead source's deal name template and field mapping, then use “Retry push”. The worker log has "
        "the details under this lead's id."),
    "unsorted": gettext_lazy(
        "This lead could not be turned into an amoCRM incoming lead: building it failed on this lead's values. "
        "Check the lead source's deal name template and field mapping, then use “Retry push”. The worker log "
        "has the details under this lead's id."),
    "contact": gettext_lazy(
        "Finding or building this lead's contact failed unexpectedly. Check the lead's phone and email, then "
        "use “Retry push”. The worker log has the details under this lead's id."),
}
NOTE_UNBUILDABLE = gettext_lazy(
    "The deal is in amoCRM, but its note (message, page, UTM, form fields) could not be built from this "
    "lead's values, so none was added; the values are still here. The worker log has the details under "
    "this lead's id; retrying will not add the note.")
BATCH_INTERRUPTED = gettext_lazy(
    "An unexpected error interrupted the push of this lead's batch. The push will retry it by itself, "
    "looking first for a deal an earlier attempt may have created; if it keeps failing, the worker log has "
    "the details.")


def _due() -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=timezone.now())


# ============================================================================ sources


_source_cache: dict[str, tuple[float, LeadSource | None]] = {}
_origin_cache: dict[str, tuple[float, frozenset[str]]] = {}


def lead_source_cache_clear() -> None:
    """Forget cached sources and origins (called whenever a LeadSource is saved or deleted)."""
    _source_cache.clear()
    _origin_cache.clear()


def lead_source_get_active(*, public_key: str) -> LeadSource | None:
    """The active source with this public key, cached for a few seconds per process (intake is hot)."""
    now = time.monotonic()
    hit = _source_cache.get(public_key)
    if hit is not None and hit[0] > now:
        return hit[1]
    source = LeadSource.objects.filter(public_key=public_key, is_active=True).first()
    if len(_source_cache) > 1000:  # junk keys must not grow the cache without bound
        _source_cache.clear()
    _source_cache[public_key] = (now + SOURCE_CACHE_SECONDS, source)
    return source


def normalize_origin(origin: str) -> str:
    return (origin or "").strip().rstrip("/").lower()


def lead_source_allows_origin(*, source: LeadSource, origin: str | None) -> bool:
    """A request without Origin is server-to-server (no browser to protect); a browser's must be listed."""
    if not origin:
        return True
    return normalize_origin(origin) in {normalize_origin(item) for item in source.allowed_origins or []}


def lead_sources_allow_origin(*, origin: str) -> bool:
    """Whether any active source lists this origin (for CORS preflights, which name no source)."""
    now = time.monotonic()
    hit = _origin_cache.get("all")
    if hit is None or hit[0] <= now:
        origins = frozenset(
            normalize_origin(item)
            for listed in LeadSource.objects.filter(is_active=True).values_list("allowed_origins", flat=True)
            for item in listed or []
        )
        hit = (now + SOURCE_CACHE_SECONDS, origins)
        _origin_cache["all"] = hit
    return normalize_origin(origin) in hit[1]


def lead_source_ensure_default(*, account: Account) -> LeadSource:
    """The account's default source ("Website", deal mode), created once however often it is connected."""
    existing = LeadSource.objects.filter(account=account, is_default=True).first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return LeadSource.objects.create(account=account, name="Website", is_default=True,
                                             mode=LeadSource.Mode.DEAL)
    except IntegrityError:  # a concurrent connect created it first
        return LeadSource.objects.get(account=account, is_default=True)


# ============================================================================ intake


@dataclass(frozen=True)
class LeadAccepted:
    """The answer to a form post. `status` is what the visitor sees: spam is answered like any other lead."""

    id: uuid.UUID
    created: bool
    status: str = Lead.Status.PENDING


def _fingerprint(*, source: LeadSource, phone: str, email: str, message: str) -> str:
    raw = "\x1f".join([str(source.pk), phone, email, message])
    return hashlib.sha256(raw.encode()).hexdigest()


def _submission_hash(*, data: dict, spam: bool) -> str:
    """What a repeat of a keyed post must match: the validated values (normalized, so "8 912…" and
    "+7912…" are one phone), not the raw bytes."""
    canonical = json.dumps([data, spam], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


class LeadRateLimited(Exception):
    """The sender is over its intake limit: nothing was stored."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key already names another submission to this source: nothing was stored."""


@dataclass(frozen=True)
class _Admission:
    first: uuid.UUID | None  # an identical submission within the window: answer with it, store nothing
    push: str  # "queue": queue the account's push after commit; "queued": one is queued already; "unknown"


def _admit(*, source: LeadSource, fingerprint: str, lead_id: uuid.UUID, rate_limit: marks.Limit | None,
           schedule: bool) -> _Admission:
    """The intake's one Redis round trip before its INSERT: count the sender, reserve the double-click
    window for `lead_id`, and find out whether the account's push must be queued (see lead_schedule_push).

    An atomic set-if-absent makes two simultaneous clicks race-safe: exactly one of them reserves the
    fingerprint. Over `rate_limit`: LeadRateLimited, and nothing reserved. Without the cache (Redis
    down) the limit is not applied, a database lookup still catches the usual double click, and the
    push is scheduled the slow way.
    """
    try:
        admission = marks.admit(
            limit=rate_limit, claim=marks.Claim(f"leads:fp:{fingerprint}", str(lead_id), DOUBLE_SUBMIT_SECONDS),
            mark=_push_scheduled_mark(source.account_id) if schedule else None)
    except Exception as exc:  # noqa: BLE001 — a cache outage must not lose the lead
        marks.log_trouble("double-submit check without cache", exc)
        since = timezone.now() - timedelta(seconds=DOUBLE_SUBMIT_SECONDS)
        first = (Lead.objects.filter(source=source, fingerprint=fingerprint, created_at__gte=since)
                 .values_list("id", flat=True).first())
        return _Admission(first=first, push="unknown")
    if not admission.within_limit:
        raise LeadRateLimited()
    if admission.holder is not None:
        return _Admission(first=uuid.UUID(admission.holder), push="queued")
    return _Admission(first=None, push="queue" if admission.marked else "queued")


def _forget_double_submit(fingerprint: str, lead_id: uuid.UUID) -> None:
    try:
        marks.release(f"leads:fp:{fingerprint}", str(lead_id))
    except Exception as exc:  # noqa: BLE001
        marks.log_trouble("could not release the double-submit window", exc)


def lead_create(*, source: LeadSource, data: dict, ip: str | None = None, user_agent: str = "",
                idempotency_key: str = "", spam: bool = False, rate_limit: marks.Limit | None = None) -> LeadAccepted:
    """Store one validated form submission and schedule its push after commit; never calls amoCRM.

    `data` holds normalized values (phone in E.164, email lower-case). The same `idempotency_key`
    for the same source, or an identical submission within DOUBLE_SUBMIT_SECONDS, answers with the
    first lead and stores nothing. A `spam` lead (honeypot filled) is stored but never pushed.
    The key is checked by the INSERT itself (a unique constraint): a new key costs no extra query,
    a repeated one a lookup after the refused INSERT. A repeated key whose submission differs from
    the first one's raises IdempotencyKeyReused (the key is the sender's promise that it is the same
    submission; a broken promise must not silently drop the second one). `rate_limit`, the sender's
    throttle window, is counted first; over it, LeadRateLimited and nothing stored.
    """
    phone, email, message = data.get("phone", ""), data.get("email", ""), data.get("message", "")
    fingerprint = _fingerprint(source=source, phone=phone, email=email, message=message)
    submission = _submission_hash(data=data, spam=spam) if idempotency_key else ""
    lead_id = uuid.uuid4()
    admission = _admit(source=source, fingerprint=fingerprint, lead_id=lead_id, rate_limit=rate_limit,
                       schedule=not spam)
    if admission.first is not None:
        # A double click; with a key, the key's own lead (when stored already) decides.
        keyed = _lead_of_key(source, idempotency_key, submission) if idempotency_key else None
        return LeadAccepted(id=keyed or admission.first, created=False)
    lead = Lead(
        id=lead_id, source=source, account_id=source.account_id,
        name=data.get("name", ""), phone_raw=data.get("phone_raw", ""), phone=phone, email=email, message=message,
        utm_source=data.get("utm_source", ""), utm_medium=data.get("utm_medium", ""),
        utm_campaign=data.get("utm_campaign", ""), utm_term=data.get("utm_term", ""),
        utm_content=data.get("utm_content", ""), referrer=data.get("referrer", ""),
        page_url=data.get("page_url", ""), fields=data.get("fields") or {},
        ip=ip, user_agent=(user_agent or "").replace("\x00", "")[:500], idempotency_key=idempotency_key,
        fingerprint=fingerprint, submission_hash=submission,
        status=Lead.Status.SPAM if spam else Lead.Status.PENDING,
    )
    try:
        if idempotency_key and connection.in_atomic_block:
            # A refused INSERT would break the caller's transaction: contain it in a savepoint. (In
            # autocommit, the intake's case, it leaves nothing behind.)
            with transaction.atomic():
                lead.save(force_insert=True)
        else:
            lead.save(force_insert=True)
    except IntegrityError:
        _forget_double_submit(fingerprint, lead_id)
        _give_back_push_mark(source.account_id, admission)
        first = _lead_of_key(source, idempotency_key, submission) if idempotency_key else None
        if first is None:
            raise
        return LeadAccepted(id=first, created=False)
    except Exception:
        _forget_double_submit(fingerprint, lead_id)
        _give_back_push_mark(source.account_id, admission)
        raise
    if admission.push == "queue":
        transaction.on_commit(lambda: _publish_marked_push(source.account_id))
    elif admission.push == "unknown" and not spam:
        lead_schedule_push(account_id=source.account_id)
    return LeadAccepted(id=lead_id, created=True)


def _lead_of_key(source: LeadSource, idempotency_key: str, submission: str) -> uuid.UUID | None:
    """The lead stored under this key (None: none yet); IdempotencyKeyReused when it holds another submission.

    Only a repeated key pays for this lookup. Leads stored before submissions were hashed match any.
    """
    row = (Lead.objects.filter(source=source, idempotency_key=idempotency_key)
           .values_list("id", "submission_hash").first())
    if row is None:
        return None
    first, stored = row
    if stored and stored != submission:
        raise IdempotencyKeyReused()
    return first


# ---------------------------------------------------------------------------- the "push queued" mark
#
# While a push task is queued for an account, new leads do not queue another: a mark in the cache
# says one is on its way. The push takes the mark (removes it) first thing, before it claims leads.
#
# A caller that checks the mark after its transaction committed (lead_schedule_push) is race-free: a
# push whose mark it finds has not claimed yet, so it will see the lead. The intake checks before
# its INSERT instead, in the round trip it makes anyway, which saves a blocking round trip per lead.
# A lead that found the mark can then commit after the queued push has claimed. So the intake adds
# itself to the mark's tally, and a push that takes a non-zero tally waits until PUSH_TAKE_GRACE has
# passed since the take before its last look for pending leads (or, when another push holds the
# account, hands over to a run after the grace). A lead is missed only when its request stalls
# longer than that between its Redis call and its commit; the sweeper then queues it.


def _push_scheduled_mark(account_id: int) -> marks.Mark:
    return marks.Mark(key=f"leads:push-scheduled:{account_id}", tally_key=f"leads:push-tally:{account_id}",
                      seconds=PUSH_SCHEDULED_SECONDS)


def lead_schedule_push(*, account_id: int) -> None:
    """After the current transaction commits, queue a push for the account unless one is already queued.

    A broker that is down loses nothing: the lead stays pending and the sweeper queues it.
    """
    transaction.on_commit(lambda: _publish_push(account_id))


def _publish_push(account_id: int) -> bool:
    mark = _push_scheduled_mark(account_id)
    try:
        if not marks.mark(mark.key, seconds=mark.seconds):
            return False
    except marks.Unavailable:
        return False  # Redis, the broker too, timed out moments ago: the sweeper queues the push
    except Exception as exc:  # noqa: BLE001 — without the cache, queue every time
        logger.warning("push debounce unavailable", extra={"error": repr(exc)})
    return _publish_marked_push(account_id)


def _publish_marked_push(account_id: int) -> bool:
    """Queue the push whose mark this caller set; give the mark back when the broker is down."""
    from .tasks import push_account_leads

    if publish(push_account_leads, account_id):
        return True
    _clear_push_scheduled(account_id)
    return False


def _give_back_push_mark(account_id: int, admission: _Admission) -> None:
    # The mark was set for a lead that was not stored: nothing will queue the push it announces.
    if admission.push == "queue":
        _clear_push_scheduled(account_id)


def _clear_push_scheduled(account_id: int) -> None:
    try:
        marks.release(_push_scheduled_mark(account_id).key)
    except Exception as exc:  # noqa: BLE001
        marks.log_trouble("push debounce not cleared", exc)


def _take_push_scheduled(account_id: int) -> int:
    """Remove the account's mark; how many intake requests found it set (their leads may not be committed)."""
    try:
        return marks.take_mark(_push_scheduled_mark(account_id))
    except Exception as exc:  # noqa: BLE001 — assume the worst: wait out the grace
        marks.log_trouble("push mark not taken", exc)
        return 1


# ============================================================================ operator actions


def lead_retry(*, lead_ids: list) -> int:
    """Failed, spam or backing-off pending leads → pending, due now, attempts reset; then a push is queued.

    A lead whose earlier write may have reached amoCRM keeps that mark, so the retry adopts the deal
    rather than creating a second one.
    """
    retryable = [Lead.Status.FAILED, Lead.Status.SPAM, Lead.Status.PENDING]
    with transaction.atomic():
        leads = Lead.objects.filter(pk__in=lead_ids, status__in=retryable)
        account_ids = set(leads.values_list("account_id", flat=True))
        count = leads.update(status=Lead.Status.PENDING, next_attempt_at=None, attempts=0, claimed_at=None)
        for account_id in account_ids:
            lead_schedule_push(account_id=account_id)
    return count


def lead_mark_spam(*, lead_ids: list) -> int:
    """Pending or failed leads → spam (never pushed). Leads being sent or already in amoCRM are left alone."""
    return (Lead.objects.filter(pk__in=lead_ids, status__in=[Lead.Status.PENDING, Lead.Status.FAILED])
            .update(status=Lead.Status.SPAM, next_attempt_at=None))


# ============================================================================ push


@dataclass
class PushOutcome:
    """What one `leads_push` run did, and what the task should do next."""

    sent: int = 0
    adopted: int = 0
    failed: int = 0
    deferred: int = 0
    notes: int = 0
    # Transient trouble: run again after this many seconds (Celery retry with backoff).
    retry_in: float | None = None
    # Stopped with work left (time budget, or leads that arrived meanwhile): run again now.
    more: bool = False
    # Why the run stopped early: "not connected", "busy", "rate limited", "blocked", "needs the operator".
    stopped: str = ""
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if value not in (0, None, False, "", [])}

    def retry_after(self, seconds: float) -> None:
        self.retry_in = seconds if self.retry_in is None else min(self.retry_in, seconds)


class _Stop(Exception):
    """An account-level error: stop pushing for this account now (leads stay pending)."""

    def __init__(self, reason: str, retry_in: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_in = retry_in


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter: 5 s, 10 s, 20 s … capped at 30 min, each 50–100 % of that."""
    delay = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)


@contextmanager
def _account_push_lock(account_id: int):
    """One push per account at a time: a session advisory lock in PostgreSQL (a killed worker's dies with
    its connection), a cache lock with a timeout elsewhere."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [PUSH_LOCK_NAMESPACE, account_id % 2**31])
            locked = bool(cursor.fetchone()[0])
        try:
            yield locked
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [PUSH_LOCK_NAMESPACE, account_id % 2**31])
        return
    key, token = f"leads:push-lock:{account_id}", uuid.uuid4().hex
    locked = cache.add(key, token, timeout=settings.CELERY_TASK_TIME_LIMIT + 60)
    try:
        yield locked
    finally:
        if locked and cache.get(key) == token:
            cache.delete(key)


def leads_push(*, account_id: int, time_budget: float = PUSH_TIME_BUDGET) -> PushOutcome:
    """Push the account's due pending leads to amoCRM in batches of up to 50, then their notes.

    Guarantees: at most one push per account runs at a time; a lead's deal is created at most once
    (a write whose answer was lost is found again by the lead's marker tag and adopted); two leads
    of one new person never create two contacts; a transient error backs the affected leads off and
    asks for a retry; 429/blocked/not connected leave leads pending for later; a validation error
    fails only the leads amoCRM named, with its message.
    """
    taken_at, on_their_way = time.monotonic(), _take_push_scheduled(account_id)
    outcome = PushOutcome()
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.can_call_api:
        outcome.stopped = "not connected"
        return outcome
    with _account_push_lock(account_id) as locked:
        if not locked:
            outcome.stopped = "busy"
            if on_their_way:
                # The running push may take its last look before these leads commit: look again later.
                outcome.retry_after(PUSH_TAKE_GRACE)
            return outcome
        # No other push can run for this account now: a lead still `sending` was left by one that died.
        _unclaim(Lead.objects.filter(account_id=account_id, status=Lead.Status.SENDING))
        deadline = time.monotonic() + time_budget
        try:
            pusher = _Pusher(account, outcome)
            while pusher.push_batch():
                if time.monotonic() > deadline:
                    outcome.more = True
                    break
        except _Stop as stop:
            outcome.stopped = stop.reason
            if stop.retry_in is not None:
                outcome.retry_after(stop.retry_in)
        except Exception:
            # Outside any one batch (a batch catches its own): nothing may stay claimed, and the task
            # comes back later rather than at once, in case the cause lasts.
            logger.exception("lead push failed unexpectedly", extra={"account": account_id})
            _unclaim(Lead.objects.filter(account_id=account_id, status=Lead.Status.SENDING))
            outcome.stopped = "unexpected error"
            outcome.retry_after(UNEXPECTED_RETRY_SECONDS * random.uniform(1, 1.5))
    if not outcome.stopped and not outcome.more:
        if on_their_way:  # leads whose requests found this push queued: give them time to commit
            time.sleep(max(0.0, PUSH_TAKE_GRACE - (time.monotonic() - taken_at)))
        # Checked after the lock is released: a lead whose task found the lock taken is seen here.
        outcome.more = _outstanding(account_id).filter(_due()).exists()
        if not outcome.more:
            # Leads backing off since an earlier run (whose retry may have stepped aside as "busy") are
            # this run's to come back for.
            next_at = _outstanding(account_id).order_by("next_attempt_at").values_list(
                "next_attempt_at", flat=True).first()
            if next_at is not None:
                outcome.retry_after(max(0.0, (next_at - timezone.now()).total_seconds()) + random.uniform(0, 1))
    return outcome


def _unclaim(leads) -> int:
    return leads.update(status=Lead.Status.PENDING, claimed_at=None, lease_expires_at=None)


def _outstanding(account_id: int):
    """Leads of the account that still need a push: pending ones, and sent ones whose note is missing."""
    return Lead.objects.filter(Q(status=Lead.Status.PENDING) | Q(status=Lead.Status.SENT, note_pending=True),
                               account_id=account_id)


def leads_sweep() -> int:
    """Queue a push for every connected account with leads the queue may have lost; returns how many."""
    now = timezone.now()
    work = (
        (Q(status=Lead.Status.PENDING, created_at__lte=now - SWEEP_AFTER) & _due())
        | (Q(status=Lead.Status.SENDING) & ~Q(lease_expires_at__gt=now))  # no lease (an old row) counts as run out
        | (Q(status=Lead.Status.SENT, note_pending=True) & _due())
    )
    account_ids = (Lead.objects.filter(work, account__state=Account.State.CONNECTED)
                   .order_by().values_list("account_id", flat=True).distinct())
    from .tasks import push_account_leads

    queued = 0
    for account_id in account_ids:
        queued += publish(push_account_leads, account_id)
    return queued


def _keys_of(lead: Lead) -> list[tuple[str, str]]:
    keys = []
    if lead.phone:
        keys.append((ContactMatch.Kind.PHONE, lead.phone))
    if lead.email:
        keys.append((ContactMatch.Kind.EMAIL, lead.email))
    return keys


class _Pusher:
    """One account's push: claims batches and carries the client, the field cache and the outcome."""

    def __init__(self, account: Account, outcome: PushOutcome):
        self.account = account
        self.outcome = outcome
        self.client = AmoCRMClient(account, log_context={"push": "leads"})
        fields = list(CustomField.objects.filter(account=account))
        self.fields_by_id = {
            item.amocrm_id: payloads.FieldInfo(
                id=item.amocrm_id, code=item.code, type=item.type,
                enums=tuple(str(enum.get("value")) for enum in item.enums or [] if isinstance(enum, dict)),
            )
            for item in fields
        }
        codes = set(payloads.TRACKING_CODES.values())
        # Prefer the tracking_data field when a code is (oddly) on two fields.
        ordered = sorted((item for item in fields if item.code in codes), key=lambda item: item.type != "tracking_data")
        self.tracking: dict[str, payloads.FieldInfo] = {}
        for item in ordered:
            self.tracking.setdefault(item.code, self.fields_by_id[item.amocrm_id])
        self._leased: list = []  # the batch in hand, whose lease _renew_lease extends
        self._renewed_at = 0.0

    # ------------------------------------------------------------------ batch

    def push_batch(self) -> bool:
        """Claim and push one batch; False when nothing was due.

        An error nobody foresaw while building one lead's request fails that lead alone, visibly
        (`_unbuildable`). One outside any single lead (an answer of a shape never seen, a bug) backs
        the batch off like a transient error: nothing stays `sending`, the leads whose write may have
        gone out are looked for before they are created again, and a lasting cause ends in `failed`
        after MAX_ATTEMPTS instead of holding up the account's newer leads.
        """
        leads = self._claim()
        if leads:
            try:
                leads = self._adopt(leads)
                deal_leads = [lead for lead in leads if lead.source.mode == LeadSource.Mode.DEAL]
                unsorted_leads = [lead for lead in leads if lead.source.mode == LeadSource.Mode.UNSORTED]
                self._write_deals(self._resolve_contacts(deal_leads))
                self._write_unsorted(unsorted_leads)
            except _Stop:
                self._release_still_sending(leads)
                raise
            except Exception:
                logger.exception("lead batch failed unexpectedly",
                                 extra={"account": self.account.pk, "leads": [str(lead.pk) for lead in leads]})
                sending = set(Lead.objects.filter(pk__in=[lead.pk for lead in leads], status=Lead.Status.SENDING)
                              .values_list("pk", flat=True))
                self._release([lead for lead in leads if lead.pk in sending], error=str(BATCH_INTERRUPTED),
                              backoff=True)
            finally:
                self._leased = []
        noted = self._write_notes()
        return bool(leads) or noted

    def _claim(self) -> list[Lead]:
        now = timezone.now()
        with transaction.atomic():
            ids = list(
                Lead.objects.filter(_due(), account_id=self.account.pk, status=Lead.Status.PENDING)
                .order_by("created_at").select_for_update(skip_locked=True).values_list("pk", flat=True)[:BATCH_SIZE]
            )
            Lead.objects.filter(pk__in=ids).update(status=Lead.Status.SENDING, claimed_at=now,
                                                   lease_expires_at=now + PUSH_LEASE, attempts=F("attempts") + 1)
        self._leased, self._renewed_at = ids, time.monotonic()
        return list(Lead.objects.filter(pk__in=ids).select_related("source").order_by("created_at"))

    def _renew_lease(self) -> None:
        """A checkpoint between steps of a batch: extend its lease once PUSH_LEASE_RENEW_AFTER has passed.

        Mostly a clock read; at most one UPDATE of the batch every PUSH_LEASE_RENEW_AFTER seconds.
        """
        if self._leased and time.monotonic() - self._renewed_at >= PUSH_LEASE_RENEW_AFTER:
            Lead.objects.filter(pk__in=self._leased, status=Lead.Status.SENDING).update(
                lease_expires_at=timezone.now() + PUSH_LEASE)
            self._renewed_at = time.monotonic()

    def _unbuildable(self, lead: Lead, part: str) -> None:
        """Fail one lead whose request could not be built (its values met something unforeseen); the rest go on."""
        logger.exception("lead could not be built for amoCRM", extra={"lead": str(lead.pk), "part": part})
        self._fail([lead], str(UNBUILDABLE[part]))

    # ------------------------------------------------------------------ state changes

    def _context(self, leads) -> dict:
        return {"leads": [str(lead.pk) for lead in leads][:BATCH_SIZE]}

    def _link(self, start: int, leads) -> None:
        """Link the sync-log rows written since `start` to the leads they concern."""
        logs = self.client.logs[start:]
        if not logs or not leads:
            return
        through = Lead.sync_logs.through
        through.objects.bulk_create(
            [through(lead_id=lead.pk, synclog_id=log.pk) for log in logs for lead in leads], ignore_conflicts=True)

    def _release(self, leads, *, error: str = "", backoff: bool = False, keep_write_mark: bool = True,
                 uncount: bool = False) -> None:
        """Back to pending: now (deferred, rate limited, account paused) or after a backoff (transient error).

        A lead out of attempts becomes `failed` instead: visible, with the error, retryable by the operator.
        """
        for lead in leads:
            values = {"status": Lead.Status.PENDING, "claimed_at": None, "lease_expires_at": None,
                      "next_attempt_at": None}
            if error:
                values["last_error"] = error[:2000]
            if not keep_write_mark:
                values["write_attempted_at"] = None
            if uncount:
                values["attempts"] = F("attempts") - 1
            if backoff:
                if lead.attempts >= MAX_ATTEMPTS:
                    values.update(status=Lead.Status.FAILED,
                                  last_error=f"Gave up after {lead.attempts} attempts: {error}"[:2000])
                    self.outcome.failed += 1
                else:
                    delay = backoff_seconds(lead.attempts)
                    values["next_attempt_at"] = timezone.now() + timedelta(seconds=delay)
                    self.outcome.retry_after(delay)
            Lead.objects.filter(pk=lead.pk, status=Lead.Status.SENDING).update(**values)

    def _release_still_sending(self, leads) -> None:
        # Stopped before their write: this claim was no attempt.
        Lead.objects.filter(pk__in=[lead.pk for lead in leads], status=Lead.Status.SENDING).update(
            status=Lead.Status.PENDING, claimed_at=None, lease_expires_at=None, attempts=F("attempts") - 1)

    def _fail(self, leads, message: str) -> None:
        Lead.objects.filter(pk__in=[lead.pk for lead in leads], status=Lead.Status.SENDING).update(
            status=Lead.Status.FAILED, last_error=message[:2000], write_attempted_at=None, claimed_at=None,
            lease_expires_at=None)
        self.outcome.failed += len(leads)
        self.outcome.errors.append(message[:500])

    def _mark_sent(self, lead: Lead, *, deal_id: int, contact_id: int | None, unsorted_uid: str = "") -> None:
        note, problem = self._note_of(lead)
        Lead.objects.filter(pk=lead.pk).update(
            status=Lead.Status.SENT, sent_at=timezone.now(), amocrm_deal_id=deal_id, amocrm_contact_id=contact_id,
            amocrm_unsorted_uid=unsorted_uid, write_attempted_at=None, claimed_at=None, lease_expires_at=None,
            next_attempt_at=None, last_error=problem, note_pending=bool(note),
        )

    @staticmethod
    def _note_of(lead: Lead) -> tuple[str, str]:
        """The note's text and "", or "" and what to tell the operator when it could not be built."""
        try:
            return payloads.note_text(lead, lead.source), ""
        except Exception:
            logger.exception("lead note could not be built", extra={"lead": str(lead.pk)})
            return "", str(NOTE_UNBUILDABLE)

    def _learn(self, pairs: list[tuple[tuple[str, str], int]]) -> None:
        """Remember normalized phone/email → contact id for the next leads of the same people."""
        if not pairs:
            return
        ContactMatch.objects.bulk_create(
            [ContactMatch(account=self.account, kind=kind, value=value, contact_id=contact_id)
             for (kind, value), contact_id in dict(pairs).items()],
            update_conflicts=True, unique_fields=["account", "kind", "value"], update_fields=["contact_id"],
        )

    def _account_error(self, exc: errors.AmoCRMError) -> _Stop | None:
        """The _Stop for an error that concerns the whole account, or None for one about this request."""
        if isinstance(exc, errors.RateLimited):
            # The limiter already paused the account for everyone; come back once the pause is over.
            from amocrm.client import RATE_LIMIT_PAUSE_SECONDS

            return _Stop("rate limited", retry_in=RATE_LIMIT_PAUSE_SECONDS + random.uniform(0.5, 2))
        if isinstance(exc, errors.AccountBlocked):
            return _Stop("blocked")
        if isinstance(exc, errors.AuthError | errors.AccountUnavailable):
            return _Stop("needs the operator")
        return None

    # ------------------------------------------------------------------ adopt what an earlier attempt created

    def _adopt(self, leads: list[Lead]) -> list[Lead]:
        """Find the deals of earlier writes whose answers were lost; returns the leads still to create."""
        uncertain = [lead for lead in leads if lead.write_attempted_at is not None]
        if not uncertain:
            return leads
        wanted = {payloads.marker_of(lead): lead for lead in uncertain}
        since = min(lead.write_attempted_at for lead in uncertain) - ADOPTION_CLOCK_MARGIN
        found: dict[str, dict] = {}
        start = len(self.client.logs)
        try:
            for deal in self.client.leads_updated_since(int(since.timestamp())):
                self._renew_lease()
                for tag in (deal.get("_embedded") or {}).get("tags") or []:
                    if tag.get("name") in wanted:
                        found.setdefault(tag["name"], deal)
                if len(found) == len(wanted):
                    break  # stop paging once every marker is found
        except errors.AmoCRMError as exc:
            self._link(start, uncertain)
            stop = self._account_error(exc)
            if stop is not None:
                raise stop from exc
            # Creating again without knowing would risk a duplicate: these wait, the rest go ahead.
            self._release(uncertain, error=f"Looking for an earlier attempt's deal failed: {exc}", backoff=True)
            return [lead for lead in leads if lead.write_attempted_at is None]
        self._link(start, uncertain)
        learned = []
        for marker, lead in wanted.items():
            deal = found.get(marker)
            if deal is None:
                continue
            contacts = (deal.get("_embedded") or {}).get("contacts") or []
            main = next((c for c in contacts if c.get("is_main")), contacts[0] if contacts else None)
            contact_id = main.get("id") if main else None
            self._mark_sent(lead, deal_id=deal["id"], contact_id=contact_id)
            self.outcome.adopted += 1
            if contact_id and lead.source.mode == LeadSource.Mode.DEAL:
                learned += [(key, contact_id) for key in _keys_of(lead)]
        self._learn(learned)
        adopted = {wanted[marker].pk for marker in found}
        return [lead for lead in leads if lead.pk not in adopted]

    # ------------------------------------------------------------------ contacts

    def _resolve_contacts(self, leads: list[Lead]) -> list[tuple[Lead, dict]]:
        """Each lead with the contact for its deal: {"id": N} for a known person, the full contact for a new one.

        A second lead of a person this batch creates is deferred to the next batch (amoCRM never compares
        the deals of one request), where the person is known. Lookup order: leads earlier in the batch,
        the local map, then one verified search.
        """
        if not leads:
            return []
        keys = {key for lead in leads for key in _keys_of(lead)}
        known: dict[tuple[str, str], int] = {}
        if keys:
            rows = ContactMatch.objects.filter(account=self.account, value__in={value for _, value in keys})
            known = {(row.kind, row.value): row.contact_id for row in rows if (row.kind, row.value) in keys}
        in_batch: dict[tuple[str, str], tuple[str, int | uuid.UUID]] = {}
        ready, deferred = [], []
        for lead in leads:
            lead_keys = _keys_of(lead)
            earlier = [in_batch[key] for key in lead_keys if key in in_batch]
            if any(kind == "new" for kind, _ in earlier):
                deferred.append(lead)
                continue
            contact_id = next((value for kind, value in earlier if kind == "existing"), None)
            if contact_id is None:
                contact_id = next((known[key] for key in lead_keys if key in known), None)
            if contact_id is None:
                self._renew_lease()
                try:
                    contact_id = self._search_contact(lead)
                except errors.AmoCRMError as exc:
                    stop = self._account_error(exc)
                    if stop is not None:
                        self._release(deferred, uncount=True)
                        raise stop from exc
                    if not exc.transient:
                        # A refused search says nothing about the person: create the contact rather than stall.
                        logger.warning("contact search refused", extra={"lead": str(lead.pk), "error": str(exc)})
                    else:
                        self._release([lead], error=f"Contact search failed: {exc}", backoff=True)
                        continue
                except Exception:  # noqa: BLE001 — logged by _unbuildable; the batch goes on without this lead
                    self._unbuildable(lead, "contact")
                    continue
            if contact_id is not None:
                ready.append((lead, {"id": contact_id}))
                for key in lead_keys:
                    in_batch.setdefault(key, ("existing", contact_id))
            else:
                ready.append((lead, payloads.new_contact(lead)))
                for key in lead_keys:
                    in_batch[key] = ("new", lead.pk)
        if deferred:
            self._release(deferred, uncount=True)
            self.outcome.deferred += len(deferred)
        return ready

    def _search_contact(self, lead: Lead) -> int | None:
        """One search (by phone, or by email when there is no phone) with every hit verified; None = new person.

        One request per new lead keeps a push near one request per lead at the 7/s limit; the
        local map covers both phone and email for everyone pushed before.
        """
        query = lead.phone or lead.email
        if not query:
            return None
        start = len(self.client.logs)
        try:
            hits = self.client.contacts_search(query, context={"lead": str(lead.pk)})
        finally:
            self._link(start, [lead])
        verified = [hit for hit in hits if payloads.contact_matches(hit, phone=lead.phone, email=lead.email)]
        if not verified:
            return None

        def score(hit):
            both = (payloads.contact_matches(hit, phone=lead.phone, email="")
                    and payloads.contact_matches(hit, phone="", email=lead.email))
            return (not both, hit.get("id") or 0)

        best = min(verified, key=score)
        learned = []
        if lead.phone and payloads.contact_matches(best, phone=lead.phone, email=""):
            learned.append(((ContactMatch.Kind.PHONE, lead.phone), best["id"]))
        if lead.email and payloads.contact_matches(best, phone="", email=lead.email):
            learned.append(((ContactMatch.Kind.EMAIL, lead.email), best["id"]))
        self._learn(learned)
        return best["id"]

    # ------------------------------------------------------------------ writes

    def _before_write(self, leads) -> None:
        # Committed before the request leaves: if its answer is lost, the next push searches first.
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(write_attempted_at=timezone.now())

    def _write_failed(self, exc: errors.AmoCRMError, leads: list[Lead]) -> None:
        """Sort a failed write: account-level → stop; validation → fail the named; transient → back off."""
        stop = self._account_error(exc)
        if stop is not None:
            # 429, a block page, 401 and a disconnected account are answered before anything is created.
            self._release(leads, keep_write_mark=False, uncount=True)
            raise stop from exc
        if isinstance(exc, errors.ValidationFailed):
            by_index = {}
            for entry in exc.errors:
                try:
                    index = int(entry.get("request_id"))
                except (TypeError, ValueError):
                    continue
                if 0 <= index < len(leads):
                    text = f"{entry.get('path')}: {entry.get('code')} {entry.get('detail') or ''}".strip()
                    by_index.setdefault(index, []).append(text)
            if not by_index:
                self._fail(leads, f"amoCRM rejected the batch: {exc}")
                return
            for index, texts in by_index.items():
                self._fail([leads[index]], "amoCRM rejected this lead: " + "; ".join(texts))
                self._forget_contact(leads[index])
            # amoCRM validates the whole request before creating anything: the rest go again at once.
            innocent = [lead for index, lead in enumerate(leads) if index not in by_index]
            self._release(innocent, keep_write_mark=False, uncount=True)
            return
        if isinstance(exc, errors.PermanentError):
            self._fail(leads, f"amoCRM refused the request: {exc}")
            return
        # Transient: a timeout, a reset or a 5xx may come after amoCRM created the deals. Keep the mark.
        self._release(leads, error=str(exc), backoff=True)

    def _forget_contact(self, lead: Lead) -> None:
        """A rejected lead may have named a contact merged or deleted in amoCRM: search afresh next time."""
        keys = _keys_of(lead)
        if keys:
            query = Q()
            for kind, value in keys:
                query |= Q(kind=kind, value=value)
            ContactMatch.objects.filter(query, account=self.account).delete()

    @staticmethod
    def _by_request_id(items: list[dict]) -> dict[str, dict]:
        """Answer items by the request_id we sent (amoCRM echoes it, as a list in leads/complex), else by position."""
        mapped = {}
        for position, item in enumerate(items):
            request_id = item.get("request_id")
            if isinstance(request_id, list):
                request_id = request_id[0] if request_id else None
            mapped[str(request_id) if request_id is not None else str(position)] = item
        return mapped

    def _write_deals(self, ready: list[tuple[Lead, dict]]) -> None:
        """ONE leads/complex request for the batch; records deal and contact ids and learns new contacts."""
        if not ready:
            return
        body, built = [], []
        for lead, contact in ready:
            try:
                body.append(payloads.complex_deal(lead, lead.source, self.account, request_id=str(len(built)),
                                                  contact=contact, fields_by_id=self.fields_by_id,
                                                  tracking=self.tracking))
            except Exception:  # noqa: BLE001 — logged by _unbuildable; the batch goes on without this lead
                self._unbuildable(lead, "deal")
                continue
            built.append((lead, contact))
        ready, leads = built, [lead for lead, _ in built]
        if not ready:
            return
        self._renew_lease()
        self._before_write(leads)
        start = len(self.client.logs)
        try:
            answer = self.client.leads_complex_create(body, context=self._context(leads))
        except errors.AmoCRMError as exc:
            self._link(start, leads)
            self._write_failed(exc, leads)
            return
        self._link(start, leads)
        items = self._by_request_id(answer if isinstance(answer, list) else [])
        learned, missing = [], []
        for index, (lead, contact) in enumerate(ready):
            item = items.get(str(index))
            if not item or not item.get("id"):
                missing.append(lead)
                continue
            contact_id = item.get("contact_id") or contact.get("id")
            self._mark_sent(lead, deal_id=item["id"], contact_id=contact_id)
            self.outcome.sent += 1
            if contact_id and "id" not in contact:
                # The contact we just created holds exactly these values. (A reused one was learned
                # only by what was verified on it.)
                learned += [(key, contact_id) for key in _keys_of(lead)]
        self._learn(learned)
        if missing:
            # An answer without these deals is as good as no answer: look for them before creating again.
            self._release(missing, error="amoCRM's answer did not list this deal.", backoff=True)

    def _write_unsorted(self, leads: list[Lead]) -> None:
        """ONE leads/unsorted/forms request for the batch: incoming leads a manager accepts in amoCRM."""
        if not leads:
            return
        body, built = [], []
        for lead in leads:
            try:
                body.append(payloads.unsorted_form(lead, lead.source, self.account, request_id=str(len(built)),
                                                   fields_by_id=self.fields_by_id, tracking=self.tracking))
            except Exception:  # noqa: BLE001 — logged by _unbuildable; the batch goes on without this lead
                self._unbuildable(lead, "unsorted")
                continue
            built.append(lead)
        leads = built
        if not leads:
            return
        self._renew_lease()
        self._before_write(leads)
        start = len(self.client.logs)
        try:
            answer = self.client.unsorted_forms_create(body, context=self._context(leads))
        except errors.AmoCRMError as exc:
            self._link(start, leads)
            self._write_failed(exc, leads)
            return
        self._link(start, leads)
        items = self._by_request_id(answer)
        missing = []
        for index, lead in enumerate(leads):
            item = items.get(str(index)) or {}
            embedded = item.get("_embedded") or {}
            deals = embedded.get("leads") or []
            contacts = embedded.get("contacts") or []
            if not deals or not deals[0].get("id"):
                missing.append(lead)
                continue
            self._mark_sent(lead, deal_id=deals[0]["id"], contact_id=contacts[0].get("id") if contacts else None,
                            unsorted_uid=str(item.get("uid") or ""))
            self.outcome.sent += 1
        if missing:
            self._release(missing, error="amoCRM's answer did not list this incoming lead.", backoff=True)

    def _write_notes(self) -> bool:
        """ONE leads/notes request for up to 50 sent leads whose note is still missing; True when one was sent."""
        leads = list(
            Lead.objects.filter(_due(), account_id=self.account.pk, status=Lead.Status.SENT, note_pending=True)
            .select_related("source").order_by("sent_at")[:BATCH_SIZE]
        )
        orphans = [lead.pk for lead in leads if not lead.amocrm_deal_id]
        if orphans:  # no deal to note (never expected): do not keep asking for a push
            Lead.objects.filter(pk__in=orphans).update(note_pending=False)
        leads = [lead for lead in leads if lead.amocrm_deal_id]
        body, unbuildable = [], []
        for lead in leads:
            text, problem = self._note_of(lead)
            if problem:
                unbuildable.append(lead.pk)
            else:
                body.append(payloads.deal_note(deal_id=lead.amocrm_deal_id, text=text))
        if unbuildable:  # the deal is in amoCRM: say so on the lead and stop asking for its note
            Lead.objects.filter(pk__in=unbuildable).update(note_pending=False, last_error=str(NOTE_UNBUILDABLE))
            leads = [lead for lead in leads if lead.pk not in set(unbuildable)]
        if not leads:
            return bool(unbuildable)
        start = len(self.client.logs)
        try:
            self.client.lead_notes_create(body, context=self._context(leads))
        except errors.AmoCRMError as exc:
            self._link(start, leads)
            stop = self._account_error(exc)
            if stop is not None:
                raise stop from exc
            ids = [lead.pk for lead in leads]
            if isinstance(exc, errors.ValidationFailed):
                named = {int(e["request_id"]) for e in exc.errors if str(e.get("request_id")).isdigit()}
                named = {index for index in named if index < len(leads)} or set(range(len(leads)))
                ids = [leads[index].pk for index in named]
            if isinstance(exc, errors.PermanentError):
                # The deal is in amoCRM; only its note is lost. Say so on the lead and stop trying.
                Lead.objects.filter(pk__in=ids).update(note_pending=False,
                                                       last_error=f"The note was refused: {exc}"[:2000])
            else:
                delay = NOTE_RETRY_SECONDS * random.uniform(1, 1.5)
                Lead.objects.filter(pk__in=ids).update(next_attempt_at=timezone.now() + timedelta(seconds=delay))
                self.outcome.retry_after(delay)
            return True
        self._link(start, leads)
        Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(note_pending=False)
        self.outcome.notes += len(leads)
        return True
