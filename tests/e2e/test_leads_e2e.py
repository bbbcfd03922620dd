"""End to end: website leads through gunicorn and a real Celery worker into the sandbox, with faults — exactly once."""

import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from leads import payloads
from leads.models import Lead
from leads.tasks import sweep_pending_leads

pytestmark = pytest.mark.django_db(transaction=True)

PEOPLE = 150
LEADS = 200
# What beat does every 30 seconds; this test runs no beat, so it calls the sweeper on the same schedule.
SWEEP_EVERY = 30


def people(count: int) -> list[dict]:
    # Written the way visitors type them; each normalizes to its own +7912… number.
    return [{"name": f"Клиент {index}", "phone": f"8 (912) {index:03d}-45-67", "email": f"person{index}@example.com"}
            for index in range(count)]


def test_200_leads_of_150_people_reach_amocrm_exactly_once_through_5xx_and_commit_then_fail(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    rng = random.Random(5)
    connected = connect_account(0)
    key = connected["lead_source_key"]
    assert key, connected
    # 10 % of all API calls answer 5xx, and 10 % of successful writes are committed and then answered 502.
    control.set_faults(error_rate=0.1, error_status=502, commit_then_fail_rate=0.1, seed=7)
    crowd = people(PEOPLE)
    submissions = crowd + [rng.choice(crowd) for _ in range(LEADS - PEOPLE)]
    rng.shuffle(submissions)

    def submit(pair):
        index, person = pair
        answer = requests.post(f"{live_server_url}/api/leads/", timeout=30, json={
            "source": key, **person, "message": f"Заявка №{index}", "utm_source": "e2e", "utm_campaign": "faults",
            "page_url": "https://shop.example/"})
        return answer.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        codes = list(pool.map(submit, enumerate(submissions)))
    assert codes == [201] * LEADS

    started = last_sweep = time.monotonic()
    while Lead.objects.exclude(status=Lead.Status.SENT).exists() or Lead.objects.filter(note_pending=True).exists():
        assert time.monotonic() - started < 420, (
            f"still not sent: {list(Lead.objects.exclude(status=Lead.Status.SENT).values('status', 'last_error'))}")
        if time.monotonic() - last_sweep >= SWEEP_EVERY:
            sweep_pending_leads()
            last_sweep = time.monotonic()
        time.sleep(1)
    control.clear_faults()

    leads = list(Lead.objects.all())
    assert len(leads) == LEADS and {lead.status for lead in leads} == {Lead.Status.SENT}
    deals = {deal["id"]: deal for deal in control.leads()}
    contacts = control.contacts()
    duplicates = control.duplicates(tag_prefix=payloads.MARKER_PREFIX)
    stats = control.stats()
    assert stats["faults_injected"] > 0  # the faults really happened
    assert len(deals) == LEADS and len(contacts) == PEOPLE
    assert duplicates["leads"]["extra_leads"] == 0 and duplicates["contacts"]["extra_contacts"] == 0
    assert stats["responses_429"] == 0 and stats["responses_403"] == 0
    # Every lead points at its own deal, which carries its marker and the contact with its phone.
    assert len({lead.amocrm_deal_id for lead in leads}) == LEADS
    phones_of = {contact["id"]: {payloads.normalize_phone(value["value"])
                                 for field in contact["custom_fields_values"] or [] if field["field_code"] == "PHONE"
                                 for value in field["values"]} for contact in contacts}
    for lead in leads:
        deal = deals[lead.amocrm_deal_id]
        assert payloads.marker_of(lead) in [tag["name"] for tag in deal["_embedded"]["tags"]]
        assert [c["id"] for c in deal["_embedded"]["contacts"]] == [lead.amocrm_contact_id]
        assert lead.phone in phones_of[lead.amocrm_contact_id]
    # The visitors' messages reached the deals as notes.
    noted = {note["entity_id"] for note in control.notes()}
    assert {lead.amocrm_deal_id for lead in leads} <= noted
