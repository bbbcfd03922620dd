"""The push survives what it did not expect: a poison lead fails alone, a surprise fails no lead silently,
and a push that died gives its leads back within about a minute while a live one keeps them."""

import json
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from amocrm.models import CustomField
from leads import actions
from leads.models import Lead, LeadSource
from leads.push import engine, schedule
from tests.leads.conftest import API, body_of, calls_to, make_lead, queued_task_args

pytestmark = pytest.mark.django_db
DATE_FIELD = 954


def answer_every_deal(amocrm_mock, first_deal: int = 5001, *, searches: bool = True):
    """leads/complex answers a deal for each element it was sent, echoing request_id; no contact is ever found."""

    def complex_created(request):
        items = json.loads(request.body)
        return 200, {}, json.dumps([{"id": first_deal + index, "contact_id": 7001 + index,
                                     "request_id": [item["request_id"]], "merged": False}
                                    for index, item in enumerate(items)])

    amocrm_mock.add_callback("POST", f"{API}/leads/complex", callback=complex_created)
    if searches:
        amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})


def assert_plain_words(text: str):
    """What an operator reads: no exception class, no traceback."""
    assert text and "Error" not in text and "Traceback" not in text and "object has no attribute" not in text
    assert "retry" in text.lower()


# ---------------------------------------------------------------------------- poison leads


def test_a_deal_name_template_that_indexes_into_text_falls_back_to_the_default_name(source, account, amocrm_mock):
    source.deal_name_template = "{fields[product]}"  # the form's `fields` are no placeholder: a TypeError in format
    source.save()
    poison = make_lead(source, name="Ivan")
    other = make_lead(source, name="Anna", phone="+79035550000")
    answer_every_deal(amocrm_mock)
    outcome = engine.leads_push(account_id=account.pk)
    assert outcome.sent == 2
    [call] = calls_to(amocrm_mock, "/leads/complex")
    assert [deal["name"] for deal in body_of(call)] == ["Заявка с сайта: Ivan", "Заявка с сайта: Anna"]
    assert set(Lead.objects.values_list("status", flat=True)) == {Lead.Status.SENT}
    assert {poison.pk, other.pk} == set(Lead.objects.values_list("pk", flat=True))


def test_a_date_no_calendar_holds_goes_to_the_note_instead_of_stopping_the_queue(source, account, amocrm_mock):
    CustomField.objects.create(account=account, amocrm_id=DATE_FIELD, name="Дата", type="date")
    source.field_mapping = {**source.field_mapping, "when": DATE_FIELD}
    source.save()
    # A visitor's value: a valid ISO date whose UTC time is past the year 9999 (OverflowError in astimezone).
    poison = make_lead(source, fields={"when": "9999-12-31T23:59:59-12:00", "city": "Kazan"})
    answer_every_deal(amocrm_mock)
    assert engine.leads_push(account_id=account.pk).sent == 1
    [deal] = body_of(calls_to(amocrm_mock, "/leads/complex")[0])
    assert {field["field_id"] for field in deal["custom_fields_values"]} == {950}  # the city only
    assert "when: 9999-12-31T23:59:59-12:00" in body_of(calls_to(amocrm_mock, "/leads/notes")[0])[0]["params"]["text"]
    poison.refresh_from_db()
    assert poison.status == Lead.Status.SENT


@pytest.mark.parametrize("mode", [LeadSource.Mode.DEAL, LeadSource.Mode.UNSORTED])
def test_a_lead_that_cannot_be_built_fails_alone_and_visibly_while_its_batch_goes_on(
        source, account, amocrm_mock, mode):
    broken = LeadSource.objects.create(account=account, name="Broken", mode=mode)
    # Stored by hand or by an old version: a mapping that is a list, not an object.
    LeadSource.objects.filter(pk=broken.pk).update(field_mapping=["city"])
    before = make_lead(source, name="Before", phone="+79035550001")
    poison = make_lead(broken, name="Poison", phone="+79035550002")
    after = make_lead(source, name="After", phone="+79035550003")
    answer_every_deal(amocrm_mock)
    amocrm_mock.post(f"{API}/leads/unsorted/forms", json={"_embedded": {"unsorted": []}})

    outcome = engine.leads_push(account_id=account.pk)

    assert outcome.sent == 2 and outcome.failed == 1
    assert [deal["name"] for deal in body_of(calls_to(amocrm_mock, "/leads/complex")[0])] == [
        "Заявка с сайта: Before", "Заявка с сайта: After"]
    assert calls_to(amocrm_mock, "/leads/unsorted/forms") == []  # the only unsorted lead was the poison
    for lead in (before, after):
        lead.refresh_from_db()
        assert lead.status == Lead.Status.SENT
    poison.refresh_from_db()
    assert poison.status == Lead.Status.FAILED and poison.attempts == 1
    assert_plain_words(poison.last_error)
    assert "field mapping" in poison.last_error
    # Retrying it once the source is fixed sends it.
    LeadSource.objects.filter(pk=broken.pk).update(field_mapping={}, mode=LeadSource.Mode.DEAL)
    assert actions.lead_retry(lead_ids=[poison.pk]) == 1
    assert engine.leads_push(account_id=account.pk).sent == 1


def test_a_lead_whose_note_cannot_be_built_is_sent_and_says_so(source, account, amocrm_mock):
    # `fields` is always an object from the intake; a list here stands for any value the note chokes on.
    odd = make_lead(source, message="Hi", fields=["not", "an", "object"])
    fine = make_lead(source, message="Hello", phone="+79035550004")
    answer_every_deal(amocrm_mock)
    outcome = engine.leads_push(account_id=account.pk)
    assert outcome.sent == 2 and outcome.notes == 1
    odd.refresh_from_db()
    fine.refresh_from_db()
    assert (odd.status, odd.note_pending, odd.amocrm_deal_id) == (Lead.Status.SENT, False, 5001)
    assert "note" in odd.last_error and "Error" not in odd.last_error
    assert [note["entity_id"] for note in body_of(calls_to(amocrm_mock, "/leads/notes")[0])] == [fine.amocrm_deal_id]


def test_a_surprise_outside_one_lead_backs_the_batch_off_and_never_leaves_it_sending(source, account, amocrm_mock):
    lead = make_lead(source)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=["not an object"])  # amoCRM answering something we never saw
    outcome = engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.PENDING and lead.next_attempt_at > timezone.now()
    assert lead.attempts == 1 and lead.write_attempted_at is not None  # the next push looks for its deal first
    assert_plain_words(lead.last_error)
    assert outcome.retry_in is not None


def test_a_lasting_surprise_ends_in_failed_not_in_an_endless_loop(source, account, amocrm_mock):
    lead = make_lead(source, attempts=engine.MAX_ATTEMPTS - 1)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=["not an object"])
    engine.leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.FAILED
    assert_plain_words(lead.last_error)


# ---------------------------------------------------------------------------- leases


def _later(monkeypatch, seconds: float):
    """The sweeper's clock, `seconds` from now."""
    moment = timezone.now() + timedelta(seconds=seconds)
    monkeypatch.setattr(engine.timezone, "now", lambda: moment)


class WorkerKilled(BaseException):
    """Stands for SIGKILL: no `except Exception` of the push sees it."""


def _die_in_the_write(amocrm_mock):
    def killed(request):
        raise WorkerKilled()

    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.add_callback("POST", f"{API}/leads/complex", callback=killed)


def test_a_dead_pushs_leads_are_queued_and_pushed_again_within_about_a_minute(
        source, account, amocrm_mock, monkeypatch):
    leads = [make_lead(source), make_lead(source, phone="+79035550005")]
    _die_in_the_write(amocrm_mock)
    with pytest.raises(WorkerKilled):
        engine.leads_push(account_id=account.pk)
    assert set(Lead.objects.values_list("status", flat=True)) == {Lead.Status.SENDING}

    with monkeypatch.context() as m:
        _later(m, 5)
        assert schedule.leads_sweep() == 0  # its lease still runs: it might be alive
    with monkeypatch.context() as m:
        _later(m, 35)  # lease over; with the sweeper every 30 s, queued within about a minute of the death
        assert schedule.leads_sweep() == 1
    assert queued_task_args() == [[account.pk]]

    amocrm_mock.reset()
    amocrm_mock.get(f"{API}/leads", status=204, body=b"")  # its write may have reached amoCRM: looked for first
    answer_every_deal(amocrm_mock)
    assert engine.leads_push(account_id=account.pk).sent == 2
    for lead in leads:
        lead.refresh_from_db()
        assert lead.status == Lead.Status.SENT and lead.lease_expires_at is None


def test_a_claim_is_a_lease_the_push_renews_at_each_step(source, account, amocrm_mock, monkeypatch):
    monkeypatch.setattr(engine, "PUSH_LEASE_RENEW_AFTER", 0)  # renew at every checkpoint
    leads = [make_lead(source, phone=f"+7903555001{i}") for i in range(3)]
    seen = []

    def search(request):
        seen.append(Lead.objects.get(pk=leads[0].pk).lease_expires_at)
        return 204, {}, b""

    amocrm_mock.add_callback("GET", f"{API}/contacts", callback=search)
    answer_every_deal(amocrm_mock, searches=False)
    started = timezone.now()
    engine.leads_push(account_id=account.pk)
    assert len(seen) == 3
    assert started + engine.PUSH_LEASE <= seen[0] < seen[1] < seen[2]
    assert engine.PUSH_LEASE <= timedelta(seconds=30)


@pytest.mark.django_db(transaction=True)
def test_a_live_push_keeps_its_leads_while_the_sweeper_and_another_push_come_by(source, account, amocrm_mock,
                                                                               monkeypatch):
    make_lead(source)
    make_lead(source, phone="+79035550006")
    in_write, go_on = threading.Event(), threading.Event()

    def slow_write(request):
        in_write.set()
        assert go_on.wait(30)
        items = json.loads(request.body)
        return 200, {}, json.dumps([{"id": 5001 + i, "contact_id": 7001 + i, "request_id": [item["request_id"]]}
                                    for i, item in enumerate(items)])

    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.add_callback("POST", f"{API}/leads/complex", callback=slow_write)
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": []}})
    outcomes = []

    def live_push():
        outcomes.append(engine.leads_push(account_id=account.pk))
        connection.close()

    thread = threading.Thread(target=live_push)
    thread.start()
    try:
        assert in_write.wait(30)
        assert schedule.leads_sweep() == 0  # a live lease
        with monkeypatch.context() as m:
            _later(m, 120)  # even were its lease to lapse in a long call, the lock says it lives
            assert schedule.leads_sweep() == 1
            assert engine.leads_push(account_id=account.pk).stopped == "busy"
        assert set(Lead.objects.values_list("status", flat=True)) == {Lead.Status.SENDING}
    finally:
        go_on.set()
        thread.join(30)
    assert outcomes[0].sent == 2 and len(calls_to(amocrm_mock, "/leads/complex")) == 1
    assert set(Lead.objects.values_list("status", flat=True)) == {Lead.Status.SENT}
    assert all(lead.lease_expires_at is None for lead in Lead.objects.all())
