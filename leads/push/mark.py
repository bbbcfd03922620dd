"""The "push queued" mark: at most one push queued per account, and the grace for leads that found it set.

While a push task is queued for an account, new leads do not queue another: a mark in the cache
says one is on its way. The push takes the mark (removes it) first thing, before it claims leads
(`take`, called by leads_push in leads/push/engine.py).

A caller that checks the mark after its transaction committed (`lead_schedule_push` in
leads/push/schedule.py) is race-free: a push whose mark it finds has not claimed yet, so it will see
the lead. The intake checks before its INSERT instead, in the one Redis round trip it makes anyway
(the admission script in leads/intake/admission.py), which saves a blocking round trip per lead.
A lead that found the mark can then commit after the queued push has claimed. So the intake adds
itself to the mark's tally, and a push that takes a non-zero tally waits until PUSH_TAKE_GRACE has
passed since the take before its last look for pending leads (or, when another push holds the
account, hands over to a run after the grace). A lead is missed only when its request stalls
longer than that between its Redis call and its commit; the sweeper then queues it.

Without Redis (it timed out, the breaker is open) nothing is marked: the intake queues no push and
leaves its lead to the sweeper, and a push that cannot take its mark assumes leads are on their way.
"""

from dataclasses import dataclass

from django.core.cache import cache

from .. import marks

# While a push task is queued for an account, new leads do not queue another one.
PUSH_SCHEDULED_SECONDS = 10
# A push told that leads were on their way when it started gives them this long to commit.
PUSH_TAKE_GRACE = 1.0


@dataclass(frozen=True)
class Mark:
    """A mark that, while it is set, counts in `tally_key` the callers that found it set (see `take_mark`)."""

    key: str
    tally_key: str
    seconds: int


def of(account_id: int) -> Mark:
    """The account's "push queued" mark."""
    return Mark(key=f"leads:push-scheduled:{account_id}", tally_key=f"leads:push-tally:{account_id}",
                seconds=PUSH_SCHEDULED_SECONDS)


def place(account_id: int) -> bool:
    """Set the account's mark unless it is set; True when this call set it (and so must queue the push)."""
    return marks.add(of(account_id).key, seconds=PUSH_SCHEDULED_SECONDS)


def clear(account_id: int) -> None:
    """Give the mark back: the push it announced will not be queued (no lead stored, or the broker down)."""
    try:
        marks.release(of(account_id).key)
    except Exception as exc:  # noqa: BLE001
        marks.log_trouble("push debounce not cleared", exc)


def take(account_id: int) -> int:
    """Remove the account's mark; how many intake requests found it set (their leads may not be committed)."""
    try:
        return take_mark(of(account_id))
    except Exception as exc:  # noqa: BLE001 — assume the worst: wait out the grace
        marks.log_trouble("push mark not taken", exc)
        return 1


# Remove the mark KEYS[1] and answer its tally KEYS[2] (removed too), atomically.
_TAKE = marks.Script("""
redis.call('DEL', KEYS[1])
local tally = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return tonumber(tally or 0)
""")


def take_mark(mark: Mark) -> int:
    """Remove `mark` and answer how many admissions found it set since it was set (its tally, reset)."""
    held = marks.connection()
    if held is None:
        cache.delete(mark.key)
        tally = cache.get(mark.tally_key) or 0
        cache.delete(mark.tally_key)
        return int(tally)
    return int(_TAKE.run(held, [marks.full_key(mark.key), marks.full_key(mark.tally_key)], []))
