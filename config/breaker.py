"""A circuit breaker per process for Redis on the request path: after a call times out, skip Redis for a while.

A Redis that accepts connections and never answers costs every caller its full timeout. The intake
and the publishers can do without it (the lead row is the outbox the sweeper queues from; the
double-click check falls back to the database), so after one call times out this process skips
Redis for REDIS_BREAKER_SECONDS; then one caller probes it, and its success closes the breaker.

Only timeouts open it: a refused or reset connection fails in microseconds, and the next call
reconnects by itself (after a Redis restart, say). Each process learns on its own; there is no
shared state to reach when the shared state is what is down.
"""

import logging
import threading
import time

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


class Skipped(Exception):
    """The call was not made: the breaker is open."""


def is_timeout(exc: BaseException) -> bool:
    """Whether `exc`, or what it wraps (kombu wraps redis errors), is a timeout."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, TimeoutError | redis.exceptions.TimeoutError):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


class CircuitBreaker:
    """Closed: every call goes through. Open: `allow()` is False until the period ends; then it lets one
    caller through (the probe) and stays open for the others. `succeeded()` closes it; a timeout in
    `failed()` opens it (again) for another period.

    The closed path is two attribute reads per call: it sits on the intake's hot path.
    """

    def __init__(self, name: str, *, seconds_setting: str, clock=time.monotonic):
        self.name = name
        self.seconds_setting = seconds_setting
        self.clock = clock
        self._open_until: float | None = None  # None: closed
        self._lock = threading.Lock()

    @property
    def seconds(self) -> float:
        return float(getattr(settings, self.seconds_setting))

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allow(self) -> bool:
        until = self._open_until
        if until is None:
            return True
        with self._lock:
            until = self._open_until
            if until is None:
                return True
            now = self.clock()
            if now < until:
                return False
            self._open_until = now + self.seconds  # this caller probes; the others keep skipping meanwhile
            return True

    def succeeded(self) -> None:
        if self._open_until is not None:
            with self._lock:
                self._open_until = None
            logger.warning("%s answers again: calls go through", self.name, extra={"breaker": self.name})

    def failed(self, exc: BaseException) -> None:
        if not is_timeout(exc):
            return
        with self._lock:
            opening = self._open_until is None
            self._open_until = self.clock() + self.seconds
        if opening:
            logger.warning("%s timed out: skipping it for %g s", self.name, self.seconds,
                           extra={"breaker": self.name, "error": repr(exc)})


# REDIS_URL's server: the intake's marks (leads.marks) and the Celery broker (config.queue.publish).
redis_breaker = CircuitBreaker("Redis", seconds_setting="REDIS_BREAKER_SECONDS")
