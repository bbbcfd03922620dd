"""The push's routing features: deal budget, company, contact fields, open-deal dedup, managers and their tasks."""

import time
import zoneinfo
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from responses import matchers

from amocrm.models import AmoUser, CustomField
from leads import payloads
from leads.models import ContactMatch, Lead, LeadSource
from leads.push.engine import leads_push
from leads.push.routing import round_robin_take
from tests.leads.conftest import API, USER, body_of, calls_to, contact, contacts_answer, make_lead

pytestmark = pytest.mark.django_db

POSITION_FIELD, SEGMENT_FIELD = 960, 961


def complex_answer(*pairs):
    return [{"id": deal_id, "contact_id": contact_id, "request_id": [str(index)]}
            for index, (deal_id, contact_id) in enumerate(pairs)]


def deals_answer(*deals):
    return {"_embedded": {"leads": [
        {"id": deal_id, "status_id": status_id, "pipeline_id": 777, "created_at": created_at}
        for deal_id, status_id, created_at in deals]}}


def with_leads(item: dict, *deal_ids) -> dict:
    return {**item, "_embedded": {"leads": [{"id": deal_id} for deal_id in deal_ids]}}


@pytest.fixture
def contact_fields(account_with_metadata):
    CustomField.objects.create(account=account_with_metadata, entity_type="contacts", amocrm_id=POSITION_FIELD,
                               name="Должность", type="text")
    CustomField.objects.create(account=account_with_metadata, entity_type="contacts", amocrm_id=SEGMENT_FIELD,
                               name="Сегмент", type="select", enums=[{"id": 1, "value": "B2B"}])


def test_price_company_and_contact_fields_reach_the_deal_the_contact_and_the_note(
        source, account, amocrm_mock, contact_fields):
    LeadSource.objects.filter(pk=source.pk).update(
        contact_field_mapping={"position": POSITION_FIELD, "segment": SEGMENT_FIELD, "company": POSITION_FIELD + 99})
    lead = make_lead(source, price=Decimal("45000.50"), company="ООО Ромашка",
                     fields={"position": "Директор", "segment": "B2C"})
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})

    assert leads_push(account_id=account.pk).sent == 1

    [deal] = body_of(calls_to(amocrm_mock, "/leads/complex")[0])
    assert deal["price"] == 45001  # amoCRM's price is an integer: rounded half up
    # The position fits its text field; "B2C" is no option of the select (left out); field 1059 does not exist.
    assert deal["_embedded"]["contacts"][0]["custom_fields_values"][-1] == {
        "field_id": POSITION_FIELD, "values": [{"value": "Директор"}]}
    assert len(deal["_embedded"]["contacts"][0]["custom_fields_values"]) == 2  # PHONE + position
    [note] = body_of(calls_to(amocrm_mock, "/leads/notes")[0])
    assert "Company: ООО Ромашка" in note["params"]["text"] and "Budget: 45000.50" in note["params"]["text"]
    lead.refresh_from_db()
    assert lead.responsible_user_id == USER  # the fixed (account default) manager, visible on the lead


def test_a_lead_without_budget_sends_no_price(source, account, amocrm_mock):
    make_lead(source, message="")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    leads_push(account_id=account.pk)
    assert "price" not in body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]


# ---------------------------------------------------------------------------- open-deal deduplication


def attach_policy(source, days=30):
    LeadSource.objects.filter(pk=source.pk).update(dedup_policy=LeadSource.DedupPolicy.ATTACH, dedup_days=days)


def test_attach_policy_turns_a_repeat_enquiry_into_a_note_on_the_open_deal(source, account, amocrm_mock):
    attach_policy(source)
    lead = make_lead(source, phone="+79161234567", message="Ещё вопрос", utm_source="yandex")
    now = int(time.time())
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(with_leads(contact(7001, phones=["+79161234567"]),
                                                                       4001, 4002, 4003)),
                    match=[matchers.query_param_matcher({"query": "+79161234567", "limit": "50", "with": "leads"})])
    # 4003 is won, 4002 is open and recent, 4001 is open but older than the window.
    amocrm_mock.get(f"{API}/leads", json=deals_answer((4001, 1002, now - 40 * 86400), (4002, 1003, now - 86400),
                                                      (4003, 142, now - 3600)))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})

    outcome = leads_push(account_id=account.pk)

    assert outcome.sent == 1 and not calls_to(amocrm_mock, "/leads/complex")
    lead.refresh_from_db()
    assert (lead.status, lead.amocrm_deal_id, lead.amocrm_contact_id, lead.attached_to_deal) == (
        Lead.Status.SENT, 4002, 7001, True)
    [note] = body_of(calls_to(amocrm_mock, "/leads/notes")[0])
    assert note["entity_id"] == 4002
    assert "Repeat enquiry" in note["params"]["text"] and "utm_source=yandex" in note["params"]["text"]
    assert "Ещё вопрос" in note["params"]["text"]
    # One search (with=leads at no extra cost) and one read of the candidate deals for the batch.
    assert len(calls_to(amocrm_mock, "/contacts", "GET")) == 1 and len(calls_to(amocrm_mock, "/leads", "GET")) == 1


def test_attach_policy_without_an_open_deal_creates_one(source, account, amocrm_mock):
    attach_policy(source, days=7)
    make_lead(source, phone="+79161234567", message="")
    now = int(time.time())
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(with_leads(contact(7001, phones=["+79161234567"]),
                                                                       4001, 4003)))
    amocrm_mock.get(f"{API}/leads", json=deals_answer((4001, 1002, now - 8 * 86400), (4003, 143, now)))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    leads_push(account_id=account.pk)
    assert len(calls_to(amocrm_mock, "/leads/complex")) == 1


def test_the_default_policy_always_creates_a_new_deal_and_asks_for_no_deals(source, account, amocrm_mock):
    make_lead(source, phone="+79161234567", message="")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(contact(7001, phones=["+79161234567"])),
                    match=[matchers.query_param_matcher({"query": "+79161234567", "limit": "50"})])
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    leads_push(account_id=account.pk)
    assert len(calls_to(amocrm_mock, "/leads/complex")) == 1 and not calls_to(amocrm_mock, "/leads", "GET")


def test_known_people_are_read_in_one_contacts_request_per_batch(source, account, amocrm_mock):
    attach_policy(source)

    for index in range(3):
        phone = f"+7916123456{index}"
        ContactMatch.objects.create(account=account, kind="phone", value=phone, contact_id=7000 + index)
        make_lead(source, phone=phone, message="")
    now = int(time.time())
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(
        with_leads({"id": 7000}, 4000), with_leads({"id": 7001}), with_leads({"id": 7002}, 4002)))
    amocrm_mock.get(f"{API}/leads", json=deals_answer((4000, 1002, now), (4002, 142, now)))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001), (5002, 7002)))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})
    outcome = leads_push(account_id=account.pk)
    assert outcome.sent == 3
    [contacts_call] = calls_to(amocrm_mock, "/contacts", "GET")
    assert "with=leads" in contacts_call.request.url and contacts_call.request.url.count("filter%5Bid%5D") == 3
    assert len(body_of(calls_to(amocrm_mock, "/leads/complex")[0])) == 2


def test_two_submissions_of_one_new_person_in_one_batch_make_one_deal(source, account, amocrm_mock):
    attach_policy(source)
    first = make_lead(source, phone="+79161234567", message="first")
    second = make_lead(source, phone="+79161234567", message="second")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}, {"id": 2}]}})

    outcome = leads_push(account_id=account.pk)

    assert outcome.sent == 2 and len(calls_to(amocrm_mock, "/leads/complex")) == 1
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.amocrm_deal_id, first.attached_to_deal) == (5001, False)
    assert (second.amocrm_deal_id, second.amocrm_contact_id, second.attached_to_deal) == (5001, 7001, True)
    notes = body_of(calls_to(amocrm_mock, "/leads/notes")[0])
    assert sorted(note["entity_id"] for note in notes) == [5001, 5001]


def test_two_submissions_of_one_known_person_without_open_deal_make_one_deal(source, account, amocrm_mock):
    attach_policy(source)
    make_lead(source, phone="+79161234567", message="")
    second = make_lead(source, phone="+79161234567", message="")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(with_leads(contact(7001, phones=["+79161234567"]))))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})
    leads_push(account_id=account.pk)
    assert len(body_of(calls_to(amocrm_mock, "/leads/complex")[0])) == 1
    second.refresh_from_db()
    assert (second.status, second.amocrm_deal_id, second.attached_to_deal) == (Lead.Status.SENT, 5001, True)


# ---------------------------------------------------------------------------- responsible manager


def round_robin(source, users):
    LeadSource.objects.filter(pk=source.pk).update(responsible_mode=LeadSource.ResponsibleMode.ROUND_ROBIN,
                                                   responsible_user_ids=users)


def test_round_robin_gives_new_deals_in_turn_and_skips_inactive_users(source, account, amocrm_mock):
    AmoUser.objects.create(account=account, amocrm_id=7, name="Vera", is_active=False)
    round_robin(source, [USER, 7, 6])
    for index in range(5):
        make_lead(source, phone=f"+7916123456{index}", message="")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer(*[(5000 + i, 7000 + i) for i in range(5)]))

    leads_push(account_id=account.pk)

    deals = body_of(calls_to(amocrm_mock, "/leads/complex")[0])
    assert [deal["responsible_user_id"] for deal in deals] == [USER, 6, USER, 6, USER]
    assert sorted(Lead.objects.values_list("responsible_user_id", flat=True)) == [USER, USER, USER, 6, 6]
    assert round_robin_take(source.pk, 1) == [6]  # the turn is kept in the source's row


def test_round_robin_with_no_active_user_falls_back_to_the_fixed_user(source, account, amocrm_mock):
    AmoUser.objects.filter(account=account).update(is_active=False)
    round_robin(source, [USER, 6])
    make_lead(source, message="")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    leads_push(account_id=account.pk)
    assert body_of(calls_to(amocrm_mock, "/leads/complex")[0])[0]["responsible_user_id"] == USER


# ---------------------------------------------------------------------------- the manager's task


def test_each_new_deal_gets_a_task_in_one_request_due_in_n_minutes(source, account, amocrm_mock):
    LeadSource.objects.filter(pk=source.pk).update(task_enabled=True, task_due_minutes=30, task_type_id=2,
                                                   task_text="Позвонить {name} ({phone}), бюджет {price}")
    make_lead(source, name="Иван", phone="+79161234560", message="", price=Decimal("100"))
    make_lead(source, name="Пётр", phone="+79161234561", message="")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001), (5002, 7002)))
    amocrm_mock.post(f"{API}/tasks", json={"_embedded": {"tasks": [{"id": 1}, {"id": 2}]}})
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})  # the budget's note

    before = int(timezone.now().timestamp())
    outcome = leads_push(account_id=account.pk)
    after = int(timezone.now().timestamp())

    assert outcome.tasks == 2
    [call] = calls_to(amocrm_mock, "/tasks")
    tasks = body_of(call)
    assert [(task["entity_id"], task["entity_type"], task["task_type_id"], task["responsible_user_id"])
            for task in tasks] == [(5001, "leads", 2, USER), (5002, "leads", 2, USER)]
    assert tasks[0]["text"] == "Позвонить Иван (+79161234560), бюджет 100.00"
    assert tasks[1]["text"] == "Позвонить Пётр (+79161234561), бюджет"
    for task in tasks:
        assert before + 30 * 60 <= task["complete_till"] <= after + 30 * 60
    assert not Lead.objects.filter(task_pending=True).exists()


def test_no_task_for_an_attached_enquiry_nor_when_tasks_are_off(source, account, amocrm_mock):
    attach_policy(source)
    LeadSource.objects.filter(pk=source.pk).update(task_enabled=True)
    make_lead(source, phone="+79161234567", message="")
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(with_leads(contact(7001, phones=["+79161234567"]),
                                                                       4002)))
    amocrm_mock.get(f"{API}/leads", json=deals_answer((4002, 1002, int(time.time()))))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})
    outcome = leads_push(account_id=account.pk)
    assert outcome.sent == 1 and not calls_to(amocrm_mock, "/tasks")


def test_a_refused_task_is_said_on_the_lead_and_not_retried(source, account, amocrm_mock):
    LeadSource.objects.filter(pk=source.pk).update(task_enabled=True, task_type_id=99)
    lead = make_lead(source, message="")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer((5001, 7001)))
    amocrm_mock.post(f"{API}/tasks", status=400, json={
        "title": "Bad Request", "status": 400, "validation-errors": [
            {"request_id": "0", "errors": [{"code": "NotSupportedChoice", "path": "task_type_id", "detail": "x"}]}]})
    leads_push(account_id=account.pk)
    lead.refresh_from_db()
    assert lead.status == Lead.Status.SENT and not lead.task_pending
    assert "refused its task" in lead.last_error


# ---------------------------------------------------------------------------- working hours


@pytest.mark.parametrize(("now", "due"), [
    ("2026-12-07 10:00", "2026-12-07 10:30"),  # Monday, inside the hours: N minutes from now
    ("2026-12-07 07:15", "2026-12-07 09:30"),  # before opening: from today's opening
    ("2026-12-07 18:00", "2026-12-08 09:30"),  # at closing: from tomorrow's opening
    ("2026-12-11 22:00", "2026-12-14 09:30"),  # Friday night: from Monday's opening
    ("2026-12-13 12:00", "2026-12-14 09:30"),  # Sunday noon: from Monday's opening
])
def test_a_task_outside_working_hours_is_due_after_the_next_opening(settings, now, due):
    settings.TIME_ZONE = "Europe/Moscow"
    moscow = zoneinfo.ZoneInfo("Europe/Moscow")
    moment = datetime.fromisoformat(now).replace(tzinfo=moscow)
    deadline = payloads.task_deadline(moment, minutes=30, hours="09:00-18:00")
    assert deadline == datetime.fromisoformat(due).replace(tzinfo=moscow)


@pytest.mark.parametrize("hours", ["", "18:00-09:00", "9-18", "25:00-26:00"])
def test_without_valid_working_hours_a_task_is_due_n_minutes_from_now(hours):
    moment = datetime(2026, 12, 13, 3, 0, tzinfo=UTC)  # a Sunday night
    assert payloads.task_deadline(moment, minutes=45, hours=hours) == moment + timedelta(minutes=45)


def test_a_later_batch_attaches_to_the_deal_an_earlier_batch_of_the_same_push_created(source, account, amocrm_mock):
    attach_policy(source)
    make_lead(source, phone="+79161234567", message="")
    for index in range(49):
        make_lead(source, phone=f"+7903{index:07d}", email="", message="")
    late = make_lead(source, phone="+79161234567", message="later")  # the 51st lead: the next batch
    ContactMatch.objects.create(account=account, kind="phone", value="+79161234567", contact_id=7001)
    for index in range(49):
        ContactMatch.objects.create(account=account, kind="phone", value=f"+7903{index:07d}", contact_id=8000 + index)
    now = int(time.time())
    # First batch: the person has no deal yet; second batch: the deal the first batch created.
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(with_leads({"id": 7001})))
    amocrm_mock.get(f"{API}/contacts", json=contacts_answer(with_leads({"id": 7001}, 5000)))
    amocrm_mock.get(f"{API}/leads", json=deals_answer((5000, 1002, now)))
    amocrm_mock.post(f"{API}/leads/complex", json=complex_answer(*[(5000 + i, 7001) for i in range(50)]))
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})

    leads_push(account_id=account.pk)

    late.refresh_from_db()
    assert (late.amocrm_deal_id, late.attached_to_deal) == (5000, True)
    assert len(calls_to(amocrm_mock, "/leads/complex")) == 1
