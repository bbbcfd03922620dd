"""The webhook endpoint's per-key rate (WEBHOOK_THROTTLE): a fixed window counted in the cache, Redis in production."""

import hashlib
import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600,
           "d": 86400, "day": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """"600/min" -> (600, 60): deliveries allowed per window, window length in seconds."""
    count, _, period = rate.partition("/")
    return int(count), PERIODS[period]


def webhook_throttle_check(key: str) -> int:
    """0 when this delivery for `key` is within the rate, else the seconds until the next window.

    Never stands between amoCRM and a delivery over our own trouble: a cache that does not answer
    lets the delivery through (a refused delivery counts towards amoCRM disabling the endpoint).
    The cache key holds a hash of the webhook key, never the key itself.
    """
    allowed, period = parse_rate(settings.WEBHOOK_THROTTLE)
    now = time.time()
    window = int(now // period)
    name = f"webhook-throttle:{hashlib.sha256(key.encode()).hexdigest()[:24]}:{window}"
    try:
        cache.add(name, 0, timeout=period + 1)
        used = cache.incr(name)
    except ValueError:  # the window's counter expired between add and incr: a new window began
        return 0
    except Exception:  # noqa: BLE001 — the cache is down: let the delivery through, say so
        logger.warning("webhook throttle unavailable; delivery let through", exc_info=True)
        return 0
    if used <= allowed:
        return 0
    return max(1, int((window + 1) * period - now))
