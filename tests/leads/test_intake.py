"""POST /api/leads/: validation, normalization, idempotency, double clicks, honeypot, HTML forms, sizes, media types."""

import json
from urllib.parse import urlencode

import pytest
import redis
from django.db import connection
from django.test.utils import CaptureQueriesContext

from leads import marks, sources
from leads.models import Lead, LeadSource
from leads.push import mark as push_mark
from tests.leads.conftest import queued_task_args, queued_task_names

pytestmark = pytest.mark.django_db
URL = "/api/leads/"


def post_json(client, payload, **headers):
    return client.post(URL, data=json.dumps(payload), content_type="application/json", **headers)


def post_form(client, payload, url=URL, **headers):
    return client.post(url, data=urlencode(payload), content_type="application/x-www-form-urlencoded", **headers)


def valid(source, **extra):
    return {"source": source.public_key, "name": "Иван", "phone": "8 (912) 345-67-89", **extra}


def test_a_valid_json_post_is_stored_pending_and_answered_201_with_its_id(client, source, amocrm_mock):
    response = post_json(client, valid(source, email="Ivan@Example.COM", message="Call me after 6",
                                       utm_source="google", utm_medium="cpc", utm_campaign="spring",
                                       utm_term="sofa", utm_content="ad1", referrer="https://google.com/",
                                       page_url="https://shop.example/sofa", fields={"city": "Москва"}),
                         HTTP_USER_AGENT="Mozilla/5.0 test", REMOTE_ADDR="203.0.113.7")
    assert response.status_code == 201
    body = response.json()
    lead = Lead.objects.get()
    assert body == {"id": str(lead.id), "status": "pending"}
    assert lead.status == Lead.Status.PENDING and lead.source == source and lead.account == source.account
    assert (lead.phone, lead.phone_raw, lead.email) == ("+79123456789", "8 (912) 345-67-89", "ivan@example.com")
    assert (lead.utm_source, lead.utm_medium, lead.utm_campaign, lead.utm_term, lead.utm_content) == (
        "google", "cpc", "spring", "sofa", "ad1")
    assert (lead.referrer, lead.page_url, lead.fields) == ("https://google.com/", "https://shop.example/sofa",
                                                           {"city": "Москва"})
    assert (lead.ip, lead.user_agent) == ("203.0.113.7", "Mozilla/5.0 test")
    assert lead.message == "Call me after 6" and lead.fingerprint
    assert len(amocrm_mock.calls) == 0  # amoCRM is never called inside the request


def test_a_form_encoded_post_is_accepted_with_bracket_fields(client, source):
    response = client.post(URL, data=f"source={source.public_key}&name=Anna&email=anna%40example.com"
                                     "&fields%5Bcity%5D=Kazan&fields.size=XL",
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201
    lead = Lead.objects.get()
    assert lead.email == "anna@example.com" and lead.phone == "" and lead.fields == {"city": "Kazan", "size": "XL"}


def test_a_form_builder_may_name_the_source_in_the_url(client, source):
    response = post_form(client, {"phone": "+7 912 345 67 89"}, url=f"{URL}?source={source.public_key}")
    assert response.status_code == 201
    assert Lead.objects.get().source == source


def test_the_url_without_trailing_slash_works_too(client, source):
    assert post_json(client, valid(source)).status_code == 201
    assert client.post("/api/leads", data=json.dumps(valid(source, phone="+79123450000")),
                       content_type="application/json").status_code == 201


@pytest.mark.parametrize(("raw", "expected"), [
    ("8 (912) 345-67-89", "+79123456789"),
    ("+7 912 345 67 89", "+79123456789"),
    ("9123456789", "+79123456789"),
    ("+44 20 7946 0958", "+442079460958"),
])
def test_phones_are_stored_in_e164(client, source, raw, expected):
    assert post_json(client, valid(source, phone=raw)).status_code == 201
    assert Lead.objects.get().phone == expected


def _long(n):
    return "x" * n


@pytest.mark.parametrize(("change", "field"), [
    ({"source": None}, "source"),
    ({"source": "no-such-key"}, "source"),
    ({"phone": "12"}, "phone"),
    ({"phone": "8 (000) 000-00-00"}, "phone"),
    ({"phone": "call me"}, "phone"),
    ({"phone": "", "email": "not-an-email"}, "email"),
    ({"email": "a@b"}, "email"),
    ({"phone": "", "email": ""}, "phone"),
    ({"phone": None, "email": None}, "email"),
    ({"name": _long(256)}, "name"),
    ({"message": _long(5001)}, "message"),
    ({"utm_source": _long(256)}, "utm_source"),
    ({"utm_medium": _long(256)}, "utm_medium"),
    ({"utm_campaign": _long(256)}, "utm_campaign"),
    ({"utm_term": _long(256)}, "utm_term"),
    ({"utm_content": _long(256)}, "utm_content"),
    ({"referrer": _long(2001)}, "referrer"),
    ({"page_url": _long(2001)}, "page_url"),
    ({"fields": {f"k{i}": "v" for i in range(51)}}, "fields"),
    ({"fields": {"city": _long(1001)}}, "fields.city"),
    ({"fields": {_long(101): "v"}}, "fields"),
    ({"fields": ["not", "an", "object"]}, "fields"),
    ({"fields": {"nested": {"a": 1}}}, "fields.nested"),
    ({"name": ["a", "list"]}, "name"),
])
def test_every_bad_input_is_answered_400_naming_the_field(client, source, change, field):
    payload = {key: value for key, value in {**valid(source), **change}.items() if value is not None or key != "source"}
    response = post_json(client, payload)
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors and all(isinstance(message, str) for message in errors[field])
    assert Lead.objects.count() == 0


def test_the_longest_allowed_values_are_accepted(client, source):
    payload = valid(source, name=_long(255), message=_long(5000), utm_source=_long(255), referrer=_long(2000),
                    page_url=_long(2000), fields={f"k{i}": _long(1000) for i in range(50)})
    payload["fields"] = {f"k{i}": "v" * 1000 for i in range(50)}
    response = post_json(client, payload)
    assert response.status_code == 201, response.content
    assert len(Lead.objects.get().fields) == 50


def test_an_inactive_source_is_refused_like_an_unknown_one(client, source):
    source.is_active = False
    source.save()
    response = post_json(client, valid(source))
    assert response.status_code == 400
    assert response.json() == {"errors": {"source": ["Unknown or inactive lead source."]}}


def test_a_json_body_that_is_not_an_object_is_400(client, source):
    assert post_json(client, [valid(source)]).status_code == 400
    response = client.post(URL, data="{not json", content_type="application/json")
    assert response.status_code == 400 and "errors" in response.json()


def test_a_body_over_64_kib_is_413_and_stores_nothing(client, source):
    payload = valid(source, message="x" * (65 * 1024))
    response = post_json(client, payload)
    assert response.status_code == 413
    assert "errors" in response.json()
    assert Lead.objects.count() == 0


def test_a_declared_content_length_over_64_kib_is_413_before_reading(client, source):
    response = client.post(URL, data=b"{}", content_type="application/json", CONTENT_LENGTH=str(64 * 1024 + 1))
    assert response.status_code == 413


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "multipart/form-data; boundary=xx"])
def test_other_media_types_are_415(client, source, content_type):
    response = client.post(URL, data=b"source=x", content_type=content_type)
    assert response.status_code == 415
    assert "errors" in response.json()
    assert Lead.objects.count() == 0


def _close_double_click_window():
    """As if the 10-second window had passed: only the Idempotency-Key can then match a repeat."""
    for lead in Lead.objects.all():
        marks.release(f"leads:fp:{lead.fingerprint}")


def test_the_same_idempotency_key_returns_the_first_answer_and_stores_nothing_new(client, source):
    first = post_json(client, valid(source, message="Hello"), HTTP_IDEMPOTENCY_KEY="key-1")
    _close_double_click_window()
    again = post_json(client, valid(source, message="Hello"), HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert Lead.objects.count() == 1 and Lead.objects.get().idempotency_key == "key-1"


def test_the_same_idempotency_key_with_another_body_is_422_and_stores_nothing(client, source):
    first = post_json(client, valid(source, message="Hello"), HTTP_IDEMPOTENCY_KEY="key-1")
    again = post_json(client, valid(source, message="changed"), HTTP_IDEMPOTENCY_KEY="key-1")
    assert first.status_code == 201 and again.status_code == 422
    errors = again.json()["errors"]
    assert list(errors) == ["Idempotency-Key"] and "different" in errors["Idempotency-Key"][0]
    assert Lead.objects.count() == 1 and Lead.objects.get().message == "Hello"


@pytest.mark.parametrize("change", [{"name": "Пётр"}, {"utm_source": "yandex"}, {"fields": {"city": "Kazan"}},
                                    {"email": "ivan@example.com"}, {"website": "http://spam.example"}])
def test_a_reused_key_is_422_even_inside_the_double_click_window(client, source, change):
    """Same phone and message within 10 s is a double click, but the key says which submission it was."""
    post_json(client, valid(source, message="Hello"), HTTP_IDEMPOTENCY_KEY="key-1")
    again = post_json(client, valid(source, message="Hello", **change), HTTP_IDEMPOTENCY_KEY="key-1")
    assert again.status_code == 422 and "Idempotency-Key" in again.json()["errors"]
    assert Lead.objects.count() == 1


def test_a_body_that_normalizes_to_the_same_submission_is_the_same(client, source):
    first = post_json(client, valid(source, email="Ivan@Example.com", name=" Иван "), HTTP_IDEMPOTENCY_KEY="k")
    _close_double_click_window()
    again = post_json(client, valid(source, email="ivan@example.com", name="Иван", utm_term=None),
                      HTTP_IDEMPOTENCY_KEY="k")
    assert again.status_code == 201 and again.json() == first.json()


def test_the_same_idempotency_key_for_another_source_is_another_lead(client, source, account):
    other = LeadSource.objects.create(account=account, name="Other")
    post_json(client, valid(source), HTTP_IDEMPOTENCY_KEY="key-1")
    post_json(client, valid(other, phone="+79120000001"), HTTP_IDEMPOTENCY_KEY="key-1")
    assert Lead.objects.count() == 2


def test_an_overlong_idempotency_key_is_400(client, source):
    response = post_json(client, valid(source), HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert response.status_code == 400 and "Idempotency-Key" in response.json()["errors"]


def test_a_double_click_collapses_into_the_first_lead(client, source):
    first = post_json(client, valid(source, message="Hello"))
    second = post_json(client, valid(source, message="Hello"))
    assert second.status_code == 201 and second.json()["id"] == first.json()["id"]
    assert Lead.objects.count() == 1


def test_a_different_message_or_person_is_a_new_lead(client, source):
    post_json(client, valid(source, message="Hello"))
    post_json(client, valid(source, message="Hello again"))
    post_json(client, valid(source, message="Hello", phone="+79120000002"))
    assert Lead.objects.count() == 3


def test_an_identical_resubmit_after_the_window_is_a_new_lead(client, source):
    post_json(client, valid(source, message="Hello"))
    marks.release(f"leads:fp:{Lead.objects.get().fingerprint}")  # the 10-second window has passed
    post_json(client, valid(source, message="Hello"))
    assert Lead.objects.count() == 2


def test_the_honeypot_answers_201_as_usual_but_keeps_the_lead_as_spam_and_queues_nothing(
        client, source, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_json(client, valid(source, website="http://spam.example"))
    assert response.status_code == 201
    lead = Lead.objects.get()
    assert response.json() == {"id": str(lead.id), "status": "pending"}  # nothing tells the bot
    assert lead.status == Lead.Status.SPAM
    assert callbacks == [] and queued_task_names() == []


def test_an_accepted_lead_queues_one_push_for_its_account_after_commit(client, source,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        post_json(client, valid(source))
        post_json(client, valid(source, phone="+79120000003"))
        post_json(client, valid(source, phone="+79120000004"))
    # The later leads find a push already queued for the account: they queue nothing after commit and
    # are counted in the mark's tally, so the push knows two more leads were on their way.
    assert len(callbacks) == 1
    assert queued_task_names() == ["leads.tasks.push_account_leads"]
    assert queued_task_args() == [[source.account_id]]
    assert push_mark.take(source.account_id) == 2


def test_once_the_push_has_taken_its_mark_the_next_lead_queues_another(client, source,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        post_json(client, valid(source))
        assert push_mark.take(source.account_id) == 0  # what the push does first
        post_json(client, valid(source, phone="+79120000003"))
    assert queued_task_args() == [[source.account_id], [source.account_id]]


def test_a_lead_refused_by_its_insert_gives_back_the_push_mark_it_set(client, source,
                                                                      django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = post_json(client, valid(source, message="A"), HTTP_IDEMPOTENCY_KEY="k1")
        push_mark.take(source.account_id)
        # Same key and body past the double-click window: refused by the unique key.
        _close_double_click_window()
        again = post_json(client, valid(source, message="A"), HTTP_IDEMPOTENCY_KEY="k1")
    assert again.json()["id"] == first.json()["id"] and Lead.objects.count() == 1
    assert queued_task_args() == [[source.account_id]]  # the first lead's push only
    assert marks.add(push_mark.of(source.account_id).key, seconds=5) is True  # given back


def test_an_html_form_post_is_redirected_303_to_the_success_url(client, source):
    response = post_form(client, {"source": source.public_key, "phone": "+79123456789"},
                         HTTP_ACCEPT="text/html,application/xhtml+xml,*/*;q=0.8")
    assert response.status_code == 303
    assert response["Location"] == "https://shop.example/thanks"
    assert Lead.objects.count() == 1


def test_an_html_form_post_without_a_success_url_gets_json(client, source):
    source.success_url = ""
    source.save()
    response = post_form(client, {"source": source.public_key, "phone": "+79123456789"}, HTTP_ACCEPT="text/html")
    assert response.status_code == 201 and response["Content-Type"] == "application/json"


def test_a_honeypot_html_post_is_redirected_like_any_other(client, source):
    response = post_form(client, {"source": source.public_key, "phone": "+79123456789", "website": "x"},
                         HTTP_ACCEPT="text/html")
    assert response.status_code == 303 and Lead.objects.get().status == Lead.Status.SPAM


def test_the_client_ip_comes_from_x_forwarded_for_only_through_trusted_proxies(client, source, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    post_json(client, valid(source), REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.9")
    assert Lead.objects.get().ip == "198.51.100.9"
    settings.TRUSTED_PROXY_COUNT = 0
    post_json(client, valid(source, phone="+79120000004"), REMOTE_ADDR="10.0.0.2",
              HTTP_X_FORWARDED_FOR="198.51.100.9")
    assert Lead.objects.get(phone="+79120000004").ip == "10.0.0.2"


def test_intake_with_a_warm_source_cache_makes_exactly_one_query_the_insert(client, source,
                                                                           django_capture_on_commit_callbacks):
    post_json(client, valid(source, phone="+79120000005"))  # warms the per-process source cache
    with CaptureQueriesContext(connection) as queries:
        assert post_json(client, valid(source)).status_code == 201
    assert [q["sql"].split()[0] for q in queries.captured_queries] == ["INSERT"]


def test_an_accepted_post_makes_exactly_one_redis_round_trip(client, source, monkeypatch, settings):
    """Throttle, double-click window and push mark in one script: one packet to Redis, whoever sends it."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"lead_intake": "30/min"}}
    post_json(client, valid(source, phone="+79120000010"))  # this thread's connection is made (and greeted) once
    push_mark.take(source.account_id)  # as the queued push does: the next post sets the mark again
    sent = []
    real = redis.connection.AbstractConnection.send_packed_command

    def counting(self, command, *args, **kwargs):
        sent.append(command)
        return real(self, command, *args, **kwargs)

    monkeypatch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    assert post_json(client, valid(source), REMOTE_ADDR="198.51.100.30").status_code == 201  # sets the mark
    assert post_json(client, valid(source, phone="+79120000011"), HTTP_IDEMPOTENCY_KEY="k",
                     REMOTE_ADDR="198.51.100.30").status_code == 201  # finds it set: tallied
    assert len(sent) == 2


def test_a_new_idempotency_key_costs_no_extra_query_and_a_repeated_one_a_lookup(client, source):
    post_json(client, valid(source, phone="+79120000006"))
    with CaptureQueriesContext(connection) as queries:
        first = post_json(client, valid(source), HTTP_IDEMPOTENCY_KEY="abc")
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    # (The savepoint exists only because the test runs inside a transaction.)
    assert statements == ["SAVEPOINT", "INSERT", "RELEASE"]
    _close_double_click_window()
    with CaptureQueriesContext(connection) as queries:
        again = post_json(client, valid(source), HTTP_IDEMPOTENCY_KEY="abc")
    statements = [q["sql"].split()[0] for q in queries.captured_queries]
    assert statements == ["SAVEPOINT", "INSERT", "ROLLBACK", "RELEASE", "SELECT"]
    assert again.json() == first.json() and Lead.objects.count() == 2


def test_the_source_cache_forgets_a_deactivated_source(client, source):
    assert sources.lead_source_get_active(public_key=source.public_key) == source
    source.is_active = False
    source.save()
    assert sources.lead_source_get_active(public_key=source.public_key) is None


def test_the_api_docs_describe_the_intake_once(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/leads/" in schema["paths"] and "/api/leads" not in schema["paths"]
    operation = schema["paths"]["/api/leads/"]["post"]
    assert set(operation["responses"]) == {"201", "303", "400", "403", "413", "415", "422", "429"}
    assert [parameter["name"] for parameter in operation["parameters"]] == ["Idempotency-Key"]
    assert set(schema["components"]["schemas"]["LeadAccepted"]["properties"]) == {"id", "status"}


def test_one_posts_values_and_errors_never_reach_the_next(client, source):
    first = post_json(client, valid(source, message="A", fields={"city": "Москва"}))
    bad = post_json(client, {"source": source.public_key, "phone": "12", "fields": {"x": "y"}})
    second = post_json(client, valid(source, message="B"))
    assert (first.status_code, bad.status_code, second.status_code) == (201, 400, 201)
    assert set(bad.json()["errors"]) == {"phone"}
    assert {lead.message: lead.fields for lead in Lead.objects.all()} == {"A": {"city": "Москва"}, "B": {}}


@pytest.mark.django_db(transaction=True)
def test_posts_validated_at_the_same_time_in_many_threads_keep_their_own_values(source):
    import threading

    from django.test import Client

    barrier, answers = threading.Barrier(8), {}

    def post(i):
        barrier.wait()
        answers[i] = post_json(Client(), valid(source, phone=f"+7912000004{i}", message=f"m{i}",
                                               fields={"n": str(i)})).status_code
        connection.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {i: 201 for i in range(8)}
    stored = {(lead.phone, lead.message, lead.fields["n"]) for lead in Lead.objects.all()}
    assert stored == {(f"+7912000004{i}", f"m{i}", str(i)) for i in range(8)}
