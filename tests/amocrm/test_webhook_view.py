"""The webhook receiver: authenticate, store raw, enqueue on commit, answer 200 — also with the broker down."""

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.utils import timezone

from amocrm.models import WebhookEvent
from amocrm.webhooks.processing import webhook_events_sweep
from config.celery import app as celery_app
from tests.factories import make_account
from tests.fixtures.loader import load_fixture
from tests.sales.builders import AMO_ACCOUNT_ID, FORM

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]

WON = load_fixture("amocrm/webhooks/lead_status_won.txt")


def queued() -> list[tuple[str, list]]:
    """(task name, args) of every message waiting in this test run's Celery queue in Redis."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        raw = client.lrange(settings.CELERY_TASK_DEFAULT_QUEUE, 0, -1)
    finally:
        client.close()
    messages = [json.loads(item) for item in raw]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0]) for m in reversed(messages)]


@pytest.fixture
def broker_down():
    """Point the Celery app at a port nobody listens on, as if Redis were down; yields "bring it back"."""
    saved = celery_app.conf.broker_url, celery_app._pool, celery_app.amqp._producer_pool
    celery_app.conf.broker_url = "redis://127.0.0.1:1/0"
    celery_app._pool = celery_app.amqp._producer_pool = None

    def restore():
        celery_app.conf.broker_url, celery_app._pool, celery_app.amqp._producer_pool = saved

    yield restore
    restore()


def post(client, path, body=WON, content_type=FORM, **extra):
    return client.post(path, data=body, content_type=content_type, **extra)


def test_it_stores_the_raw_delivery_and_answers_200(client, account):
    response = post(client, account.webhook_path, headers={"User-Agent": "amoCRM-WebHook-client/1.0",
                                                           "Authorization": "Bearer secret", "Cookie": "a=b"},
                    REMOTE_ADDR="203.0.113.9")

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert (event.account, event.state, bytes(event.body)) == (account, WebhookEvent.State.RECEIVED, WON)
    assert event.remote_ip == "203.0.113.9"
    assert event.content_type == FORM
    assert event.headers["User-Agent"] == "amoCRM-WebHook-client/1.0"
    assert "Authorization" not in event.headers and "Cookie" not in event.headers
    assert len(event.body_sha256) == 64


def test_it_answers_404_and_stores_nothing_for_an_unknown_key(client, account):
    assert post(client, f"/api/webhooks/amocrm/{account.webhook_key}x/").status_code == 404
    assert post(client, f"/api/webhooks/amocrm/{account.webhook_key[:-1]}/").status_code == 404
    assert post(client, "/api/webhooks/amocrm/nope/").status_code == 404
    assert not WebhookEvent.objects.exists()


def test_it_refuses_other_methods(client, account):
    assert client.get(account.webhook_path).status_code == 405
    assert not WebhookEvent.objects.exists()


def test_it_answers_413_to_a_body_over_1_mib_and_stores_nothing(client, account):
    body = b"leads[add][0][name]=" + b"x" * (1024 * 1024)

    assert post(client, account.webhook_path, body).status_code == 413
    assert not WebhookEvent.objects.exists()


def test_it_accepts_a_body_of_exactly_1_mib(client, account):
    body = b"leads[add][0][name]=" + b"x" * (1024 * 1024 - 20)

    assert post(client, account.webhook_path, body).status_code == 200


@pytest.mark.parametrize("body, content_type", [
    (WON.replace(b"account%5Bid%5D=123456", b"account%5Bid%5D=999"), FORM),
    (json.dumps({"leads": {"add": [{"id": "1"}]}, "account": {"id": "999"}}).encode(), "application/json"),
])
def test_it_answers_403_to_a_delivery_for_another_account_and_never_processes_it(
        client, account, body, content_type, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(client, account.webhook_path, body, content_type)

    assert response.status_code == 403
    assert callbacks == []
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.REJECTED
    assert "999" in event.error


def test_it_stores_a_body_it_cannot_parse_and_still_answers_200(client, account):
    response = post(client, account.webhook_path, b"\xff\xfe garbage \x00", "application/octet-stream")

    assert response.status_code == 200
    assert bytes(WebhookEvent.objects.get().body) == b"\xff\xfe garbage \x00"


def test_it_accepts_json(client, account):
    body = load_fixture("amocrm/webhooks/json_body.json")

    assert post(client, account.webhook_path, body, "application/json").status_code == 200
    assert WebhookEvent.objects.get().content_type == "application/json"


def test_it_enqueues_processing_only_after_commit(client, account, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post(client, account.webhook_path)
        assert queued() == []  # nothing published while the row is not committed

    assert response.status_code == 200
    assert len(callbacks) == 1
    event = WebhookEvent.objects.get()
    assert queued() == [("amocrm.tasks.process_webhook_event", [event.pk])]


def test_with_the_broker_down_it_answers_200_and_the_sweeper_enqueues_later(
        client, account, broker_down, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, account.webhook_path)

    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.state == WebhookEvent.State.RECEIVED
    WebhookEvent.objects.filter(pk=event.pk).update(received_at=timezone.now() - timedelta(minutes=2))
    assert webhook_events_sweep() == 0  # the broker is still down: nothing sent, nothing marked as sent

    broker_down()  # the broker is back
    assert webhook_events_sweep() == 1
    assert queued() == [("amocrm.tasks.process_webhook_event", [event.pk])]


def test_the_sweeper_enqueues_deliveries_left_received_once_the_broker_is_back(client, account):
    old = timezone.now() - timedelta(minutes=5)
    stuck = WebhookEvent.objects.create(account=account, body=WON, body_sha256="a" * 64, received_at=old)
    WebhookEvent.objects.create(account=account, body=WON, body_sha256="b" * 64)  # fresh: its task is on the way
    WebhookEvent.objects.create(account=account, body=WON, body_sha256="c" * 64, received_at=old,
                                state=WebhookEvent.State.PROCESSED)

    assert webhook_events_sweep() == 1
    assert queued() == [("amocrm.tasks.process_webhook_event", [stuck.pk])]
    # A message already sent is not sent again on every sweep while it waits in a long queue.
    assert webhook_events_sweep() == 0


def test_the_sweep_task_runs_the_sweeper(account):
    from amocrm.tasks import sweep_webhook_events

    WebhookEvent.objects.create(account=account, body=WON, body_sha256="a" * 64,
                                received_at=timezone.now() - timedelta(minutes=2))

    assert sweep_webhook_events() == 1


def test_a_key_of_another_account_stores_under_that_account(client, account):
    other = make_account(host="http://other.sandbox.test", amocrm_account_id=123457, name="Other")
    body = WON.replace(b"123456", b"123457")

    assert post(client, other.webhook_path, body).status_code == 200
    assert WebhookEvent.objects.get().account == other


def test_the_account_id_check_reads_only_top_level_keys_the_way_a_full_regex_search_would():
    import random
    import re

    from amocrm.webhooks.ingest import claimed_account_id

    reference = re.compile(rb"(?:^|&)account(?:%5B|\[)id(?:%5D|\])=(\d{1,20})(?:&|$)", re.IGNORECASE)
    bodies = [WON, b"account%5Bid%5D=5", b"ACCOUNT[ID]=6&x=1", b"a=1&account[id]=x&account%5bid%5d=7",
              b"leads[add][0][account_id]=8", b"x=1&leads%5Badd%5D%5B0%5D%5Baccount_id%5D=9&account[id]=10\n",
              b"account[id]=", b"&account[id]=11", b"", b"account", b"&&account[id]=12&"]
    rng = random.Random(6)
    for _ in range(300):  # cuts and splices of a real body
        start, end = sorted(rng.sample(range(len(WON)), 2))
        bodies.append(WON[start:end] + rng.choice([b"", b"&account[id]=13", b"&ACCOUNT%5BID%5D=14&"]))

    for body in bodies:
        match = reference.search(body)
        assert claimed_account_id(body, FORM) == (int(match.group(1)) if match else None), body
