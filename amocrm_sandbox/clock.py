"""The sandbox's notion of "now": wall time by default, injectable for tests, and movable forward on demand."""

import threading
import time
from collections.abc import Callable


class SandboxClock:
    """Seconds since the epoch from `source`, plus an offset the control API can push forward.

    Advancing lets a test or an end-to-end run age authorization codes and tokens by twenty minutes
    or a day without waiting for them.
    """

    def __init__(self, source: Callable[[], float] | None = None) -> None:
        self._source = source or time.time
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            offset = self._offset
        return self._source() + offset

    @property
    def offset(self) -> float:
        """How far the clock was pushed forward in all (kept in the state file)."""
        with self._lock:
            return self._offset

    def advance(self, seconds: float) -> float:
        with self._lock:
            self._offset += seconds
        return self()
