"""End to end: a Tilda site connected by pasting `amocrm_connect`'s lead_hook_url — its lead lands in amoCRM once."""

import pytest
import requests

from amocrm_sandbox.harness import wait_until
from leads.models import Lead
from tests.fixtures.loader import load_fixture

pytestmark = pytest.mark.django_db(transaction=True)
FORM = "application/x-www-form-urlencoded"


def test_a_tilda_delivery_to_the_hook_url_becomes_one_deal_with_its_contact_and_utm(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    connected = connect_account(0)
    url = connected["lead_hook_url"]
    assert url.startswith(f"{live_server_url}/api/leads/hook/"), connected

    assert requests.post(url, data="test=test", headers={"Content-Type": FORM}, timeout=10).status_code == 200
    body = load_fixture("formbuilders/tilda.txt")
    first = requests.post(url, data=body, headers={"Content-Type": FORM}, timeout=10)
    retried = requests.post(url, data=body, headers={"Content-Type": FORM}, timeout=10)  # Tilda retries
    assert (first.status_code, retried.status_code) == (201, 201), first.text
    assert retried.json()["id"] == first.json()["id"]

    lead = wait_until(lambda: Lead.objects.filter(pk=first.json()["id"], status=Lead.Status.SENT,
                                                  amocrm_deal_id__isnull=False).first(),
                      timeout=90, what="the hook's lead pushed")
    assert Lead.objects.count() == 1 and lead.utm_source == "yandex"
    deals = control.leads()
    assert [deal["id"] for deal in deals] == [lead.amocrm_deal_id]
    contact = next(c for c in control.contacts() if c["id"] == lead.amocrm_contact_id)
    assert contact["name"] == "Иван Петров"
