"""End to end: a lead's click and analytics ids reach the sandbox's tracking fields chosen by their codes, and its
first touch and every id the deal's note — through gunicorn and a real Celery worker."""

import time

import pytest
import requests

from leads.models import Lead

pytestmark = pytest.mark.django_db(transaction=True)

IDS = {"gclid": "Cj0KCQ-e2e", "yclid": "5432109876", "fbclid": "IwAR-e2e", "msclkid": "ms-e2e",
       "ym_client_id": "1700000000123456789", "ga_client_id": "123456789.1700000000", "roistat_visit": "4242"}
# The sandbox's code of each id's tracking field, as amoCRM names them (docs/amocrm.md#entities); msclkid has none.
CODES = {"GCLID": "Cj0KCQ-e2e", "YCLID": "5432109876", "FBCLID": "IwAR-e2e", "_YM_UID": "1700000000123456789",
         "GCLIENTID": "123456789.1700000000", "ROISTAT": "4242", "UTM_SOURCE": "yandex", "UTM_CAMPAIGN": "autumn"}


def wait_sent(lead_id: str) -> Lead:
    started = time.monotonic()
    while True:
        lead = Lead.objects.get(pk=lead_id)
        if lead.status == Lead.Status.SENT and not lead.note_pending:
            return lead
        assert time.monotonic() - started < 60, (lead.status, lead.last_error)
        time.sleep(0.5)


def test_click_and_client_ids_arrive_in_the_tracking_fields_by_code_and_the_first_touch_in_the_note(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    key = connect_account(0)["lead_source_key"]
    answer = requests.post(f"{live_server_url}/api/leads/", timeout=30, json={
        "source": key, "name": "Анна", "phone": "+79120001122", "utm_source": "yandex", "utm_campaign": "autumn",
        **IDS, "first_touch": {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring",
                               "landing_page": "https://shop.example/?gclid=Cj0KCQ-e2e",
                               "at": "2026-05-01T10:30:00Z"}})
    assert answer.status_code == 201, answer.text

    lead = wait_sent(answer.json()["id"])
    [deal] = [deal for deal in control.leads() if deal["id"] == lead.amocrm_deal_id]
    by_code = {field["field_code"]: [value["value"] for value in field["values"]]
               for field in deal["custom_fields_values"] or [] if field.get("field_code")}
    assert {code: by_code.get(code) for code in CODES} == {code: [value] for code, value in CODES.items()}
    [note] = [note for note in control.notes() if note["entity_id"] == lead.amocrm_deal_id]
    text = note["params"]["text"]
    assert "First touch (2026-05-01 10:30 UTC): utm_source=google, utm_medium=cpc, utm_campaign=spring" in text
    assert "msclkid=ms-e2e" in text  # no tracking field for it in amoCRM: the note carries it
