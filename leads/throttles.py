"""Per-IP throttle for the lead intake: an atomic counter in the shared cache, so every web process counts together."""

import logging
import time

from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle

from config.net import client_ip

from . import marks

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """"30/min" → (30, 60), like DRF's rates."""
    count, period = rate.split("/")
    return int(count), PERIODS[period.strip()[0]]


class LeadIntakeThrottle(BaseThrottle):
    """Fixed windows counted with an atomic increment: race-free across processes, unlike DRF's get-then-set.

    The rate is read on every request (`DEFAULT_THROTTLE_RATES["lead_intake"]`, from LEAD_INTAKE_THROTTLE).
    A cache outage lets requests through: losing leads would be worse than a missed throttle.
    """

    scope = "lead_intake"

    def allow_request(self, request, view) -> bool:
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)
        if not rate:
            return True
        limit, period = parse_rate(rate)
        now = time.time()
        window = int(now // period)
        self._wait = (window + 1) * period - now
        key = f"leads:throttle:{client_ip(request) or 'unknown'}:{period}:{window}"
        try:
            count = marks.count(key, seconds=period + 1)
        except Exception as exc:  # noqa: BLE001
            logger.warning("intake throttle unavailable", extra={"error": repr(exc)})
            return True
        return count <= limit

    def wait(self) -> float:
        return getattr(self, "_wait", None)
