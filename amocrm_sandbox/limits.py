"""Per-account traffic: amoCRM's request limit (429, then a 403 block) and the counters tests read."""

import threading
from collections import Counter, deque
from dataclasses import dataclass, field

# How long a run of 429s is remembered when deciding to block the account (docs/amocrm.md#rate-limits).
BLOCK_WINDOW_SECONDS = 60.0


class RateLimiter:
    """At most `rate_limit` requests in any one-second window; a sustained excess blocks the account.

    Every request counts, the rejected ones too: a client that keeps hammering never gets back in
    until it pauses. Past `block_threshold` rejections within a minute every request is refused
    with 403 until `reset()`, the way amoCRM support has to lift a block by hand.
    """

    def __init__(self, *, rate_limit: int, block_threshold: int) -> None:
        self.rate_limit = rate_limit
        self.block_threshold = block_threshold
        self.blocked = False
        self._window: deque[float] = deque()
        self._rejections: deque[float] = deque()

    def verdict(self, now: float) -> int | None:
        """Count this request; return 403 or 429 when it must be refused, else None."""
        if self.blocked:
            return 403
        _drop_older_than(self._window, now - 1.0)
        self._window.append(now)
        if len(self._window) <= self.rate_limit:
            return None
        _drop_older_than(self._rejections, now - BLOCK_WINDOW_SECONDS)
        self._rejections.append(now)
        if len(self._rejections) >= self.block_threshold:
            self.blocked = True
        return 429

    def reset(self) -> None:
        self.blocked = False
        self._window.clear()
        self._rejections.clear()


@dataclass
class TrafficStats:
    """What the control API reports about one account's traffic (the control API itself excluded)."""

    requests: int = 0
    paths: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    peak_rps: int = 0
    responses_429: int = 0
    responses_403: int = 0
    token_refreshes: int = 0
    token_refresh_failures: int = 0
    code_exchanges: int = 0
    faults_injected: int = 0
    timestamps: list[float] = field(default_factory=list)
    _window: deque = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record_request(self, path: str, now: float) -> None:
        with self._lock:
            self.requests += 1
            self.paths[path] += 1
            self.timestamps.append(now)
            # The busiest 1-second window always ends at some request, so checking at each arrival finds it.
            _drop_older_than(self._window, now - 1.0)
            self._window.append(now)
            self.peak_rps = max(self.peak_rps, len(self._window))

    def record_status(self, status: int) -> None:
        with self._lock:
            self.statuses[str(status)] += 1
            if status == 429:
                self.responses_429 += 1
            elif status == 403:
                self.responses_403 += 1

    def count(self, counter: str) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + 1)

    def snapshot(self, *, with_timestamps: bool = False) -> dict:
        with self._lock:
            report = {
                "requests": self.requests,
                "paths": dict(self.paths),
                "statuses": dict(self.statuses),
                "peak_rps": self.peak_rps,
                "responses_429": self.responses_429,
                "responses_403": self.responses_403,
                "token_refreshes": self.token_refreshes,
                "token_refresh_failures": self.token_refresh_failures,
                "code_exchanges": self.code_exchanges,
                "faults_injected": self.faults_injected,
            }
            if with_timestamps:
                report["timestamps"] = list(self.timestamps)
            return report


def _drop_older_than(times: deque[float], cutoff: float) -> None:
    while times and times[0] <= cutoff:
        times.popleft()
