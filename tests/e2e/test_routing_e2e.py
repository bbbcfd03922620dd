"""End to end through gunicorn, a real worker and the sandbox: budget, contact fields, managers, tasks, dedup."""

import time

import pytest
import requests

from amocrm.models import AmoUser, CustomField
from leads.models import Lead, LeadSource

pytestmark = pytest.mark.django_db(transaction=True)

WON = 142


def wait_until_pushed(count: int, *, timeout: float = 90) -> list[Lead]:
    """Every one of `count` leads sent with its note and task written; the leads, oldest first."""
    started = time.monotonic()
    while True:
        leads = list(Lead.objects.order_by("created_at"))
        done = [lead for lead in leads if lead.status == Lead.Status.SENT and not lead.note_pending
                and not lead.task_pending]
        if len(leads) == count and len(done) == count:
            return leads
        assert time.monotonic() - started < timeout, [(lead.status, lead.last_error) for lead in leads]
        time.sleep(0.3)


def post_lead(url: str, key: str, **values) -> None:
    answer = requests.post(f"{url}/api/leads/", json={"source": key, **values}, timeout=30)
    assert answer.status_code == 201, answer.text


def test_budget_contact_fields_round_robin_managers_and_tasks_reach_amocrm(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    key = connect_account(0)["lead_source_key"]
    position = CustomField.objects.get(entity_type="contacts", code="POSITION")
    users = {user.name: user for user in AmoUser.objects.all()}
    inactive = [user for user in users.values() if not user.is_active]
    assert [user.name for user in inactive] == ["Олег Уволенный"]  # from the users list, rights.is_active
    chosen = [users["Администратор"].amocrm_id, inactive[0].amocrm_id, users["Анна Менеджер"].amocrm_id]
    LeadSource.objects.filter(public_key=key).update(
        contact_field_mapping={"position": position.amocrm_id}, task_enabled=True, task_due_minutes=45,
        task_text="Перезвонить {name}, бюджет {price}", responsible_mode=LeadSource.ResponsibleMode.ROUND_ROBIN,
        responsible_user_ids=chosen)

    before = int(time.time())
    for index in range(4):
        post_lead(live_server_url, key, name=f"Клиент {index}", phone=f"8 (912) {index:03d}-11-22",
                  price="45 000,50", company="ООО Ромашка", fields={"position": "Директор"})
    leads = wait_until_pushed(4)
    after = int(time.time())

    deals = {deal["id"]: deal for deal in control.leads()}
    contacts = {contact["id"]: contact for contact in control.contacts()}
    tasks = {task["entity_id"]: task for task in control.tasks()}
    assert len(deals) == 4 and len(tasks) == 4
    for lead in leads:
        deal = deals[lead.amocrm_deal_id]
        assert deal["price"] == 45001
        assert deal["responsible_user_id"] == lead.responsible_user_id
        values = {field["field_id"]: field["values"][0]["value"]
                  for field in contacts[lead.amocrm_contact_id]["custom_fields_values"] or []}
        assert values[position.amocrm_id] == "Директор"
        task = tasks[lead.amocrm_deal_id]
        assert task["entity_type"] == "leads" and task["task_type_id"] == 1
        assert task["responsible_user_id"] == lead.responsible_user_id
        assert task["text"] == f"Перезвонить {lead.name}, бюджет 45000.50"
        assert before + 45 * 60 <= task["complete_till"] <= after + 45 * 60
    notes = [note["params"]["text"] for note in control.notes()]
    assert len(notes) == 4 and all("Company: ООО Ромашка" in text for text in notes)
    # Round-robin over the two active users: two deals each; the deactivated user got none.
    managers = sorted(lead.responsible_user_id for lead in leads)
    assert managers == sorted([chosen[0], chosen[0], chosen[2], chosen[2]])


def test_a_repeat_enquiry_lands_on_the_open_deal_only_when_the_source_asks(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    key = connect_account(0)["lead_source_key"]
    source = LeadSource.objects.get(public_key=key)
    LeadSource.objects.filter(pk=source.pk).update(dedup_policy=LeadSource.DedupPolicy.ATTACH, task_enabled=True)
    person = {"name": "Ирина", "phone": "+7 912 555-00-11"}

    post_lead(live_server_url, key, **person, message="Первая заявка")
    [first] = wait_until_pushed(1)
    post_lead(live_server_url, key, **person, message="Вторая заявка", utm_source="yandex")
    first, second = wait_until_pushed(2)
    assert (second.amocrm_deal_id, second.attached_to_deal) == (first.amocrm_deal_id, True)
    assert len(control.leads()) == 1 and len(control.tasks()) == 1  # no second deal, no task for a note
    repeat = [note["params"]["text"] for note in control.notes() if note["entity_id"] == first.amocrm_deal_id]
    assert any("Вторая заявка" in text and "utm_source=yandex" in text for text in repeat)

    # Two submissions of one new person at once: one deal between them.
    other = {"name": "Пётр", "email": "petr@example.com"}
    post_lead(live_server_url, key, **other, message="раз")
    post_lead(live_server_url, key, **other, message="два")
    leads = wait_until_pushed(4)
    assert leads[2].amocrm_deal_id == leads[3].amocrm_deal_id and len(control.leads()) == 2

    # A won deal is not open: the next enquiry gets a deal of its own.
    control.move_deal(first.amocrm_deal_id, status_id=WON)
    post_lead(live_server_url, key, **person, message="Третья заявка")
    third = wait_until_pushed(5)[-1]
    assert third.amocrm_deal_id != first.amocrm_deal_id and not third.attached_to_deal

    # The default policy: always a new deal, even with the open deal just made.
    LeadSource.objects.filter(pk=source.pk).update(dedup_policy=LeadSource.DedupPolicy.NEW_DEAL)
    post_lead(live_server_url, key, **person, message="Четвёртая заявка")
    fourth = wait_until_pushed(6)[-1]
    assert fourth.amocrm_deal_id not in (first.amocrm_deal_id, third.amocrm_deal_id)
    assert len(control.leads()) == 4 and len(control.tasks()) == 4
