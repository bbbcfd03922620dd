"""A Redis that accepts connections and never answers: the intake and the webhook receiver keep answering from
the database, stop calling Redis after the first timeout, and everything stored meanwhile goes out once it is back.

The proof counts what reaches a fake Redis (connections and bytes), never how long anything took.
"""

import json
import socket
import threading
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from amocrm.models import WebhookEvent
from amocrm.tasks import process_webhook_event
from config.breaker import redis_breaker
from config.celery import app as celery_app
from config.queue import publish
from leads import marks
from leads.models import Lead
from leads.push import schedule
from leads.tasks import push_account_leads
from tests.leads.conftest import API, queued_task_args, queued_task_names

URL = "/api/leads/"
TIMEOUT = 0.2  # the timeouts under test, short so the few calls that do wait cost little
BREAKER_SECONDS = 60  # longer than the test: only the fake clock ends a breaker period


class HungRedis:
    """A TCP server that accepts every connection, reads whatever is sent, and never answers a byte."""

    def __init__(self):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.url = f"redis://127.0.0.1:{self.server.getsockname()[1]}/0"
        self.connections = 0
        self.received = 0
        self._clients: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._clients.append(client)
            threading.Thread(target=self._swallow, args=(client,), daemon=True).start()

    def _swallow(self, client):
        while True:
            try:
                data = client.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self._lock:
                self.received += len(data)

    def seen(self) -> tuple[int, int]:
        with self._lock:
            return self.connections, self.received

    def close(self):
        self._closed = True
        self.server.close()
        for client in self._clients:
            client.close()


class FakeClock:
    def __init__(self, start: float):
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _point_the_broker_at(url: str, timeout: float | None = None) -> None:
    celery_app.conf.broker_url = url
    celery_app.conf.broker_write_url = None
    celery_app.conf.broker_read_url = None
    options = dict(django_settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    if timeout is not None:
        options.update(socket_timeout=timeout, socket_connect_timeout=timeout)
    celery_app.conf.broker_transport_options = options
    # Drop the app's cached pools (kombu keeps one per broker URL, so the real one is reused on restore).
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def hung():
    server = HungRedis()
    yield server
    server.close()


@pytest.fixture
def clock(monkeypatch):
    import time

    fake = FakeClock(time.monotonic())
    monkeypatch.setattr(redis_breaker, "clock", fake)
    redis_breaker.succeeded()  # closed, whatever an earlier test left
    yield fake
    redis_breaker.succeeded()


@pytest.fixture
def redis_hangs(hung, clock, settings):
    """REDIS_URL and the broker both on the hung server, with short timeouts; `back()` restores the real Redis."""
    real_url = settings.REDIS_URL
    settings.REDIS_URL = hung.url
    settings.REDIS_INTAKE_TIMEOUT = TIMEOUT
    settings.REDIS_BREAKER_SECONDS = BREAKER_SECONDS
    _point_the_broker_at(hung.url, TIMEOUT)

    def back():
        settings.REDIS_URL = real_url
        _point_the_broker_at(django_settings.CELERY_BROKER_URL)

    yield back
    back()


def post_json(client, payload, **headers):
    return client.post(URL, data=json.dumps(payload), content_type="application/json", **headers)


def valid(source, i: int):
    return {"source": source.public_key, "name": f"Visitor {i}", "phone": f"+7912000{i:04d}"}


@pytest.mark.django_db
def test_with_redis_hung_the_intake_answers_from_the_database_and_stops_calling_redis_until_it_is_back(
        client, source, redis_hangs, hung, clock, amocrm_mock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_json(client, valid(source, 0))
    assert first.status_code == 201
    after_first = hung.seen()
    assert after_first[0] >= 1  # the first call waited for its timeout

    # While the breaker is open: valid posts, a double click, a refused post — nothing reaches Redis.
    with django_capture_on_commit_callbacks(execute=True):
        answers = [post_json(client, valid(source, i)) for i in range(1, 6)]
        again = post_json(client, valid(source, 5))
        refused = post_json(client, {"source": "no-such-source", "phone": "+79120000000"})
    assert [answer.status_code for answer in answers] == [201] * 5
    assert again.status_code == 201 and again.json() == answers[-1].json()  # the database's double-click check
    assert refused.status_code == 400
    assert hung.seen() == after_first
    assert Lead.objects.filter(status=Lead.Status.PENDING).count() == 6
    assert redis_breaker.is_open

    # The period over, exactly one call probes the server; it hangs too, so the breaker opens again.
    clock.advance(BREAKER_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_json(client, valid(source, 6)).status_code == 201
        assert post_json(client, valid(source, 7)).status_code == 201
    assert hung.seen()[0] == after_first[0] + 1 and redis_breaker.is_open

    # Redis is back: the next probe succeeds, and that lead queues its push again as usual.
    redis_hangs()
    clock.advance(BREAKER_SECONDS + 1)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_json(client, valid(source, 8)).status_code == 201
    assert not redis_breaker.is_open
    assert queued_task_names() == ["leads.tasks.push_account_leads"]
    assert Lead.objects.count() == 9 and hung.seen()[0] == after_first[0] + 1

    # The leads stored meanwhile were never lost: the sweeper finds them, and one push sends all nine.
    Lead.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    assert schedule.leads_sweep() == 1
    assert queued_task_args()[-1] == [source.account_id]
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")

    def created(request):
        items = json.loads(request.body)
        return 200, {}, json.dumps([{"id": 5001 + i, "contact_id": 7001 + i, "request_id": [item["request_id"]]}
                                    for i, item in enumerate(items)])

    amocrm_mock.add_callback("POST", f"{API}/leads/complex", callback=created)
    push_account_leads(source.account_id)
    assert Lead.objects.filter(status=Lead.Status.SENT).count() == 9


@pytest.mark.django_db
def test_with_the_broker_hung_publishing_is_skipped_after_the_first_timeout(redis_hangs, hung, clock):
    assert publish(push_account_leads, 1) is False
    after_first = hung.seen()
    assert after_first[0] >= 1
    assert [publish(push_account_leads, 1) for _ in range(5)] == [False] * 5
    assert hung.seen() == after_first and redis_breaker.is_open

    clock.advance(BREAKER_SECONDS + 1)
    assert publish(push_account_leads, 1) is False  # the probe: it reached the server, which hangs
    probed = hung.seen()
    assert probed[0] > after_first[0]
    assert publish(push_account_leads, 1) is False and hung.seen() == probed

    redis_hangs()
    clock.advance(BREAKER_SECONDS + 1)
    assert publish(push_account_leads, 2) is True and not redis_breaker.is_open
    assert queued_task_args() == [[2]]


@pytest.mark.django_db
def test_with_the_broker_hung_webhooks_are_stored_answered_and_processed_once_it_is_back(
        client, account, redis_hangs, hung, clock, django_capture_on_commit_callbacks):
    url = f"/api/webhooks/amocrm/{account.webhook_key}/"
    body = f"account%5Bid%5D={account.amocrm_account_id}&leads%5Bdelete%5D%5B0%5D%5Bid%5D=5001"

    def deliver() -> int:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            status = client.post(url, data=body, content_type="application/x-www-form-urlencoded").status_code
        assert len(callbacks) == 1  # each delivery tried to enqueue its processing
        return status

    assert deliver() == 200
    after_first = hung.seen()
    assert after_first[0] >= 1
    assert [deliver() for _ in range(4)] == [200] * 4 and hung.seen() == after_first
    assert redis_breaker.is_open
    assert WebhookEvent.objects.filter(state=WebhookEvent.State.RECEIVED).count() == 5

    redis_hangs()
    clock.advance(BREAKER_SECONDS + 1)
    event = WebhookEvent.objects.order_by("pk").first()
    assert publish(process_webhook_event, event.pk) is True  # what the webhook sweeper does for each
    assert queued_task_names() == ["amocrm.tasks.process_webhook_event"]


@pytest.mark.django_db
def test_a_redis_that_refuses_at_once_opens_no_breaker(client, source, clock, settings):
    """Refused or reset connections cost nothing to retry (and come back with a restart): only waiting is skipped."""
    real_url = settings.REDIS_URL
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    assert post_json(client, valid(source, 0)).status_code == 201
    assert not redis_breaker.is_open
    settings.REDIS_URL = real_url
    assert marks.count("t:reached", seconds=5) == 1  # the next call goes straight to Redis
