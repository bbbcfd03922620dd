"""The intake's edges: CORS per source, the per-IP throttle, concurrent duplicates, the outbox with the broker down."""

import json
import threading
from datetime import timedelta

import pytest
import redis
from django.conf import settings
from django.db import connection
from django.test import Client
from django.utils import timezone

from config.celery import app as celery_app
from leads import marks
from leads.intake import admission
from leads.models import Lead, LeadSource
from leads.push import mark as push_mark
from leads.tasks import push_account_leads, sweep_pending_leads
from tests.leads.conftest import API, queued_task_args, queued_task_names

URL = "/api/leads/"


def post_json(client, payload, **headers):
    return client.post(URL, data=json.dumps(payload), content_type="application/json", **headers)


def valid(source, **extra):
    return {"source": source.public_key, "name": "Иван", "phone": "+79123456789", **extra}


def claim(key: str, value: str) -> str | None:
    """marks.admit with the claim only: None when this call took `key`, else its holder."""
    return admission.admit(limit=None, claim=admission.Claim(key, value, 5), mark=None).holder


# ---------------------------------------------------------------------------- CORS


@pytest.mark.django_db
def test_a_preflight_from_an_origin_a_source_lists_is_allowed(client, source):
    response = client.options(URL, HTTP_ORIGIN="https://shop.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST",
                              HTTP_ACCESS_CONTROL_REQUEST_HEADERS="content-type, idempotency-key")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert "idempotency-key" in response["Access-Control-Allow-Headers"]


@pytest.mark.django_db
def test_a_preflight_from_an_unlisted_origin_gets_no_cors_headers(client, source, account):
    LeadSource.objects.create(account=account, name="Off", is_active=False, allowed_origins=["https://off.example"])
    for origin in ("https://evil.example", "https://off.example"):
        response = client.options(URL, HTTP_ORIGIN=origin, HTTP_ACCESS_CONTROL_REQUEST_METHOD="POST")
        assert "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
def test_a_post_from_the_sources_own_origin_is_accepted_with_cors_headers(client, source):
    response = post_json(client, valid(source), HTTP_ORIGIN="https://shop.example")
    assert response.status_code == 201
    assert response["Access-Control-Allow-Origin"] == "https://shop.example"


@pytest.mark.django_db
def test_a_post_from_an_origin_only_another_source_allows_is_403_and_stores_nothing(client, source, account):
    LeadSource.objects.create(account=account, name="Blog", allowed_origins=["https://blog.example"])
    response = post_json(client, valid(source), HTTP_ORIGIN="https://blog.example")
    assert response.status_code == 403
    assert "https://blog.example" in response.json()["errors"]["detail"][0]
    assert "Access-Control-Allow-Origin" not in response
    assert Lead.objects.count() == 0


@pytest.mark.django_db
def test_a_server_to_server_post_without_origin_needs_no_cors(client, source):
    response = post_json(client, valid(source))
    assert response.status_code == 201 and "Access-Control-Allow-Origin" not in response


@pytest.mark.django_db
def test_cors_applies_to_the_intake_url_only(client, source):
    response = client.options("/healthz/", HTTP_ORIGIN="https://shop.example", HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in response


# ---------------------------------------------------------------------------- throttle


@pytest.fixture
def three_per_minute(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"lead_intake": "3/min"}}


@pytest.mark.django_db
def test_the_fourth_post_in_a_minute_from_one_ip_is_429(client, source, three_per_minute):
    answers = [post_json(client, valid(source, phone=f"+7912000000{i}"), REMOTE_ADDR="198.51.100.1").status_code
               for i in range(3)]
    assert answers == [201, 201, 201]
    response = post_json(client, valid(source, phone="+79120000009"), REMOTE_ADDR="198.51.100.1")
    assert response.status_code == 429
    assert "errors" in response.json() and int(response["Retry-After"]) <= 60
    assert Lead.objects.count() == 3
    # Another visitor is not affected.
    assert post_json(client, valid(source, phone="+79120000008"), REMOTE_ADDR="198.51.100.2").status_code == 201


@pytest.mark.django_db
def test_bad_requests_count_against_the_throttle_too(client, source, three_per_minute):
    for _ in range(3):
        assert post_json(client, {"source": "nope"}, REMOTE_ADDR="198.51.100.3").status_code == 400
    assert post_json(client, valid(source), REMOTE_ADDR="198.51.100.3").status_code == 429


@pytest.mark.django_db
def test_every_kind_of_refused_request_counts_once(client, source, three_per_minute):
    ip = {"REMOTE_ADDR": "198.51.100.5"}
    assert client.post(URL, data="<xml/>", content_type="application/xml", **ip).status_code == 415
    assert post_json(client, valid(source), HTTP_ORIGIN="https://elsewhere.example", **ip).status_code == 403
    assert client.get(URL, **ip).status_code == 405
    response = post_json(client, valid(source), **ip)
    assert response.status_code == 429 and Lead.objects.count() == 0


@pytest.mark.django_db
def test_a_valid_post_counts_once_with_its_double_click_check(client, source, three_per_minute):
    ip = {"REMOTE_ADDR": "198.51.100.6"}
    answers = [post_json(client, valid(source, phone=f"+7912000002{i}"), **ip).status_code for i in range(4)]
    assert answers == [201, 201, 201, 429]


@pytest.mark.django_db
def test_a_throttled_post_reserves_no_double_click_window(client, source, three_per_minute):

    ip = {"REMOTE_ADDR": "198.51.100.7"}
    for i in range(3):
        post_json(client, valid(source, phone=f"+7912000003{i}"), **ip)
    assert post_json(client, valid(source, message="Throttled"), **ip).status_code == 429
    fingerprint = admission.fingerprint_of(source=source, phone="+79123456789", email="", message="Throttled")
    # Nothing holds the window, so the same form from another visitor is stored, not collapsed into a lead
    # that was never created.
    assert claim(f"leads:fp:{fingerprint}", "probe") is None
    marks.release(f"leads:fp:{fingerprint}")
    assert post_json(client, valid(source, message="Throttled"), REMOTE_ADDR="198.51.100.8").status_code == 201
    assert Lead.objects.filter(message="Throttled").count() == 1


@pytest.mark.django_db
def test_with_redis_unreachable_posts_are_stored_and_double_clicks_still_collapse(
        client, source, three_per_minute, monkeypatch):
    monkeypatch.setattr(settings, "REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    answers = [post_json(client, valid(source, message=f"Hello {i}"), REMOTE_ADDR="198.51.100.9") for i in range(4)]
    assert [answer.status_code for answer in answers] == [201] * 4  # the throttle fails open
    again = post_json(client, valid(source, message="Hello 0"), REMOTE_ADDR="198.51.100.9")
    assert again.status_code == 201 and again.json()["id"] == answers[0].json()["id"]  # found in the database
    assert Lead.objects.count() == 4


@pytest.mark.django_db(transaction=True)
def test_the_throttle_counts_concurrent_requests_exactly(source, three_per_minute):
    answers = []
    barrier = threading.Barrier(8)

    def post(i):
        barrier.wait()
        answers.append(post_json(Client(), valid(source, phone=f"+7912000001{i}"), REMOTE_ADDR="198.51.100.4")
                       .status_code)
        connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201, 201, 201, 429, 429, 429, 429, 429]


# ---------------------------------------------------------------------------- races


@pytest.mark.django_db(transaction=True)
def test_simultaneous_double_clicks_store_one_lead(source):
    answers = []
    barrier = threading.Barrier(8)

    def post():
        barrier.wait()
        answers.append(post_json(Client(), valid(source, message="Same")).json())
        connection.close()

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Lead.objects.count() == 1
    assert {answer["id"] for answer in answers} == {str(Lead.objects.get().id)}


@pytest.mark.django_db(transaction=True)
def test_simultaneous_posts_with_one_idempotency_key_store_one_lead(source):
    answers = []
    barrier = threading.Barrier(8)

    def post(i):
        barrier.wait()
        # Different bodies: only the key ties them together, and it ties them to the first one stored.
        response = post_json(Client(), valid(source, message=f"try {i}"), HTTP_IDEMPOTENCY_KEY="same")
        answers.append((response.status_code, response.json()))
        connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Lead.objects.count() == 1
    lead = Lead.objects.get()
    # The first stored answers 201; every other body reused its key and is refused, naming the key.
    assert [body for status, body in answers if status == 201] == [{"id": str(lead.id), "status": "pending"}]
    assert sorted(status for status, _ in answers) == [201] + [422] * 7
    assert all("Idempotency-Key" in body["errors"] for status, body in answers if status == 422)


@pytest.mark.django_db(transaction=True)
def test_simultaneous_retries_of_one_keyed_submission_all_get_its_answer(source):
    answers = []
    barrier = threading.Barrier(8)

    def post():
        barrier.wait()
        answers.append(post_json(Client(), valid(source, message="Same"), HTTP_IDEMPOTENCY_KEY="same").json())
        connection.close()

    first = post_json(Client(), valid(source, message="Same"), HTTP_IDEMPOTENCY_KEY="same").json()
    marks.release(f"leads:fp:{Lead.objects.get().fingerprint}")  # past the double-click window: the key decides
    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Lead.objects.count() == 1
    assert answers == [first] * 8


# ---------------------------------------------------------------------------- outbox with the broker down


@pytest.fixture
def broker_down():
    """Point the real Celery app at a closed port, as when Redis is unreachable; restore it afterwards."""
    saved = {key: celery_app.conf[key] for key in ("broker_url", "broker_write_url", "broker_read_url")}

    def switch(url):
        celery_app.conf.broker_url = url
        celery_app.conf.broker_write_url = None
        celery_app.conf.broker_read_url = None
        # Drop the app's cached pools (kombu keeps one per broker URL, so the real one is reused on restore).
        celery_app._pool = None
        celery_app.amqp._producer_pool = None

    switch("redis://127.0.0.1:1/0")
    yield switch
    switch(settings.CELERY_BROKER_URL)
    for key, value in saved.items():
        celery_app.conf[key] = value


@pytest.mark.django_db
def test_with_the_broker_down_the_lead_is_accepted_then_swept_and_pushed_once_it_is_back(
        client, source, broker_down, amocrm_mock, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_json(client, valid(source))
    assert response.status_code == 201 and len(callbacks) == 1
    lead = Lead.objects.get()
    assert lead.status == Lead.Status.PENDING

    broker_down(settings.CELERY_BROKER_URL)
    assert queued_task_names() == []  # the publish really failed
    assert sweep_pending_leads() == 0  # too fresh: its own task may still be on the way
    Lead.objects.filter(pk=lead.pk).update(created_at=timezone.now() - timedelta(seconds=30))
    assert sweep_pending_leads() == 1
    assert queued_task_names() == ["leads.tasks.push_account_leads"]
    assert queued_task_args() == [[source.account_id]]

    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"],
                                               "merged": False}])
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1, "entity_id": 5001}]}})
    push_account_leads(source.account_id)
    lead.refresh_from_db()
    assert (lead.status, lead.amocrm_deal_id, lead.amocrm_contact_id) == (Lead.Status.SENT, 5001, 7001)


@pytest.mark.django_db
def test_the_sweeper_ignores_accounts_that_cannot_be_called(source, account):
    from amocrm.models import Account

    Lead.objects.create(source=source, account=account, phone="+79123456789",
                        created_at=timezone.now() - timedelta(minutes=5))
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    assert sweep_pending_leads() == 0
    Account.objects.filter(pk=account.pk).update(state=Account.State.CONNECTED)
    assert sweep_pending_leads() == 1


# ---------------------------------------------------------------------------- marks


@pytest.mark.parametrize("redis_url", [settings.REDIS_URL, ""], ids=["redis", "embedded-cache"])
def test_marks_count_claim_and_release_the_same_with_or_without_redis(redis_url, monkeypatch):
    monkeypatch.setattr(settings, "REDIS_URL", redis_url)
    assert [marks.count("t:count", seconds=5) for _ in range(3)] == [1, 2, 3]
    if redis_url:  # every counter dies with its window
        assert 0 < redis.Redis.from_url(redis_url).ttl(marks.full_key("t:count")) <= 5
    assert claim("t:claim", "first") is None
    assert claim("t:claim", "second") == "first"
    marks.release("t:claim", "second")  # not the holder: nothing happens
    assert claim("t:claim", "third") == "first"
    marks.release("t:claim", "first")
    assert claim("t:claim", "third") is None
    assert marks.add("t:mark", seconds=5) is True and marks.add("t:mark", seconds=5) is False
    marks.release("t:mark")
    assert marks.add("t:mark", seconds=5) is True


@pytest.mark.parametrize("redis_url", [settings.REDIS_URL, ""], ids=["redis", "embedded-cache"])
def test_admit_counts_always_claims_within_the_limit_and_marks_or_tallies(redis_url, monkeypatch):
    monkeypatch.setattr(settings, "REDIS_URL", redis_url)
    limit, mark = admission.Limit(key="t:limit", limit=3, seconds=5), push_mark.Mark("t:mark", "t:tally", seconds=5)

    def admit(claim_key, value):
        return admission.admit(limit=limit, claim=admission.Claim(claim_key, value, 5), mark=mark)

    assert admit("t:a", "first") == admission.Admission(within_limit=True, holder=None, marked=True)
    # Somebody else's claim: nothing marked or tallied.
    assert admit("t:a", "second") == admission.Admission(within_limit=True, holder="first", marked=False)
    assert admit("t:b", "third") == admission.Admission(within_limit=True, holder=None, marked=False)  # tallied
    assert admit("t:c", "fourth") == admission.Admission(within_limit=False, holder=None, marked=False)
    assert claim("t:c", "fifth") is None  # the refused call claimed nothing
    assert marks.count("t:limit", seconds=5) == 5
    assert push_mark.take_mark(mark) == 1 and push_mark.take_mark(mark) == 0
    assert marks.add("t:mark", seconds=5) is True  # taken means gone
    # Without a limit or a mark, only the claim.
    only_claim = admission.admit(limit=None, claim=admission.Claim("t:d", "x", 5), mark=None)
    assert only_claim == admission.Admission(True, None, False)
    if redis_url:
        assert 0 < redis.Redis.from_url(redis_url).ttl(marks.full_key("t:limit")) <= 5


def test_marks_survive_a_redis_that_forgot_its_scripts_and_a_dropped_connection():
    server = redis.Redis.from_url(settings.REDIS_URL)
    assert marks.count("t:survive", seconds=5) == 1
    server.script_flush()
    assert marks.count("t:survive", seconds=5) == 2  # loaded again under the same name
    server.client_kill_filter(_id=marks.command(marks.connection(), "CLIENT", "ID"))  # as a restart would
    with pytest.raises(redis.ConnectionError):
        marks.count("t:survive", seconds=5)
    assert marks.count("t:survive", seconds=5) == 3  # reconnected; the failed call changed nothing


def test_each_thread_has_its_own_redis_connection():
    def connection_of_a_new_thread():
        held = []
        thread = threading.Thread(target=lambda: held.append(marks.connection()))
        thread.start()
        thread.join()
        return held[0]

    assert marks.connection() is marks.connection()
    assert connection_of_a_new_thread() is not marks.connection()
