"""Per-IP throttle for the lead intake: an atomic counter in the shared cache, so every web process counts together.

Every request is counted exactly once, in fixed windows. The intake counts a valid post in the same
Redis call as its double-click check (`marks.admit`, through `lead_create`), and a request
refused before that (bad input, a foreign origin, a wrong media type) on its way out; so a flood of
bad posts is throttled like good ones, and a good post costs one round trip instead of two.
"""

import time
from dataclasses import dataclass

from rest_framework.settings import api_settings

from config.net import client_ip

from . import marks

SCOPE = "lead_intake"
PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """"30/min" → (30, 60), like DRF's rates."""
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0]]


@dataclass(frozen=True)
class IntakeWindow:
    """The throttle window a request falls in: what to count, and how long until the window ends."""

    limit: marks.Limit
    wait: float

    @classmethod
    def of(cls, request) -> "IntakeWindow | None":
        """None when the throttle is off. The rate is read on every request
        (`DEFAULT_THROTTLE_RATES["lead_intake"]`, from LEAD_INTAKE_THROTTLE)."""
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(SCOPE)
        if not rate:
            return None
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        key = f"leads:throttle:{client_ip(request) or 'unknown'}:{period}:{window}"
        # The counter outlives its window by a second, so a clock step between hosts cannot reopen it.
        return cls(limit=marks.Limit(key=key, limit=limit, seconds=period + 1), wait=(window + 1) * period - now)

    def count(self) -> bool:
        """Count one request; False when it is over the limit. A cache outage lets requests through:
        losing leads would be worse than a missed throttle."""
        try:
            return marks.count(self.limit.key, seconds=self.limit.seconds) <= self.limit.limit
        except Exception as exc:  # noqa: BLE001
            marks.log_trouble("intake throttle unavailable", exc)
            return True
