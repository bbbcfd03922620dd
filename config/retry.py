"""The one backoff formula: exponential, capped, with jitter, so things that failed together do not retry together."""

import random


def backoff_seconds(attempt: int, *, base: float, cap: float) -> float:
    """Seconds to wait before try `attempt` + 1: base, 2×base, 4×base … up to cap, each 50–100 % of that."""
    delay = min(cap, base * 2 ** max(0, attempt - 1))
    return delay / 2 + random.uniform(0, delay / 2)
