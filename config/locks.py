"""Locks that hold across every worker and host: PostgreSQL session advisory locks, with a cache fallback.

Two users: one lead push per account at a time (`try_lock`, never waits), and one re-read of a
deal at a time (`hold_locks`, waits, taken in key order so overlapping holders never deadlock).
A session lock dies with its connection, so a killed worker never leaves one behind. The SQLite
laptop mode has no advisory locks: `try_lock` falls back to a cache entry with a lifetime, and
`hold_locks` to nothing (one machine, few workers).
"""

import hashlib
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.core.cache import cache
from django.db import connection


def lock_key(*parts: object) -> int:
    """A signed 64-bit advisory-lock key naming `parts` (e.g. "sales.deal", account id, deal id)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextmanager
def try_lock(*parts: object, fallback_seconds: int) -> Iterator[bool]:
    """Take the lock named by `parts` if it is free; yields whether this caller holds it. Never waits.

    Without PostgreSQL the lock is a cache entry that expires after `fallback_seconds` (longer
    than any holder can live), so a crashed holder's lock does not last forever.
    """
    key = lock_key(*parts)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            locked = bool(cursor.fetchone()[0])
        try:
            yield locked
        finally:
            if locked:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return
    name, token = f"lock:{key}", uuid.uuid4().hex
    locked = cache.add(name, token, timeout=fallback_seconds)
    try:
        yield locked
    finally:
        if locked and cache.get(name) == token:
            cache.delete(name)


@contextmanager
def hold_locks(keys: Iterable[int]) -> Iterator[None]:
    """Wait for and hold every lock in `keys` (from `lock_key`), taken in key order; released even on errors.

    Callers keep the number of keys bounded (PostgreSQL's lock table is shared and finite).
    """
    if connection.vendor != "postgresql":
        yield
        return
    taken = []
    try:
        with connection.cursor() as cursor:
            for key in sorted(set(keys)):
                cursor.execute("SELECT pg_advisory_lock(%s)", [key])
                taken.append(key)
        yield
    finally:
        if taken:
            with connection.cursor() as cursor:
                for key in taken:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
