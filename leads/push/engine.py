"""The push engine: `leads_push()` runs an `AccountPush`, one account's push of its due leads into amoCRM.

What it guarantees, and where:

- **One push per account at a time**, across every worker and host: `config.locks.try_lock` (a
  PostgreSQL session advisory lock, which dies with a killed worker's connection). A second push
  steps aside ("busy"); a lead still `sending` when a push gets the lock was left by one that died.
- **A deal is created at most once per lead.** Before a write its leads are marked
  `write_attempted_at` (committed before the request leaves). When the answer is lost (a timeout, a
  reset, a 502 after amoCRM committed, a killed worker) the next attempt lists the deals updated
  since and adopts the one carrying the lead's marker tag instead of creating another (adoption.py).
- **No duplicate contacts in a batch**: amoCRM never compares the deals of one request, so a second
  lead of a person the batch is creating waits for the next batch, where the person is known
  (contacts.py). Contacts are found by one verified search per new person and remembered.
- **Leases**: a claimed batch is leased for PUSH_LEASE and the lease is renewed as the push works
  (`renew_lease`, at most one UPDATE every PUSH_LEASE_RENEW_AFTER seconds); a push that dies gives
  its leads back through the sweeper about a minute later.
- **Backoff**: a transient error backs the affected leads off (`config.retry.backoff_seconds`,
  5 s, 10 s … 30 min with jitter) and asks the task for a retry; after MAX_ATTEMPTS a lead becomes
  `failed` (visible, retryable). A 429, amoCRM's block page or an account that needs the operator
  stop the push and leave its leads pending; a validation error fails only the leads amoCRM named.
- **A bad lead stops nobody else's**: a lead whose request cannot be built fails alone, visibly; an
  error nobody foresaw outside one lead backs the batch off, and nothing stays `sending`.

Every amoCRM call of a push lands in the sync log linked to the leads it concerns (`logs_linked_to`).
"""

import logging
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy

from amocrm import errors
from amocrm.client import RATE_LIMIT_PAUSE_SECONDS, AmoCRMClient
from amocrm.models import Account, CustomField
from config.locks import try_lock
from config.retry import backoff_seconds
from monitoring import metrics

from .. import attribution, payloads, selectors
from ..models import ContactMatch, Lead, LeadSource
from . import mark
from .adoption import AdoptionStep
from .contacts import ContactStep
from .dedup import DedupStep
from .followups import FollowupStep
from .routing import RoutingStep
from .writes import BATCH_SIZE, WriteStep

logger = logging.getLogger(__name__)

# One task run pushes batches for at most this long, well inside the soft time limit, then hands over.
PUSH_TIME_BUDGET = 120
# A lead that keeps failing transiently becomes `failed` (visible, retryable) after this many attempts.
MAX_ATTEMPTS = 15
BACKOFF_BASE_SECONDS = 5
BACKOFF_CAP_SECONDS = 1800
# A push stopped by an error nobody foresaw runs again after about this long.
UNEXPECTED_RETRY_SECONDS = 60
# A claim is a lease: the push renews it as it works (at most every PUSH_LEASE_RENEW_AFTER seconds, one
# UPDATE of its batch), so a lease that ran out means the push died; the sweeper (every 30 s) then queues a
# push, which takes the leads back — about a minute after the death. A live push whose lease lapses during
# one long amoCRM call loses nothing: the push queued for it finds the account's lock held and steps aside.
PUSH_LEASE = timedelta(seconds=30)
PUSH_LEASE_RENEW_AFTER = 10
# The advisory lock's name, with the account id: one push per account across all workers and hosts.
PUSH_LOCK = "leads.push"

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
BATCH_INTERRUPTED = gettext_lazy(
    "An unexpected error interrupted the push of this lead's batch. The push will retry it by itself, "
    "looking first for a deal an earlier attempt may have created; if it keeps failing, the worker log has "
    "the details.")


@dataclass
class PushOutcome:
    """What one `leads_push` run did, and what the task should do next."""

    sent: int = 0
    adopted: int = 0
    failed: int = 0
    deferred: int = 0
    notes: int = 0
    tasks: int = 0
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


class PushStopped(Exception):
    """An account-level error: stop pushing for this account now (leads stay pending)."""

    def __init__(self, reason: str, retry_in: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_in = retry_in


def leads_push(*, account_id: int) -> PushOutcome:
    """Push the account's due pending leads to amoCRM in batches of up to 50, then their notes.

    Takes the account's "push queued" mark first (leads/push/mark.py), then the account's lock; see
    the module docstring for the guarantees.
    """
    taken_at, on_their_way = time.monotonic(), mark.take(account_id)
    outcome = PushOutcome()
    account = Account.objects.filter(pk=account_id).first()
    if account is None or not account.can_call_api:
        outcome.stopped = "not connected"
        return outcome
    if account.sending_paused:
        outcome.stopped = "paused"  # the leads wait; resuming queues this push again
        return outcome
    with try_lock(PUSH_LOCK, account_id, fallback_seconds=settings.CELERY_TASK_TIME_LIMIT + 60) as locked:
        if not locked:
            outcome.stopped = "busy"
            if on_their_way:
                # The running push may take its last look before these leads commit: look again later.
                outcome.retry_after(mark.PUSH_TAKE_GRACE)
            return outcome
        # No other push can run for this account now: a lead still `sending` was left by one that died.
        _unclaim(Lead.objects.filter(account_id=account_id, status=Lead.Status.SENDING))
        deadline = time.monotonic() + PUSH_TIME_BUDGET
        try:
            push = AccountPush(account, outcome)
            while push.push_batch():
                if time.monotonic() > deadline:
                    outcome.more = True
                    break
        except PushStopped as stop:
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
            time.sleep(max(0.0, mark.PUSH_TAKE_GRACE - (time.monotonic() - taken_at)))
        # Checked after the lock is released: a lead whose task found the lock taken is seen here.
        outcome.more = selectors.outstanding(account_id).filter(selectors.due()).exists()
        if not outcome.more:
            # Leads backing off since an earlier run (whose retry may have stepped aside as "busy") are
            # this run's to come back for.
            next_at = selectors.outstanding(account_id).order_by("next_attempt_at").values_list(
                "next_attempt_at", flat=True).first()
            if next_at is not None:
                outcome.retry_after(max(0.0, (next_at - timezone.now()).total_seconds()) + random.uniform(0, 1))
    return outcome


def _field_info(item: CustomField) -> payloads.FieldInfo:
    enums = tuple(str(enum.get("value")) for enum in item.enums or [] if isinstance(enum, dict))
    return payloads.FieldInfo(id=item.amocrm_id, code=item.code, type=item.type, enums=enums)


def _unclaim(leads) -> int:
    return leads.update(status=Lead.Status.PENDING, claimed_at=None, lease_expires_at=None)


class AccountPush(AdoptionStep, ContactStep, DedupStep, RoutingStep, WriteStep, FollowupStep):
    """One account's push: claims batches and carries the client, the field cache and the outcome.

    `push_batch` is the whole sequence for one batch: claim → adopt what an earlier attempt created
    (AdoptionStep) → find each deal's contact (ContactStep) → attach repeat enquiries to open deals
    (DedupStep) → pick the managers (RoutingStep) → one write per mode, then the notes (WriteStep) and
    the managers' tasks (FollowupStep). The steps change lead rows only through the transitions below
    (`release`, `fail`, `mark_sent`), so every way out of `sending` is in this class.
    """

    def __init__(self, account: Account, outcome: PushOutcome):
        self.account = account
        self.outcome = outcome
        self.client = AmoCRMClient(account, log_context={"push": "leads"})
        cached = list(CustomField.objects.filter(account=account))
        fields = [item for item in cached if item.entity_type != "contacts"]
        self.fields_by_id = {item.amocrm_id: _field_info(item) for item in fields}
        self.contact_fields_by_id = {item.amocrm_id: _field_info(item) for item in cached
                                     if item.entity_type == "contacts"}
        codes = set(payloads.TRACKING_CODES.values()) | attribution.ID_CODES
        # Prefer the tracking_data field when a code is (oddly) on two fields.
        ordered = sorted((item for item in fields if item.code in codes), key=lambda item: item.type != "tracking_data")
        self.tracking: dict[str, payloads.FieldInfo] = {}
        for item in ordered:
            self.tracking.setdefault(item.code, self.fields_by_id[item.amocrm_id])
        self._leased: list = []  # the batch in hand, whose lease renew_lease extends
        self._renewed_at = 0.0
        self.dedup_reset()

    def push_batch(self) -> bool:
        """Claim and push one batch; False when nothing was due.

        An error nobody foresaw while building one lead's request fails that lead alone, visibly
        (`unbuildable`). One outside any single lead (an answer of a shape never seen, a bug) backs
        the batch off like a transient error: nothing stays `sending`, the leads whose write may have
        gone out are looked for before they are created again, and a lasting cause ends in `failed`
        after MAX_ATTEMPTS instead of holding up the account's newer leads.
        """
        leads = self.claim()
        if leads:
            try:
                leads = self.adopt(leads)
                deal_leads = [lead for lead in leads if lead.source.mode == LeadSource.Mode.DEAL]
                unsorted_leads = [lead for lead in leads if lead.source.mode == LeadSource.Mode.UNSORTED]
                ready = self.attach_to_open_deals(self.resolve_contacts(deal_leads))
                self.assign_responsible([lead for lead, _ in ready])
                self.write_deals(ready)
                self.attach_followers()
                self.write_unsorted(unsorted_leads)
            except PushStopped:
                self.release_still_sending(leads)
                raise
            except Exception:
                logger.exception("lead batch failed unexpectedly",
                                 extra={"account": self.account.pk, "leads": [str(lead.pk) for lead in leads]})
                sending = set(Lead.objects.filter(pk__in=[lead.pk for lead in leads], status=Lead.Status.SENDING)
                              .values_list("pk", flat=True))
                self.release([lead for lead in leads if lead.pk in sending], error=str(BATCH_INTERRUPTED),
                             backoff=True)
            finally:
                # What dedup learned is this batch's: the next one may see deals this one created.
                self._leased = []
                self.dedup_reset()
        noted = self.write_notes()
        tasked = self.write_tasks()
        return bool(leads) or noted or tasked

    # ------------------------------------------------------------------ claim and lease

    def claim(self) -> list[Lead]:
        """Up to BATCH_SIZE due pending leads, oldest first, now `sending` under a lease; one attempt each."""
        now = timezone.now()
        with transaction.atomic():
            ids = list(
                Lead.objects.filter(selectors.due(), account_id=self.account.pk, status=Lead.Status.PENDING)
                .order_by("created_at").select_for_update(skip_locked=True).values_list("pk", flat=True)[:BATCH_SIZE]
            )
            Lead.objects.filter(pk__in=ids).update(status=Lead.Status.SENDING, claimed_at=now,
                                                   lease_expires_at=now + PUSH_LEASE, attempts=F("attempts") + 1)
        self._leased, self._renewed_at = ids, time.monotonic()
        return list(Lead.objects.filter(pk__in=ids).select_related("source").order_by("created_at"))

    def renew_lease(self) -> None:
        """A checkpoint between steps of a batch: extend its lease once PUSH_LEASE_RENEW_AFTER has passed.

        Mostly a clock read; at most one UPDATE of the batch every PUSH_LEASE_RENEW_AFTER seconds.
        """
        if self._leased and time.monotonic() - self._renewed_at >= PUSH_LEASE_RENEW_AFTER:
            Lead.objects.filter(pk__in=self._leased, status=Lead.Status.SENDING).update(
                lease_expires_at=timezone.now() + PUSH_LEASE)
            self._renewed_at = time.monotonic()

    # ------------------------------------------------------------------ the sync log

    def context(self, leads) -> dict:
        """The sync-log context of a call made for `leads`."""
        return {"leads": [str(lead.pk) for lead in leads][:BATCH_SIZE]}

    @contextmanager
    def logs_linked_to(self, leads):
        """Link to `leads` every sync-log row the client writes while the block runs, also when it raises."""
        start = len(self.client.logs)
        try:
            yield
        finally:
            logs = self.client.logs[start:]
            if logs and leads:
                through = Lead.sync_logs.through
                through.objects.bulk_create([through(lead_id=lead.pk, synclog_id=log.pk)
                                             for log in logs for lead in leads], ignore_conflicts=True)

    # ------------------------------------------------------------------ the ways out of `sending`

    def release(self, leads, *, error: str = "", backoff: bool = False, keep_write_mark: bool = True,
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
                    metrics.lead_pushed("failed")
                else:
                    delay = backoff_seconds(lead.attempts, base=BACKOFF_BASE_SECONDS, cap=BACKOFF_CAP_SECONDS)
                    values["next_attempt_at"] = timezone.now() + timedelta(seconds=delay)
                    self.outcome.retry_after(delay)
                    metrics.lead_pushed("retry")
            Lead.objects.filter(pk=lead.pk, status=Lead.Status.SENDING).update(**values)

    def release_still_sending(self, leads) -> None:
        """Stopped before their write: this claim was no attempt."""
        Lead.objects.filter(pk__in=[lead.pk for lead in leads], status=Lead.Status.SENDING).update(
            status=Lead.Status.PENDING, claimed_at=None, lease_expires_at=None, attempts=F("attempts") - 1)

    def fail(self, leads, message: str) -> None:
        Lead.objects.filter(pk__in=[lead.pk for lead in leads], status=Lead.Status.SENDING).update(
            status=Lead.Status.FAILED, last_error=message[:2000], write_attempted_at=None, claimed_at=None,
            lease_expires_at=None)
        self.outcome.failed += len(leads)
        metrics.lead_pushed("failed", len(leads))
        self.outcome.errors.append(message[:500])

    def unbuildable(self, lead: Lead, part: str) -> None:
        """Fail one lead whose request could not be built (its values met something unforeseen); the rest go on."""
        logger.exception("lead could not be built for amoCRM", extra={"lead": str(lead.pk), "part": part})
        self.fail([lead], str(UNBUILDABLE[part]))

    def mark_sent(self, lead: Lead, *, deal_id: int, contact_id: int | None, unsorted_uid: str = "",
                  attached: bool = False) -> None:
        """Sent: on a new deal (which gets the manager's task when the source asks), or attached to an open one."""
        lead.attached_to_deal = attached
        note, problem = self.note_of(lead)
        task = not attached and lead.source.task_enabled and lead.source.mode == LeadSource.Mode.DEAL
        Lead.objects.filter(pk=lead.pk).update(
            status=Lead.Status.SENT, sent_at=timezone.now(), amocrm_deal_id=deal_id, amocrm_contact_id=contact_id,
            amocrm_unsorted_uid=unsorted_uid, write_attempted_at=None, claimed_at=None, lease_expires_at=None,
            next_attempt_at=None, last_error=problem, note_pending=bool(note), task_pending=task,
            attached_to_deal=attached,
        )
        metrics.lead_sent(lead.created_at)

    # ------------------------------------------------------------------ what is known across batches

    def learn(self, pairs: list[tuple[tuple[str, str], int]]) -> None:
        """Remember normalized phone/email → contact id for the next leads of the same people."""
        if not pairs:
            return
        ContactMatch.objects.bulk_create(
            [ContactMatch(account=self.account, kind=kind, value=value, contact_id=contact_id)
             for (kind, value), contact_id in dict(pairs).items()],
            update_conflicts=True, unique_fields=["account", "kind", "value"], update_fields=["contact_id"],
        )

    def stop_for(self, exc: errors.AmoCRMError) -> PushStopped | None:
        """The PushStopped for an error that concerns the whole account, or None for one about this request."""
        if isinstance(exc, errors.RateLimited):
            # The limiter already paused the account for everyone; come back once the pause is over.
            return PushStopped("rate limited", retry_in=RATE_LIMIT_PAUSE_SECONDS + random.uniform(0.5, 2))
        if isinstance(exc, errors.AccountBlocked):
            return PushStopped("blocked")
        if isinstance(exc, errors.AuthError | errors.AccountUnavailable):
            return PushStopped("needs the operator")
        return None
