"""The embedded (file-lock) limiter backend, and sync-log retention."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from amocrm import ratelimit
from amocrm.models import SyncLog
from amocrm.tasks import prune_sync_log
from tests.factories import make_account


@pytest.fixture
def file_backend(tmp_path, monkeypatch):
    backend = ratelimit._FileBackend(tmp_path / "rl")
    monkeypatch.setattr(ratelimit, "_backend", backend)
    return backend


def test_the_file_backend_keeps_a_sliding_window(file_backend):
    limiter = ratelimit.AccountRateLimiter(1, rate=3)
    taken = []
    for _ in range(7):
        limiter.acquire()
        taken.append(time.monotonic())
    for i in range(3, len(taken)):
        assert taken[i] - taken[i - 3] >= 1.0  # any 4 consecutive slots span more than a second


def test_a_pause_holds_everyone_back(file_backend):
    limiter = ratelimit.AccountRateLimiter(2, rate=7)
    limiter.pause(0.5)
    assert limiter.acquire() >= 0.45


def test_a_saturated_account_gives_up_after_the_maximum_wait(file_backend):
    limiter = ratelimit.AccountRateLimiter(3, rate=7, max_wait=0.2)
    limiter.pause(5)
    with pytest.raises(ratelimit.RateLimitTimeout):
        limiter.acquire()


@pytest.mark.django_db
def test_old_sync_log_rows_are_pruned(settings):
    settings.SYNC_LOG_RETENTION_DAYS = 30
    account = make_account()
    old = SyncLog.objects.create(account=account, operation="x", status="ok",
                                 created_at=timezone.now() - timedelta(days=31))
    recent = SyncLog.objects.create(account=account, operation="x", status="ok",
                                    created_at=timezone.now() - timedelta(days=29))
    assert prune_sync_log() == 1
    assert list(SyncLog.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not SyncLog.objects.filter(pk=old.pk).exists()


@pytest.mark.django_db
def test_the_prune_deletes_in_bounded_batches_with_raw_deletes_links_first_and_never_loads_rows():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from amocrm.services import sync_log_prune
    from leads.models import Lead
    from tests.sales.builders import make_lead

    account = make_account()
    old_at = timezone.now() - timedelta(days=31)
    old = [SyncLog.objects.create(account=account, operation="x", status="ok", created_at=old_at,
                                  request_body="r" * 1000) for _ in range(5)]
    recent = SyncLog.objects.create(account=account, operation="x", status="ok")
    lead = make_lead(account)
    lead.sync_logs.add(*old, recent)

    with CaptureQueriesContext(connection) as queries:
        assert sync_log_prune(older_than_days=30, batch_size=2) == 5

    assert list(SyncLog.objects.values_list("pk", flat=True)) == [recent.pk]
    assert list(Lead.objects.get(pk=lead.pk).sync_logs.all()) == [recent]  # the lead stays, its old links go
    sql = [query["sql"] for query in queries.captured_queries]
    # Never the rows themselves (Django's collector would load every deleted row, bodies and all).
    assert not any('"amocrm_synclog"."request_body"' in statement for statement in sql)
    deletes = [statement.split(" WHERE")[0] for statement in sql if statement.startswith("DELETE")]
    assert deletes == ['DELETE FROM "leads_lead_sync_logs"', 'DELETE FROM "amocrm_synclog"'] * 3


@pytest.mark.django_db
def test_the_prune_of_an_empty_window_deletes_nothing():
    from amocrm.services import sync_log_prune

    recent = SyncLog.objects.create(account=make_account(), operation="x", status="ok")

    assert sync_log_prune(older_than_days=30) == 0
    assert SyncLog.objects.get() == recent
