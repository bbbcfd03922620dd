"""Race-free counters and one-shot marks in the shared cache, one Redis round trip each.

The intake is hot: Django's Redis cache builds a new client object per call and needs two round
trips for an `incr`, and even redis-py's client spends more on checking a connection out of its
pool (locks, health checks, metrics) than on the command. With REDIS_URL set these go straight to
Redis over one connection per thread, held for the thread's life; without it (embedded mode) they
use Django's cache. Keys get the cache's prefix, so they live in the same namespace either way.

No call is retried: a command whose answer was lost may have been applied, and repeating a
set-if-absent would then report our own mark as somebody else's. Errors reach the caller, which
decides how to do without the cache. A Redis that does not answer within REDIS_INTAKE_TIMEOUT opens
the process's circuit breaker (config.breaker): for REDIS_BREAKER_SECONDS every call then raises
`Unavailable` at once, without touching the network.
"""

import hashlib
import logging
import os
import threading
from dataclasses import dataclass

import redis
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import NoScriptError, ResponseError

from config.breaker import Skipped, redis_breaker

logger = logging.getLogger(__name__)


class Unavailable(Skipped):
    """Redis was not called: it timed out recently (the breaker is open). Do without the cache."""


# INCR and, for the window's first request, EXPIRE: atomic, no key left without a lifetime.
COUNT_LUA = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value
"""
# A hot request's checks in one round trip, each step only when the one before let it through:
# count the sender (KEYS[1]; ARGV[2] < 0: no limit), claim KEYS[2], then set the mark KEYS[3] or, when it
# is already set, add one to its tally KEYS[4] (ARGV[5] = 0: neither).
# Answers {within the limit, holder of KEYS[2] ('' = claimed now), 1 when this call set the mark}.
ADMIT_LUA = """
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
"""
# Remove the mark KEYS[1] and answer its tally KEYS[2] (removed too), atomically.
TAKE_MARK_LUA = """
redis.call('DEL', KEYS[1])
local tally = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[2])
return tonumber(tally or 0)
"""
# DEL only while the key holds the given value.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class _Script:
    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 — the name Redis gives a script


_COUNT, _ADMIT, _TAKE_MARK, _RELEASE = map(_Script, (COUNT_LUA, ADMIT_LUA, TAKE_MARK_LUA, RELEASE_LUA))
_local = threading.local()
_pools: dict[tuple[str, float], redis.ConnectionPool] = {}
_pools_lock = threading.Lock()


def _pool(url: str, timeout: float) -> redis.ConnectionPool:
    pool = _pools.get((url, timeout))
    if pool is None:
        with _pools_lock:
            pool = _pools.setdefault((url, timeout), redis.ConnectionPool.from_url(
                url, socket_connect_timeout=timeout, socket_timeout=timeout))
    return pool


def _connection() -> redis.connection.AbstractConnection | None:
    """This thread's connection to REDIS_URL (None in embedded mode); a forked child makes its own."""
    url, timeout = settings.REDIS_URL, settings.REDIS_INTAKE_TIMEOUT
    if not url:
        return None
    held = getattr(_local, "held", None)
    if held is None or held[0] != (url, timeout) or held[1] != os.getpid():
        pool = _pool(url, timeout)
        held = ((url, timeout), os.getpid(), pool.connection_class(**pool.connection_kwargs))
        _local.held = held
    return held[2]


def _command(connection, *args):
    if not redis_breaker.allow():
        raise Unavailable()  # nothing sent, no connection made
    try:
        connection.send_command(*args)
        answer = connection.read_response()
    except ResponseError:
        redis_breaker.succeeded()
        raise  # a whole error answer was read: the connection is still in step
    except BaseException as exc:
        connection.disconnect()  # half an answer may be waiting: never let the next command read it
        redis_breaker.failed(exc)  # a timeout opens the breaker
        raise
    redis_breaker.succeeded()
    return answer


def _run(connection, script: _Script, keys: list[str], args: list):
    try:
        return _command(connection, "EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:  # a restarted server has forgotten it
        return _command(connection, "EVAL", script.source, len(keys), *keys, *args)  # and Redis keeps it


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def log_trouble(message: str, exc: BaseException) -> None:
    """Log a failed call a caller does without; a call the open breaker skipped was logged when it opened."""
    if not isinstance(exc, Unavailable):
        logger.warning(message, extra={"error": repr(exc)})


def full_key(key: str) -> str:
    return cache.make_key(key)


def count(key: str, *, seconds: int) -> int:
    """Increment the counter `key` (created with a `seconds` lifetime) and return its new value."""
    connection = _connection()
    if connection is None:
        if cache.add(key, 1, timeout=seconds):
            return 1
        return cache.incr(key)
    return int(_run(connection, _COUNT, [full_key(key)], [seconds]))


@dataclass(frozen=True)
class Limit:
    """At most `limit` counts of `key` per window of `seconds` (a fixed window: the key names it)."""

    key: str
    limit: int
    seconds: int


@dataclass(frozen=True)
class Claim:
    key: str
    value: str
    seconds: int


@dataclass(frozen=True)
class Mark:
    """A mark that, while it is set, counts in `tally_key` the callers that found it set (see `take_mark`)."""

    key: str
    tally_key: str
    seconds: int


@dataclass(frozen=True)
class Admission:
    within_limit: bool
    holder: str | None  # the claim's value when somebody else holds it; None when this call claimed it
    marked: bool  # this call set the mark


def admit(*, limit: Limit | None, claim: Claim, mark: Mark | None) -> Admission:
    """Count `limit`; within it, `claim`; when that is ours, set `mark` or add one to its tally. One round trip.

    Over the limit nothing is claimed or marked; a claim held by somebody else marks nothing.
    """
    connection = _connection()
    if connection is None:
        return _admit_in_cache(limit, claim, mark)
    answer = _run(connection, _ADMIT, [full_key(limit.key if limit else "-"), full_key(claim.key),
                                       full_key(mark.key if mark else "-"), full_key(mark.tally_key if mark else "-")],
                  [limit.seconds if limit else 0, limit.limit if limit else -1, claim.value, claim.seconds,
                   mark.seconds if mark else 0])
    within, holder, marked = int(answer[0]), _text(answer[1]), int(answer[2])
    return Admission(within_limit=bool(within), holder=holder or None, marked=bool(marked))


def _admit_in_cache(limit: Limit | None, claim: Claim, mark_: Mark | None) -> Admission:
    # Embedded mode, one web process: the same steps, not atomic together.
    if limit is not None and count(limit.key, seconds=limit.seconds) > limit.limit:
        return Admission(within_limit=False, holder=None, marked=False)
    holder = None if cache.add(claim.key, claim.value, timeout=claim.seconds) else cache.get(claim.key) or ""
    if holder is not None or mark_ is None:
        return Admission(within_limit=True, holder=holder, marked=False)
    if cache.add(mark_.key, 1, timeout=mark_.seconds):
        return Admission(within_limit=True, holder=None, marked=True)
    count(mark_.tally_key, seconds=mark_.seconds)
    return Admission(within_limit=True, holder=None, marked=False)


def take_mark(mark: Mark) -> int:
    """Remove `mark` and answer how many `admit` calls found it set since it was set (its tally, reset)."""
    connection = _connection()
    if connection is None:
        cache.delete(mark.key)
        tally = cache.get(mark.tally_key) or 0
        cache.delete(mark.tally_key)
        return int(tally)
    return int(_run(connection, _TAKE_MARK, [full_key(mark.key), full_key(mark.tally_key)], []))


def mark(key: str, *, seconds: int) -> bool:
    """Set `key` unless it is set; True when this call set it."""
    connection = _connection()
    if connection is None:
        return cache.add(key, 1, timeout=seconds)
    return _command(connection, "SET", full_key(key), 1, "NX", "EX", seconds) is not None


def release(key: str, value: str | None = None) -> None:
    """Delete `key` (only while it still holds `value`, when one is given)."""
    connection = _connection()
    if connection is None:
        if value is None or cache.get(key) == value:
            cache.delete(key)
        return
    if value is None:
        _command(connection, "DEL", full_key(key))
    else:
        _run(connection, _RELEASE, [full_key(key)], [value])
