"""Pushing when things go wrong: lost answers adopted not duplicated, 429, blocks, re-authorization, rejections."""

import itertools
import json
import threading
import time
from datetime import timedelta

import psycopg
import pytest
import requests
from celery.exceptions import Retry
from django.db import connection
from django.utils import timezone

from amocrm.models import Account
from amocrm.ratelimit import backend
from config.locks import lock_key
from config.retry import backoff_seconds
from leads import payloads
from leads.intake import admission
from leads.models import ContactMatch, Lead, LeadSource
from leads.push import engine, schedule
from leads.push import mark as push_mark
from leads.tasks import push_account_leads
from tests.leads.conftest import (
    API,
    TOKEN_URL,
    body_of,
    calls_to,
    contacts_answer,
    make_lead,
    queued_task_args,
    queued_task_names,
)

pytestmark = pytest.mark.django_db


class FakeAmo:
    """Just enough of amoCRM behind `responses` to see duplicates: leads/complex stores what it creates, and
    the deal list answers from the store. `fail_after_commit` answers the next N complex calls with a failure
    *after* creating the deals, like a 502 from a proxy or a connection cut once amoCRM has committed."""

    def __init__(self, rsps):
        self.deals: dict[int, dict] = {}
        self.contacts: dict[int, dict] = {}
        self.ids = itertools.count(5001)
        self.fail_after_commit: list = []
        self.fail_before_commit: list = []
        rsps.add_callback("POST", f"{API}/leads/complex", callback=self._complex)
        rsps.add_callback("GET", f"{API}/leads", callback=self._list)
        rsps.add_callback("GET", f"{API}/contacts", callback=lambda request: (204, {}, b""))
        rsps.add_callback("POST", f"{API}/leads/notes",
                          callback=lambda request: (200, {}, json.dumps({"_embedded": {"notes": []}})))

    def _complex(self, request):
        if self.fail_before_commit:
            failure = self.fail_before_commit.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure, {}, b"<html>Bad Gateway</html>"
        answer = self.create(json.loads(request.body))
        if self.fail_after_commit:
            failure = self.fail_after_commit.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure, {}, b"<html>Bad Gateway</html>"
        return 200, {}, json.dumps(answer)

    def create(self, items: list[dict]) -> list[dict]:
        answer = []
        for item in items:
            embedded_contact = item["_embedded"]["contacts"][0]
            contact_id = embedded_contact.get("id") or next(self.ids) + 100000
            self.contacts.setdefault(contact_id, embedded_contact)
            deal_id = next(self.ids)
            self.deals[deal_id] = {"id": deal_id, "name": item["name"], "updated_at": int(time.time()),
                                   "_embedded": {"tags": item["_embedded"]["tags"],
                                                 "contacts": [{"id": contact_id, "is_main": True}]}}
            answer.append({"id": deal_id, "contact_id": contact_id, "request_id": [item["request_id"]],
                           "merged": False})
        return answer

    def _list(self, request):
        since = int(request.params["filter[updated_at][from]"])
        deals = [deal for deal in self.deals.values() if deal["updated_at"] >= since]
        if not deals:
            return 204, {}, b""
        return 200, {}, json.dumps({"_embedded": {"leads": deals}})


@pytest.fixture
def fake(amocrm_mock):
    return FakeAmo(amocrm_mock)


def make_due(*leads):
    Lead.objects.filter(pk__in=[lead.pk for lead in leads]).update(next_attempt_at=timezone.now())


# ---------------------------------------------------------------------------- ambiguous failures


@pytest.mark.parametrize("failure", [
    502,
    requests.ConnectionError("Connection reset by peer"),
    requests.ReadTimeout("read timed out"),
], ids=["502-after-commit", "reset-after-commit", "timeout-after-commit"])
def test_a_write_whose_answer_was_lost_is_adopted_not_created_twice(source, account, fake, amocrm_mock, failure):
    leads = [make_lead(source, phone=f"+7916000000{index}", message=f"m{index}") for index in range(3)]
    fake.fail_after_commit = [failure]

    first = engine.leads_push(account_id=account.pk)

    assert first.sent == 0 and first.retry_in is not None
    for lead in leads:
        lead.refresh_from_db()
        assert lead.status == Lead.Status.PENDING and lead.write_attempted_at is not None
        assert lead.next_attempt_at > timezone.now() and lead.attempts == 1
    assert len(fake.deals) == 3  # amoCRM did create them

    make_due(*leads)
    second = engine.leads_push(account_id=account.pk)

    assert second.adopted == 3 and second.sent == 0
    assert len(fake.deals) == 3 and len(fake.contacts) == 3  # exactly one deal and one contact per lead
    assert len(calls_to(amocrm_mock, "/leads/complex")) == 1
    by_marker = {deal["_embedded"]["tags"][-1]["name"]: deal for deal in fake.deals.values()}
    for lead in leads:
        lead.refresh_from_db()
        deal = by_marker[payloads.marker_of(lead)]
        assert (lead.status, lead.amocrm_deal_id) == (Lead.Status.SENT, deal["id"])
        assert lead.amocrm_contact_id == deal["_embedded"]["contacts"][0]["id"]
        assert lead.write_attempted_at is None and not lead.note_pending  # the note went out after adopting
    # The adopted contacts are known for the people's next leads.
    assert ContactMatch.objects.count() == 3


def test_a_5xx_before_commit_is_created_on_the_retry_exactly_once(source, account, fake, amocrm_mock):
    lead = make_lead(source)
    fake.fail_before_commit = [503]
    engine.leads_push(account_id=account.pk)
    assert fake.deals == {}
    make_due(lead)
    engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SENT and len(fake.deals) == 1
    assert len(calls_to(amocrm_mock, "/leads/complex")) == 2
    # The retry looked for the first attempt's deal before creating it again.
    assert len(calls_to(amocrm_mock, "/leads", "GET")) == 1


def test_a_push_that_died_mid_request_is_recovered_by_the_next_one_without_a_duplicate(source, account, fake):
    lead = make_lead(source)
    # What a killed worker leaves behind: the lead claimed, the write sent, the deal created, no answer read.
    fake.create([payloads.complex_deal(lead, source, account, request_id="0", contact=payloads.new_contact(lead),
                                       fields_by_id={}, tracking={})])
    Lead.objects.filter(pk=lead.pk).update(status=Lead.Status.SENDING, claimed_at=timezone.now(),
                                           write_attempted_at=timezone.now(), attempts=1)
    outcome = engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert outcome.adopted == 1 and lead.status == Lead.Status.SENT
    assert len(fake.deals) == 1 and lead.amocrm_deal_id == next(iter(fake.deals))


def test_the_sweeper_requeues_an_account_whose_push_died(source, account):
    make_lead(source, status=Lead.Status.SENDING, claimed_at=timezone.now() - timedelta(hours=1),
              created_at=timezone.now())
    assert schedule.leads_sweep() == 1
    assert queued_task_args() == [[account.pk]]


def test_a_lead_whose_earlier_write_is_not_found_waits_when_the_search_fails(source, account, amocrm_mock):
    lead = make_lead(source, write_attempted_at=timezone.now() - timedelta(minutes=1))
    fresh = make_lead(source, phone="+79035550000")
    amocrm_mock.get(f"{API}/leads", status=500)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    fresh.refresh_from_db()
    # Creating without knowing could duplicate: the uncertain lead waits; the other one goes.
    assert lead.status == Lead.Status.PENDING and lead.next_attempt_at > timezone.now()
    assert fresh.status == Lead.Status.SENT
    assert [deal["_embedded"]["tags"][-1]["name"] for deal in body_of(calls_to(amocrm_mock, "/leads/complex")[0])] == [
        payloads.marker_of(fresh)]


# ---------------------------------------------------------------------------- transient errors and backoff


def test_a_transient_error_backs_the_batch_off_and_the_task_retries(source, account, amocrm_mock):
    lead = make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", status=500, json={"title": "Internal"})
    with pytest.raises(Retry):
        push_account_leads(account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.PENDING and lead.attempts == 1 and "500" in lead.last_error
    # First backoff: 5 s with jitter (2.5–5 s).
    assert timedelta(seconds=2) < lead.next_attempt_at - timezone.now() <= timedelta(seconds=5)
    # Not due yet: a push now makes no call.
    calls = len(amocrm_mock.calls)
    assert engine.leads_push(account_id=account.pk).sent == 0 and len(amocrm_mock.calls) == calls


def test_backoff_grows_exponentially_with_jitter_and_is_capped():
    for attempt, base in ((1, 5), (2, 10), (3, 20), (6, 160), (20, 1800)):
        delays = [backoff_seconds(attempt, base=engine.BACKOFF_BASE_SECONDS, cap=engine.BACKOFF_CAP_SECONDS)
                  for _ in range(50)]
        assert all(base / 2 <= delay <= base for delay in delays)
        assert len(set(delays)) > 1


def test_a_lead_out_of_attempts_becomes_failed_with_the_error(source, account, amocrm_mock):
    lead = make_lead(source, attempts=engine.MAX_ATTEMPTS - 1)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", status=502, body=b"<html>bad gateway</html>")
    engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.FAILED
    assert lead.last_error.startswith(f"Gave up after {engine.MAX_ATTEMPTS} attempts") and "502" in lead.last_error
    # The write may have reached amoCRM: a retry from the admin will look before creating.
    assert lead.write_attempted_at is not None


def test_a_failed_contact_search_delays_only_that_lead(source, account, amocrm_mock):
    unlucky = make_lead(source, phone="+79160000001")
    lucky = make_lead(source, phone="+79160000002")
    amocrm_mock.get(f"{API}/contacts", status=503)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    engine.leads_push(account_id=account.pk)
    unlucky.refresh_from_db()
    lucky.refresh_from_db()
    assert unlucky.status == Lead.Status.PENDING and unlucky.next_attempt_at > timezone.now()
    assert unlucky.write_attempted_at is None  # nothing was written for it
    assert lucky.status == Lead.Status.SENT


def test_a_failed_note_is_retried_later_without_touching_the_deal(source, account, amocrm_mock):
    lead = make_lead(source, message="hello")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    amocrm_mock.post(f"{API}/leads/notes", status=504)
    outcome = engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SENT and lead.note_pending and outcome.retry_in is not None
    amocrm_mock.replace("POST", f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})
    make_due(lead)
    engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert not lead.note_pending
    assert len(calls_to(amocrm_mock, "/leads/complex")) == 1 and len(calls_to(amocrm_mock, "/leads/notes")) == 2


# ---------------------------------------------------------------------------- 429, blocks, re-authorization


def test_a_429_pauses_the_account_leaves_leads_pending_and_nothing_bursts(source, account, amocrm_mock):
    leads = [make_lead(source, phone=f"+7916000000{index}") for index in range(2)]
    ContactMatch.objects.bulk_create([ContactMatch(account=account, kind="phone", value=lead.phone, contact_id=7000)
                                      for lead in leads])
    stamps = []

    def complex_answer(request):
        stamps.append(time.monotonic())
        if len(stamps) == 1:
            return 429, {"Content-Type": "text/html"}, b"<html>Too Many Requests</html>"
        return 200, {}, json.dumps([{"id": 5001 + i, "contact_id": 7000, "request_id": [str(i)]} for i in range(2)])

    amocrm_mock.add_callback("POST", f"{API}/leads/complex", callback=complex_answer)
    outcome = engine.leads_push(account_id=account.pk)

    assert outcome.stopped == "rate limited" and outcome.retry_in >= 1.5
    assert len(stamps) == 1  # no retry inside the task
    for lead in leads:
        lead.refresh_from_db()
        assert (lead.status, lead.attempts, lead.write_attempted_at) == (Lead.Status.PENDING, 0, None)
    # The limiter paused the account for every process.
    assert backend().try_take(f"account-{account.pk}", 7, 1.05) > 1.0
    # A push that starts right away waits for the pause instead of hammering amoCRM.
    engine.leads_push(account_id=account.pk)
    assert len(stamps) == 2 and stamps[1] - stamps[0] >= 1.4
    assert {lead.status for lead in Lead.objects.all()} == {Lead.Status.SENT}


def test_the_task_retries_after_the_pause_when_rate_limited(source, account, amocrm_mock):
    make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=429, body=b"<html>429</html>")
    with pytest.raises(Retry):
        push_account_leads(account.pk)
    assert Lead.objects.get().status == Lead.Status.PENDING
    assert len(amocrm_mock.calls) == 1


def test_a_block_page_stops_the_push_and_keeps_leads_pending(source, account, amocrm_mock):
    lead = make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=403, body=b"<html>Blocked</html>", content_type="text/html")
    outcome = engine.leads_push(account_id=account.pk)
    account.refresh_from_db()
    lead.refresh_from_db()
    assert account.state == Account.State.BLOCKED and outcome.stopped == "blocked" and outcome.retry_in is None
    assert lead.status == Lead.Status.PENDING and lead.attempts == 0
    assert engine.leads_push(account_id=account.pk).stopped == "not connected"
    assert len(amocrm_mock.calls) == 1


def test_leads_wait_while_the_account_needs_reauthorization_and_go_after_reconnecting(
        source, account, amocrm_mock, django_capture_on_commit_callbacks):
    from amocrm.services import account_connect
    from tests.amocrm.test_oauth import mock_metadata

    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    lead = make_lead(source)
    outcome = engine.leads_push(account_id=account.pk)
    assert outcome.stopped == "not connected" and len(amocrm_mock.calls) == 0
    lead.refresh_from_db()
    assert lead.status == Lead.Status.PENDING

    account.refresh_from_db()
    amocrm_mock.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 86400, "access_token": "access-2",
                                 "refresh_token": "refresh-2"})
    mock_metadata(amocrm_mock)
    with django_capture_on_commit_callbacks(execute=True):
        account_connect(account=account, host=account.host, code="new-code")
    # Reconnecting queued the account's push at once (and made sure the default source exists).
    assert queued_task_names() == ["leads.tasks.push_account_leads"] and queued_task_args() == [[account.pk]]
    assert LeadSource.objects.filter(account=account, is_default=True).count() == 1

    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    push_account_leads(account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SENT


def test_a_revoked_token_mid_push_leaves_leads_pending_for_the_reconnect(source, account, amocrm_mock):
    lead = make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=401, json={"title": "Unauthorized", "status": 401})
    amocrm_mock.post(TOKEN_URL, status=401, json={"hint": "Token has been revoked", "title": "Unauthorized",
                                             "status": 401})
    outcome = engine.leads_push(account_id=account.pk)
    account.refresh_from_db()
    lead.refresh_from_db()
    assert account.state == Account.State.NEEDS_REAUTH and outcome.stopped == "needs the operator"
    assert lead.status == Lead.Status.PENDING and lead.attempts == 0 and outcome.retry_in is None
    assert calls_to(amocrm_mock, "/leads/complex") == []


# ---------------------------------------------------------------------------- rejections


def test_a_validation_error_fails_only_the_named_lead_and_the_rest_go_again(source, account, amocrm_mock):
    good1 = make_lead(source, phone="+79160000001")
    bad = make_lead(source, phone="+79160000002")
    good2 = make_lead(source, phone="+79160000003")
    ContactMatch.objects.create(account=account, kind="phone", value=bad.phone, contact_id=666)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", status=400, json={
        "title": "Bad Request", "status": 400, "detail": "Request validation failed",
        "validation-errors": [{"request_id": "1", "errors": [
            {"code": "NotFound", "path": "_embedded.contacts.0.id", "detail": "Contact 666 not found"}]}]})
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]},
                                              {"id": 5003, "contact_id": 7003, "request_id": ["1"]}])
    outcome = engine.leads_push(account_id=account.pk)
    first, second = calls_to(amocrm_mock, "/leads/complex")
    assert [deal["_embedded"]["tags"][-1]["name"] for deal in body_of(second)] == [
        payloads.marker_of(good1), payloads.marker_of(good2)]
    bad.refresh_from_db()
    assert bad.status == Lead.Status.FAILED and outcome.failed == 1
    assert bad.last_error == "amoCRM rejected this lead: _embedded.contacts.0.id: NotFound Contact 666 not found"
    assert bad.write_attempted_at is None
    # The stale contact id is forgotten, so a retry searches afresh.
    assert not ContactMatch.objects.filter(value=bad.phone).exists()
    for lead in (good1, good2):
        lead.refresh_from_db()
        assert lead.status == Lead.Status.SENT and lead.attempts == 1


def test_a_refusal_without_validation_details_fails_the_batch_visibly(source, account, amocrm_mock):
    lead = make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", status=402, json={"title": "Payment Required", "status": 402})
    engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.FAILED and "402" in lead.last_error and "Payment Required" in lead.last_error


# ---------------------------------------------------------------------------- one push per account


def test_a_second_push_for_the_same_account_steps_aside(source, account, amocrm_mock):
    make_lead(source)
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                         password=db["PASSWORD"] or None, dbname=db["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [lock_key(engine.PUSH_LOCK, account.pk)])
        outcome = engine.leads_push(account_id=account.pk)
    assert outcome.stopped == "busy" and len(amocrm_mock.calls) == 0
    assert Lead.objects.get().status == Lead.Status.PENDING


def test_a_push_that_leads_were_on_their_way_to_comes_back_after_the_grace_when_another_holds_the_account(
        source, account, amocrm_mock):
    # The mark as the intake leaves it: set by one lead, found set by another.
    mark = push_mark.of(account.pk)
    admission.admit(limit=None, claim=admission.Claim("t:x", "1", 5), mark=mark)
    admission.admit(limit=None, claim=admission.Claim("t:y", "1", 5), mark=mark)
    db = connection.settings_dict
    with psycopg.connect(host=db["HOST"] or "127.0.0.1", port=db["PORT"] or 5432, user=db["USER"],
                         password=db["PASSWORD"] or None, dbname=db["NAME"], autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [lock_key(engine.PUSH_LOCK, account.pk)])
        outcome = engine.leads_push(account_id=account.pk)
    assert outcome.stopped == "busy" and outcome.retry_in == push_mark.PUSH_TAKE_GRACE


def test_the_task_queues_itself_again_when_its_time_budget_is_spent(source, account, amocrm_mock, monkeypatch):
    make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "request_id": ["0"]}])
    monkeypatch.setattr(engine, "PUSH_TIME_BUDGET", -1)
    result = push_account_leads(account.pk)
    assert result["more"] is True and result["sent"] == 1
    assert queued_task_names() == ["leads.tasks.push_account_leads"]


def test_a_new_contact_search_hit_is_learned_even_when_the_write_then_fails(source, account, amocrm_mock):
    lead = make_lead(source)
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer({"id": 7001, "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": lead.phone}]}]}))
    amocrm_mock.post(f"{API}/leads/complex", status=500)
    engine.leads_push(account_id=account.pk)
    assert ContactMatch.objects.get(kind="phone").contact_id == 7001


def test_a_push_comes_back_for_leads_still_backing_off_from_an_earlier_run(source, account, amocrm_mock):
    make_lead(source, next_attempt_at=timezone.now() + timedelta(seconds=20), attempts=2)
    outcome = engine.leads_push(account_id=account.pk)
    assert len(amocrm_mock.calls) == 0 and not outcome.more
    # The retry that was scheduled for that lead may have found another push busy and stepped aside.
    assert 19 <= outcome.retry_in <= 21.5
    with pytest.raises(Retry):
        push_account_leads(account.pk)


def test_a_note_without_a_deal_is_dropped_instead_of_asking_for_pushes_forever(source, account, amocrm_mock):
    lead = make_lead(source, status=Lead.Status.SENT, note_pending=True, amocrm_deal_id=None, message="hi")
    outcome = engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert not lead.note_pending and not outcome.more and outcome.retry_in is None and len(amocrm_mock.calls) == 0


# ---------------------------------------------------------------------------- leads on their way


def _commit_a_lead_in(seconds: float, source) -> threading.Thread:
    def later():
        time.sleep(seconds)
        make_lead(source)
        connection.close()

    thread = threading.Thread(target=later)
    thread.start()
    return thread


@pytest.mark.django_db(transaction=True)
def test_a_push_gives_leads_that_found_it_queued_the_grace_to_commit(source, account, amocrm_mock, monkeypatch):
    """A request that found the push queued checked before its INSERT: the push must look again after it commits."""
    monkeypatch.setattr(push_mark, "PUSH_TAKE_GRACE", 1.2)
    mark = push_mark.of(account.pk)
    admission.admit(limit=None, claim=admission.Claim("t:0", "1", 5), mark=mark)  # sets the mark, queues the push
    admission.admit(limit=None, claim=admission.Claim("t:1", "1", 5), mark=mark)  # finds it set: on its way
    late = _commit_a_lead_in(0.4, source)  # after the push's first claim, within the grace
    outcome = engine.leads_push(account_id=account.pk)
    late.join()
    assert outcome.more is True  # it waited, saw the late lead, and runs again


def test_a_push_nobody_was_on_the_way_to_does_not_wait(source, account, amocrm_mock, monkeypatch):
    slept = []
    monkeypatch.setattr(engine.time, "sleep", slept.append)
    admission.admit(limit=None, claim=admission.Claim("t:0", "1", 5), mark=push_mark.of(account.pk))
    outcome = engine.leads_push(account_id=account.pk)
    assert outcome.more is False and slept == []
