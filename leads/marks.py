"""Race-free counters and one-shot marks in the shared cache, one Redis round trip each: the plumbing.

The intake is hot: Django's Redis cache builds a new client object per call and needs two round
trips for an `incr`, and even redis-py's client spends more on checking a connection out of its
pool (locks, health checks, metrics) than on the command. With REDIS_URL set these go straight to
Redis over one connection per thread, held for the thread's life; without it (embedded mode)
`connection()` is None and callers use Django's cache. Keys get the cache's prefix, so they live in
the same namespace either way.

The generic steps live here (`count`, `add`, `release`); a script made of several steps sits next
to the code that needs it: the intake's admission in leads/intake/admission.py, the push's take of
its mark in leads/push/mark.py.

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

import redis
from django.conf import settings
from django.core.cache import cache
from redis.exceptions import NoScriptError, ResponseError

from config.breaker import Skipped, redis_breaker

logger = logging.getLogger(__name__)


class Unavailable(Skipped):
    """Redis was not called: it timed out recently (the breaker is open). Do without the cache."""


class Script:
    """A Lua script, run by its SHA1 (the name Redis gives it) and sent in full only when Redis lacks it."""

    def __init__(self, source: str):
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 — the name Redis gives a script

    def run(self, connection, keys: list[str], args: list):
        """Run on `connection` (from `connection()`); `keys` are full keys (`full_key`)."""
        try:
            return command(connection, "EVALSHA", self.sha, len(keys), *keys, *args)
        except NoScriptError:  # a restarted server has forgotten it
            return command(connection, "EVAL", self.source, len(keys), *keys, *args)  # and Redis keeps it


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


def connection() -> redis.connection.AbstractConnection | None:
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


def command(connection, *args):
    """Send one command and read its answer, through the breaker; a failed call leaves no half answer behind."""
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


def text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def log_trouble(message: str, exc: BaseException) -> None:
    """Log a failed call a caller does without; a call the open breaker skipped was logged when it opened."""
    if not isinstance(exc, Unavailable):
        logger.warning(message, extra={"error": repr(exc)})


def full_key(key: str) -> str:
    return cache.make_key(key)


# INCR and, for the window's first request, EXPIRE: atomic, no key left without a lifetime.
_COUNT = Script("""
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value
""")
# DEL only while the key holds the given value.
_RELEASE = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
""")


def count(key: str, *, seconds: int) -> int:
    """Increment the counter `key` (created with a `seconds` lifetime) and return its new value."""
    held = connection()
    if held is None:
        if cache.add(key, 1, timeout=seconds):
            return 1
        return cache.incr(key)
    return int(_COUNT.run(held, [full_key(key)], [seconds]))


def add(key: str, *, seconds: int) -> bool:
    """Set `key` unless it is set; True when this call set it."""
    held = connection()
    if held is None:
        return cache.add(key, 1, timeout=seconds)
    return command(held, "SET", full_key(key), 1, "NX", "EX", seconds) is not None


def release(key: str, value: str | None = None) -> None:
    """Delete `key` (only while it still holds `value`, when one is given)."""
    held = connection()
    if held is None:
        if value is None or cache.get(key) == value:
            cache.delete(key)
        return
    if value is None:
        command(held, "DEL", full_key(key))
    else:
        _RELEASE.run(held, [full_key(key)], [value])
