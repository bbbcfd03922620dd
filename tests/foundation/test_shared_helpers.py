"""The helpers every app shares: amoCRM value parsing, advisory locks, the backoff formula."""

import threading
from datetime import UTC, datetime

import pytest
from django.db import connection, connections

from amocrm.values import embedded, main_contact_id, to_id, to_int, to_moment
from config.locks import hold_locks, lock_key, try_lock
from config.retry import backoff_seconds


@pytest.mark.parametrize(("value", "expected"), [
    (42, 42), ("42", 42), (" 42 ", 42), ("-7", -7), ("+7", 7), ("0", 0),
    (True, None), (4.0, None), ("", None), ("4.5", None), ("1e3", None), (None, None), ("٣", None),
    ("9" * 19, None), ([1], None),
])
def test_to_int_reads_only_integers(value, expected):
    assert to_int(value) == expected


def test_to_id_refuses_zero_and_negative_ids():
    assert to_id("9001") == 9001
    assert to_id("0") is None
    assert to_id(-1) is None


def test_to_moment_reads_unix_seconds_and_refuses_unset_and_out_of_range_times():
    assert to_moment("1700000000") == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert to_moment("0") is None
    assert to_moment("99999999999999") is None
    assert to_moment("yesterday") is None


def test_embedded_returns_only_dicts_and_tolerates_every_missing_level():
    assert embedded({"_embedded": {"contacts": [{"id": 1}, "junk", {"id": 2}]}}, "contacts") == [{"id": 1}, {"id": 2}]
    assert embedded({"_embedded": {"contacts": None}}, "contacts") == []
    assert embedded({"_embedded": []}, "contacts") == []
    assert embedded(None, "contacts") == []


def test_main_contact_is_the_flagged_one_else_the_first():
    deal = {"_embedded": {"contacts": [{"id": "5"}, {"id": 6, "is_main": True}]}}
    assert main_contact_id(deal) == 6
    assert main_contact_id({"_embedded": {"contacts": [{"id": "5"}, {"id": 6}]}}) == 5
    assert main_contact_id({"_embedded": {"contacts": []}}) is None


def test_lock_keys_are_stable_signed_64_bit_numbers():
    key = lock_key("sales.deal", 1, 9001)
    assert key == lock_key("sales.deal", 1, 9001) != lock_key("sales.deal", 1, 9002)
    assert -(2**63) <= key < 2**63


@pytest.mark.django_db(transaction=True)
def test_try_lock_is_held_by_one_connection_at_a_time():
    seen = []

    def other_connection():
        try:
            with try_lock("test.lock", 1, fallback_seconds=60) as locked:
                seen.append(locked)
        finally:
            connections.close_all()

    with try_lock("test.lock", 1, fallback_seconds=60) as locked:
        assert locked
        thread = threading.Thread(target=other_connection)
        thread.start()
        thread.join()
    assert seen == [False]
    with try_lock("test.lock", 1, fallback_seconds=60) as again:
        assert again


@pytest.mark.django_db(transaction=True)
def test_hold_locks_releases_every_lock_even_on_error():
    keys = [lock_key("test.deal", n) for n in range(3)]
    with pytest.raises(RuntimeError), hold_locks(keys):
        raise RuntimeError("boom")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        assert cursor.fetchone()[0] == 0


def test_backoff_doubles_up_to_the_cap_with_jitter():
    for attempt, full in [(1, 5), (2, 10), (3, 20), (20, 1800)]:
        samples = [backoff_seconds(attempt, base=5, cap=1800) for _ in range(200)]
        assert all(full / 2 <= sample <= full for sample in samples)
        assert len(set(samples)) > 1
