"""Admitting a form post: the per-IP throttle, the double click, the push mark in ONE Redis call; then the INSERT.

Why a post got a 429: every request is counted once in its sender's fixed window (`IntakeWindow`,
LEAD_INTAKE_THROTTLE per client IP, in the shared cache so all web processes count together). A
valid post is counted by `admit`, in the same Redis round trip as its double-click check; a request
refused before that (bad input, a foreign origin, a wrong media type) is counted by the endpoint on
its way out (`IntakeWindow.count`, from `LeadIntakeApi.handle_exception`). So a flood of bad posts
is throttled like good ones, and a good post costs one round trip instead of two. Over the limit
nothing is stored or reserved. When Redis is down or hung there is no throttle at all: losing
leads would be worse than a missed throttle.

The one round trip (`ADMIT`, a Lua script): count the sender; within the limit, reserve the
double-click window for this lead (set-if-absent, so two simultaneous clicks are race-free); when
the reservation is ours, set the account's "push queued" mark or add one to its tally
(leads/push/mark.py). Then one INSERT: a new Idempotency-Key is checked by the INSERT itself (a
unique constraint), so it costs no extra query; only a repeated key pays for a lookup.
"""

import hashlib
import json
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.core.cache import cache
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from rest_framework.settings import api_settings

from config.net import client_ip
from monitoring import metrics

from .. import attribution, marks
from ..models import Lead, LeadSource
from ..push import mark as push_mark
from ..push.schedule import lead_schedule_push, publish_marked_push

# Identical submissions (same source, phone, email, message) this close together are one double click.
DOUBLE_SUBMIT_SECONDS = 10
THROTTLE_SCOPE = "lead_intake"  # DRF's DEFAULT_THROTTLE_RATES key, from LEAD_INTAKE_THROTTLE
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class LeadRateLimited(Exception):
    """The sender is over its intake limit: nothing was stored."""


class IdempotencyKeyReused(Exception):
    """The Idempotency-Key already names another submission to this source: nothing was stored."""


@dataclass(frozen=True)
class LeadAccepted:
    """The answer to a form post. `status` is what the visitor sees: spam is answered like any other lead."""

    id: uuid.UUID
    created: bool
    status: str = Lead.Status.PENDING


# ---------------------------------------------------------------------------- the throttle window


def parse_rate(rate: str) -> tuple[int, int]:
    """"30/min" → (30, 60), like DRF's rates."""
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0]]


@dataclass(frozen=True)
class Limit:
    """At most `limit` counts of `key` per window of `seconds` (a fixed window: the key names it)."""

    key: str
    limit: int
    seconds: int


@dataclass(frozen=True)
class IntakeWindow:
    """The throttle window a request falls in: what to count, and how long until the window ends."""

    limit: Limit
    wait: float

    @classmethod
    def of(cls, request) -> "IntakeWindow | None":
        """None when the throttle is off. The rate is read on every request
        (`DEFAULT_THROTTLE_RATES["lead_intake"]`, from LEAD_INTAKE_THROTTLE)."""
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(THROTTLE_SCOPE)
        if not rate:
            return None
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        key = f"leads:throttle:{client_ip(request) or 'unknown'}:{period}:{window}"
        # The counter outlives its window by a second, so a clock step between hosts cannot reopen it.
        return cls(limit=Limit(key=key, limit=limit, seconds=period + 1), wait=(window + 1) * period - now)

    def count(self) -> bool:
        """Count one request refused before `admit` could; False when it is over the limit. A cache outage
        lets requests through: losing leads would be worse than a missed throttle."""
        try:
            return marks.count(self.limit.key, seconds=self.limit.seconds) <= self.limit.limit
        except Exception as exc:  # noqa: BLE001
            marks.log_trouble("intake throttle unavailable", exc)
            return True


# ---------------------------------------------------------------------------- the one Redis round trip


@dataclass(frozen=True)
class Claim:
    key: str
    value: str
    seconds: int


@dataclass(frozen=True)
class Admission:
    within_limit: bool
    holder: str | None  # the claim's value when somebody else holds it; None when this call claimed it
    marked: bool  # this call set the mark


# Each step only when the one before let it through: count the sender (KEYS[1]; ARGV[2] < 0: no limit),
# claim KEYS[2], then set the mark KEYS[3] or, when it is already set, add one to its tally KEYS[4]
# (ARGV[5] = 0: neither). Answers {within the limit, holder of KEYS[2] ('' = claimed now), 1 when this
# call set the mark}.
ADMIT = marks.Script("""
local limit = tonumber(ARGV[2])
if limit >= 0 then
  local count = redis.call('INCR', KEYS[1])
  if count == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
  if count > limit then return {0, '', 0} end
end
if not redis.call('SET', KEYS[2], ARGV[3], 'NX', 'EX', ARGV[4]) then
  return {1, redis.call('GET', KEYS[2]) or '', 0}
end
if ARGV[5] == '0' then return {1, '', 0} end
if redis.call('SET', KEYS[3], 1, 'NX', 'EX', ARGV[5]) then return {1, '', 1} end
redis.call('INCR', KEYS[4])
redis.call('EXPIRE', KEYS[4], ARGV[5])
return {1, '', 0}
""")


def admit(*, limit: Limit | None, claim: Claim, mark: push_mark.Mark | None) -> Admission:
    """Count `limit`; within it, `claim`; when that is ours, set `mark` or add one to its tally. One round trip.

    Over the limit nothing is claimed or marked; a claim held by somebody else marks nothing.
    """
    held = marks.connection()
    if held is None:
        return _admit_in_cache(limit, claim, mark)
    answer = ADMIT.run(held, [marks.full_key(limit.key if limit else "-"), marks.full_key(claim.key),
                              marks.full_key(mark.key if mark else "-"),
                              marks.full_key(mark.tally_key if mark else "-")],
                       [limit.seconds if limit else 0, limit.limit if limit else -1, claim.value, claim.seconds,
                        mark.seconds if mark else 0])
    within, holder, marked = int(answer[0]), marks.text(answer[1]), int(answer[2])
    return Admission(within_limit=bool(within), holder=holder or None, marked=bool(marked))


def _admit_in_cache(limit: Limit | None, claim: Claim, mark: push_mark.Mark | None) -> Admission:
    # Embedded mode, one web process: the same steps, not atomic together.
    if limit is not None and marks.count(limit.key, seconds=limit.seconds) > limit.limit:
        return Admission(within_limit=False, holder=None, marked=False)
    holder = None if cache.add(claim.key, claim.value, timeout=claim.seconds) else cache.get(claim.key) or ""
    if holder is not None or mark is None:
        return Admission(within_limit=True, holder=holder, marked=False)
    if cache.add(mark.key, 1, timeout=mark.seconds):
        return Admission(within_limit=True, holder=None, marked=True)
    marks.count(mark.tally_key, seconds=mark.seconds)
    return Admission(within_limit=True, holder=None, marked=False)


@dataclass(frozen=True)
class _Verdict:
    first: uuid.UUID | None  # an identical submission within the window: answer with it, store nothing
    push: str  # "queue": queue the account's push after commit; "queued": one is queued already; "unknown"


def _admit_post(*, source: LeadSource, fingerprint: str, lead_id: uuid.UUID, rate_limit: Limit | None,
                schedule: bool) -> _Verdict:
    """The intake's one Redis round trip before its INSERT (`admit`), and what to do without Redis.

    Over `rate_limit`: LeadRateLimited, and nothing reserved. Without the cache (Redis down) the limit
    is not applied, a database lookup still catches the usual double click, and the push is scheduled
    the slow way (after commit, by `lead_schedule_push`).
    """
    try:
        admission = admit(limit=rate_limit, claim=Claim(double_click_key(fingerprint), str(lead_id),
                                                        DOUBLE_SUBMIT_SECONDS),
                          mark=push_mark.of(source.account_id) if schedule else None)
    except Exception as exc:  # noqa: BLE001 — a cache outage must not lose the lead
        marks.log_trouble("double-submit check without cache", exc)
        since = timezone.now() - timedelta(seconds=DOUBLE_SUBMIT_SECONDS)
        first = (Lead.objects.filter(source=source, fingerprint=fingerprint, created_at__gte=since)
                 .values_list("id", flat=True).first())
        return _Verdict(first=first, push="unknown")
    if not admission.within_limit:
        raise LeadRateLimited()
    if admission.holder is not None:
        return _Verdict(first=uuid.UUID(admission.holder), push="queued")
    return _Verdict(first=None, push="queue" if admission.marked else "queued")


# ---------------------------------------------------------------------------- the INSERT


def fingerprint_of(*, source: LeadSource, phone: str, email: str, message: str) -> str:
    """What makes two posts one double click: the same source, phone, email and message."""
    raw = "\x1f".join([str(source.pk), phone, email, message])
    return hashlib.sha256(raw.encode()).hexdigest()


def double_click_key(fingerprint: str) -> str:
    return f"leads:fp:{fingerprint}"


def _submission_hash(*, data: dict, spam: bool) -> str:
    """What a repeat of a keyed post must match: the validated values (normalized, so "8 912…" and
    "+7912…" are one phone), not the raw bytes."""
    canonical = json.dumps([data, spam], sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def lead_create(*, source: LeadSource, data: dict, ip: str | None = None, user_agent: str = "",
                idempotency_key: str = "", spam: bool = False, rate_limit: Limit | None = None) -> LeadAccepted:
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
    fingerprint = fingerprint_of(source=source, phone=phone, email=email, message=message)
    submission = _submission_hash(data=data, spam=spam) if idempotency_key else ""
    lead_id = uuid.uuid4()
    verdict = _admit_post(source=source, fingerprint=fingerprint, lead_id=lead_id, rate_limit=rate_limit,
                          schedule=not spam)
    if verdict.first is not None:
        # A double click; with a key, the key's own lead (when stored already) decides.
        keyed = _lead_of_key(source, idempotency_key, submission) if idempotency_key else None
        metrics.lead_accepted("idempotent" if keyed else "duplicate")
        return LeadAccepted(id=keyed or verdict.first, created=False)
    lead = Lead(
        id=lead_id, source=source, account_id=source.account_id,
        name=data.get("name", ""), phone_raw=data.get("phone_raw", ""), phone=phone, email=email, message=message,
        utm_source=data.get("utm_source", ""), utm_medium=data.get("utm_medium", ""),
        utm_campaign=data.get("utm_campaign", ""), utm_term=data.get("utm_term", ""),
        utm_content=data.get("utm_content", ""), referrer=data.get("referrer", ""),
        page_url=data.get("page_url", ""), fields=data.get("fields") or {}, **attribution.lead_values(data),
        price=data.get("price"), company=data.get("company", ""),
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
        _give_back(source, fingerprint, lead_id, verdict)
        first = _lead_of_key(source, idempotency_key, submission) if idempotency_key else None
        if first is None:
            raise
        metrics.lead_accepted("idempotent")
        return LeadAccepted(id=first, created=False)
    except Exception:
        _give_back(source, fingerprint, lead_id, verdict)
        raise
    if verdict.push == "queue":
        transaction.on_commit(lambda: publish_marked_push(source.account_id))
    elif verdict.push == "unknown" and not spam:
        lead_schedule_push(account_id=source.account_id)
    metrics.lead_accepted("spam" if spam else "new")
    return LeadAccepted(id=lead_id, created=True)


def _give_back(source: LeadSource, fingerprint: str, lead_id: uuid.UUID, verdict: _Verdict) -> None:
    """No lead was stored: free the double-click window it reserved, and the push mark it set (nothing
    would queue the push that mark announces)."""
    try:
        marks.release(double_click_key(fingerprint), str(lead_id))
    except Exception as exc:  # noqa: BLE001
        marks.log_trouble("could not release the double-submit window", exc)
    if verdict.push == "queue":
        push_mark.clear(source.account_id)


def _lead_of_key(source: LeadSource, idempotency_key: str, submission: str) -> uuid.UUID | None:
    """The lead stored under this key (None: none yet); IdempotencyKeyReused when it holds another submission.

    Only a repeated key or a keyed double click pays for this lookup. Leads stored before submissions were
    hashed match any. No ORDER BY: the unique index holds at most one row per (source, key), and `.first()`'s
    `created_at DESC` (the model's ordering) let the planner walk the created_at index over the whole table
    when the table's statistics are stale (bench/README.md, "Lead intake": 0.9 ms of PostgreSQL per keyed post).
    """
    rows = list(Lead.objects.filter(source=source, idempotency_key=idempotency_key).order_by()
                .values_list("id", "submission_hash")[:1])
    if not rows:
        return None
    first, stored = rows[0]
    if stored and stored != submission:
        raise IdempotencyKeyReused()
    return first
