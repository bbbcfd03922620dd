"""One rate limiter per amoCRM account, shared by every process and host (Redis, or a file lock when embedded).

amoCRM allows 7 requests per second per integration and account; past that it answers 429
and, if the excess goes on, blocks the account with 403 until its support lifts it. The
limiter keeps a sliding log of the last second's request times per account, so no window
of one second ever holds more than the limit — fixed one-second buckets would allow twice
the limit across a bucket boundary. A 429 pauses the account for everyone.
"""

import fcntl
import json
import os
import random
import time
from pathlib import Path

import redis
from django.conf import settings

from monitoring import metrics

# The window is a little longer than amoCRM's second (AMOCRM_RATE_WINDOW, default 1.2 s): a request
# reaches amoCRM some time after it took its slot (scheduling on a busy host, network latency), and
# that delay must never squeeze an 8th request into one of amoCRM's seconds. 140 ms was measured
# on a loaded 2-core host; 7 requests per 1.2 s is 5.8 per second.
DEFAULT_MAX_WAIT = 60.0


class RateLimitTimeout(Exception):
    """No slot within the allowed wait (the account is paused or saturated): retry later."""


class _RedisBackend:
    # Returns 0 when a slot was taken, else the microseconds to wait before asking again.
    SCRIPT = """
local log_key, pause_key, seq_key = KEYS[1], KEYS[2], KEYS[3]
local limit, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = tonumber(redis.call('GET', pause_key) or '0')
if paused > now then return paused - now end
redis.call('ZREMRANGEBYSCORE', log_key, '-inf', now - window)
if redis.call('ZCARD', log_key) < limit then
  local seq = redis.call('INCR', seq_key)
  redis.call('ZADD', log_key, now, tostring(now) .. ':' .. tostring(seq))
  redis.call('PEXPIRE', log_key, math.ceil(window / 1000) + 1000)
  redis.call('PEXPIRE', seq_key, math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', log_key, 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""
    PAUSE_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if until_ > current then redis.call('SET', KEYS[1], until_, 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000) end
return until_
"""

    def __init__(self, url: str):
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self._take = self.client.register_script(self.SCRIPT)
        self._pause = self.client.register_script(self.PAUSE_SCRIPT)

    @staticmethod
    def _keys(key: str) -> list[str]:
        # Under the cache's key prefix, so one Redis can serve several deployments (or test runs).
        prefix = settings.CACHES["default"].get("KEY_PREFIX") or "amo"
        return [f"{prefix}:rl:{key}:log", f"{prefix}:rl:{key}:pause", f"{prefix}:rl:{key}:seq"]

    def try_take(self, key: str, limit: int, window: float) -> float:
        wait_us = int(self._take(keys=self._keys(key), args=[limit, int(window * 1_000_000)]))
        return wait_us / 1_000_000

    def pause(self, key: str, seconds: float) -> None:
        self._pause(keys=self._keys(key)[1:2], args=[int(seconds * 1_000_000)])


class _FileBackend:
    """Embedded mode (no Redis): the same sliding log in a JSON file under an exclusive flock."""

    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def _locked(self, key: str, update):
        path = self.folder / f"{key}.json"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            raw = os.read(fd, 1 << 20)
            state = json.loads(raw) if raw else {"log": [], "pause_until": 0.0}
            result = update(state, time.time())
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(state).encode())
            return result
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def try_take(self, key: str, limit: int, window: float) -> float:
        def update(state, now):
            if state["pause_until"] > now:
                return state["pause_until"] - now
            state["log"] = [t for t in state["log"] if t > now - window]
            if len(state["log"]) < limit:
                state["log"].append(now)
                return 0.0
            return max(0.000001, min(state["log"]) + window - now)

        return self._locked(key, update)

    def pause(self, key: str, seconds: float) -> None:
        def update(state, now):
            state["pause_until"] = max(state["pause_until"], now + seconds)

        self._locked(key, update)


_backend = None


def backend():
    global _backend
    if _backend is None:
        if settings.REDIS_URL:
            _backend = _RedisBackend(settings.REDIS_URL)
        else:
            _backend = _FileBackend(Path(settings.VAR_DIR) / "ratelimit")
    return _backend


class AccountRateLimiter:
    """`acquire()` blocks until this account may send one more request (at most `max_wait` seconds)."""

    def __init__(self, account_id: int, *, rate: float | None = None, max_wait: float = DEFAULT_MAX_WAIT):
        self.key = f"account-{account_id}"
        rate = settings.AMOCRM_RATE_LIMIT if rate is None else rate
        # A fractional rate (e.g. 0.5/s) becomes 1 request per 2 s window.
        window = settings.AMOCRM_RATE_WINDOW
        if rate >= 1:
            self.limit, self.window = int(rate), window
        else:
            self.limit, self.window = 1, window / rate
        self.max_wait = max_wait

    def acquire(self) -> float:
        """Take a slot; returns the seconds waited."""
        waited = 0.0
        while True:
            wait = backend().try_take(self.key, self.limit, self.window)
            if wait <= 0:
                metrics.limiter_wait(waited)
                return waited
            if waited + wait > self.max_wait:
                raise RateLimitTimeout(f"no amoCRM request slot for {self.key} within {self.max_wait:.0f}s")
            # A little jitter keeps waiting processes from waking in lockstep.
            pause = wait + random.uniform(0, 0.01)
            time.sleep(pause)
            waited += pause

    def pause(self, seconds: float) -> None:
        """Stop everyone's requests for this account for `seconds` (after a 429)."""
        backend().pause(self.key, seconds)
