"""Race-free counters and one-shot marks in the shared cache, one Redis round trip each.

The intake is hot: Django's Redis cache builds a new client object per call and needs two round
trips for an `incr`, which together cost more than the request's INSERT. With REDIS_URL set these
go straight to Redis through one connection pool per process; without it (embedded mode) they use
Django's cache. Keys get the cache's prefix, so they live in the same namespace either way.
"""

import threading

import redis
from django.conf import settings
from django.core.cache import cache

_client: redis.Redis | None = None
_client_lock = threading.Lock()
_count_script = None
# INCR and, for the window's first request, EXPIRE: atomic, one round trip, no key left without a lifetime.
COUNT_LUA = """
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return value
"""


def _redis() -> redis.Redis | None:
    global _client, _count_script
    if not settings.REDIS_URL:
        return None
    if _client is None:
        with _client_lock:
            if _client is None:
                client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
                _count_script = client.register_script(COUNT_LUA)
                _client = client
    return _client


def full_key(key: str) -> str:
    return cache.make_key(key)


def count(key: str, *, seconds: int) -> int:
    """Increment the counter `key` (created with a `seconds` lifetime) and return its new value."""
    client = _redis()
    if client is None:
        if cache.add(key, 1, timeout=seconds):
            return 1
        return cache.incr(key)
    return int(_count_script(keys=[full_key(key)], args=[seconds]))


def claim(key: str, value: str, *, seconds: int) -> str | None:
    """Set `key` to `value` unless it is set: None when this call set it, else the value already there."""
    client = _redis()
    if client is None:
        if cache.add(key, value, timeout=seconds):
            return None
        return cache.get(key) or ""
    if client.set(full_key(key), value, nx=True, ex=seconds):
        return None
    existing = client.get(full_key(key))
    return existing.decode() if existing is not None else ""


def mark(key: str, *, seconds: int) -> bool:
    """Set `key` unless it is set; True when this call set it."""
    client = _redis()
    if client is None:
        return cache.add(key, 1, timeout=seconds)
    return bool(client.set(full_key(key), 1, nx=True, ex=seconds))


def release(key: str, value: str | None = None) -> None:
    """Delete `key` (only while it still holds `value`, when one is given)."""
    client = _redis()
    if client is None:
        if value is None or cache.get(key) == value:
            cache.delete(key)
        return
    if value is None:
        client.delete(full_key(key))
    elif (client.get(full_key(key)) or b"").decode() == value:
        client.delete(full_key(key))
