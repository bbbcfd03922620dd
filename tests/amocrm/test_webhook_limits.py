"""Bounds on one delivery's cost: deal locks in batches, items per task run, deliveries per key, event retention."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from amocrm.models import WebhookEvent
from amocrm.services import webhook_events_prune
from amocrm.tasks import prune_webhook_events
from amocrm.webhooks.processing import webhook_event_process
from sales import services
from sales.models import Sale
from tests.factories import make_account
from tests.sales.builders import AMO_ACCOUNT_ID, FORM, api_deal, deliver, delivery, lead_event, serve_deals

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]

State = WebhookEvent.State


def won_delivery(count: int, first_deal: int = 10_000) -> bytes:
    return delivery(*(lead_event("status", first_deal + i, status_id=142, old_status_id=555,
                                 last_modified=1700001000, index=i) for i in range(count)))


def advisory_locks_held() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()")
        return cursor.fetchone()[0]


# --- Deal locks: a batch at a time ----------------------------------------------------------------


def test_a_large_delivery_locks_reads_and_applies_its_deals_250_at_a_time(client, account, amocrm_mock, monkeypatch):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id, price=deal_id))
    held_at_each_read = []
    real_read = services._read_deals

    def counting_read(**kwargs):
        held_at_each_read.append((len(kwargs["deal_ids"]), advisory_locks_held()))
        return real_read(**kwargs)

    monkeypatch.setattr(services, "_read_deals", counting_read)

    event = deliver(client, account, won_delivery(600))
    assert webhook_event_process(event_id=event.pk) == State.PROCESSED

    # Each batch: its own locks only (the previous batch's are released), one list request.
    assert held_at_each_read == [(250, 250), (250, 250), (100, 100)]
    assert len(amocrm_mock.calls) == 3
    assert advisory_locks_held() == 0
    assert Sale.objects.count() == 600


def test_reconciliation_and_single_re_reads_still_lock_their_deal(account, amocrm_mock):
    amocrm_mock.get("http://sandbox.test/api/v4/leads/9001", json=api_deal(9001))
    with services.deals_locked(account, [9001, 9002]):
        assert advisory_locks_held() == 2
    assert advisory_locks_held() == 0
    assert services.deals_reread(account=account, deal_ids=[9001])[9001].state == Sale.State.WON


# --- Items per task run: the rest is stored for a follow-up run, never dropped -------------------------


def test_a_delivery_over_the_per_run_cap_is_finished_by_follow_up_runs(client, account, amocrm_mock, settings,
                                                                      django_capture_on_commit_callbacks):
    settings.WEBHOOK_ITEMS_PER_RUN = 100
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    event = deliver(client, account, won_delivery(250))

    with django_capture_on_commit_callbacks() as callbacks:
        assert webhook_event_process(event_id=event.pk) == State.RECEIVED
    event.refresh_from_db()
    assert (event.state, event.items_done, event.items_total) == (State.RECEIVED, 100, 250)
    assert Sale.objects.count() == 100
    assert len(callbacks) == 1  # the follow-up run is enqueued once this one commits

    with django_capture_on_commit_callbacks() as callbacks:
        assert webhook_event_process(event_id=event.pk) == State.RECEIVED
    assert len(callbacks) == 1
    assert Sale.objects.count() == 200

    with django_capture_on_commit_callbacks() as callbacks:
        assert webhook_event_process(event_id=event.pk) == State.PROCESSED
    assert callbacks == []
    event.refresh_from_db()
    assert (event.state, event.items_done, event.items_total, event.error) == (State.PROCESSED, 250, 250, "")
    assert Sale.objects.count() == 250
    assert len(amocrm_mock.calls) == 3  # one list request per run: no deal is read twice


def test_reprocessing_a_capped_delivery_starts_again_from_its_first_item(client, account, amocrm_mock, settings):
    from amocrm.webhooks.processing import webhook_event_reprocess

    settings.WEBHOOK_ITEMS_PER_RUN = 2
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    event = deliver(client, account, won_delivery(3))
    webhook_event_process(event_id=event.pk)
    webhook_event_process(event_id=event.pk)

    webhook_event_reprocess(event_id=event.pk)

    event.refresh_from_db()
    assert (event.state, event.items_done) == (State.RECEIVED, 0)


def test_the_sweeper_leaves_a_delivery_alone_while_its_follow_up_is_queued(client, account, amocrm_mock, settings):
    from amocrm.webhooks.processing import webhook_events_sweep

    settings.WEBHOOK_ITEMS_PER_RUN = 2
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    event = deliver(client, account, won_delivery(3))
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    webhook_event_process(event_id=event.pk)

    assert webhook_events_sweep() == 0


# --- Deliveries per key ---------------------------------------------------------------------------


def test_deliveries_over_the_per_key_rate_are_answered_429_and_not_stored(client, account, settings):
    settings.WEBHOOK_THROTTLE = "3/min"
    other = make_account(host="http://other.sandbox.test", amocrm_account_id=123457, name="Other")
    body = won_delivery(1)

    answers = [client.post(account.webhook_path, data=body, content_type=FORM).status_code for _ in range(4)]

    assert answers == [200, 200, 200, 429]
    assert WebhookEvent.objects.filter(account=account).count() == 3
    refused = client.post(account.webhook_path, data=body, content_type=FORM)
    assert int(refused["Retry-After"]) > 0
    # Another key has its own budget, and an unknown key is still a plain 404.
    other_body = body.replace(b"123456", b"123457")
    assert client.post(other.webhook_path, data=other_body, content_type=FORM).status_code == 200
    assert client.post("/api/webhooks/amocrm/nope/", data=body, content_type=FORM).status_code == 404


def test_the_default_rate_is_generous(settings):
    count, _, period = settings.WEBHOOK_THROTTLE.partition("/")
    assert int(count) >= 300 and period in ("min", "minute", "m")


# --- Retention ----------------------------------------------------------------------------------


def test_old_webhook_events_are_pruned_in_batches(account, settings):
    old = timezone.now() - timedelta(days=settings.WEBHOOK_EVENT_RETENTION_DAYS + 1)
    for i in range(5):
        WebhookEvent.objects.create(account=account, body=b"x", body_sha256=f"{i:064}", received_at=old)
    fresh = WebhookEvent.objects.create(account=account, body=b"x", body_sha256="f" * 64)

    assert webhook_events_prune(older_than_days=settings.WEBHOOK_EVENT_RETENTION_DAYS, batch_size=2) == 5

    assert list(WebhookEvent.objects.values_list("pk", flat=True)) == [fresh.pk]


def test_the_periodic_task_prunes_webhook_events_after_the_retention(account, settings):
    settings.WEBHOOK_EVENT_RETENTION_DAYS = 3
    WebhookEvent.objects.create(account=account, body=b"x", body_sha256="a" * 64,
                                received_at=timezone.now() - timedelta(days=4))
    WebhookEvent.objects.create(account=account, body=b"x", body_sha256="b" * 64,
                                received_at=timezone.now() - timedelta(days=2))

    assert prune_webhook_events() == 1
    assert WebhookEvent.objects.count() == 1


def test_the_beat_schedule_runs_the_webhook_event_prune():
    from config.celery import app

    tasks = {entry["task"] for entry in app.conf.beat_schedule.values()}
    assert {"amocrm.tasks.prune_sync_log", "amocrm.tasks.prune_webhook_events"} <= tasks
