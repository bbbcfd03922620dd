"""The product code records its metrics: the intake, the push, every amoCRM call, refreshes, webhooks and sales.

In one process with amoCRM mocked at the client boundary; tests/e2e/test_monitoring_e2e.py checks the same
families on gunicorn's /metrics after a Celery worker did the work.
"""

import json

import pytest
from django.db import DataError

from amocrm.errors import TokenRevoked
from amocrm.tokens import account_refresh_token
from amocrm.webhooks.processing import webhook_event_process
from leads.models import LeadSource
from leads.push.engine import leads_push
from sales.services import sale_apply_deal
from tests.factories import TOKEN_URL
from tests.fixtures.loader import load_fixture
from tests.leads.conftest import API, account_with_metadata, make_lead  # noqa: F401 (fixture)
from tests.sales.builders import AMO_ACCOUNT_ID, answer_deal, api_deal, deliver

from .test_metrics import metrics_auth, scrape, value  # noqa: F401 (fixture)

pytestmark = pytest.mark.account(name="Shop", amocrm_account_id=AMO_ACCOUNT_ID)


@pytest.fixture
def lead_source(account_with_metadata):  # noqa: F811 (the fixture imported above)
    return LeadSource.objects.create(account=account_with_metadata, name="Landing")


def moved(before: str, after: str, sample: str) -> float:
    return value(after, sample) - value(before, sample)


def test_intake_answers_and_a_push_move_their_families(client, lead_source, amocrm_mock):
    before = scrape(client)
    accepted = client.post("/api/leads/", data=json.dumps({"source": lead_source.public_key, "phone": "+79123450001"}),
                           content_type="application/json")
    again = client.post("/api/leads/", data=json.dumps({"source": lead_source.public_key, "phone": "+79123450001"}),
                        content_type="application/json")
    invalid = client.post("/api/leads/", data=json.dumps({"source": lead_source.public_key, "phone": "x"}),
                          content_type="application/json")
    unknown = client.post("/api/leads/", data=json.dumps({"source": "no-such-source", "phone": "+79123450002"}),
                          content_type="application/json")
    assert [r.status_code for r in (accepted, again, invalid, unknown)] == [201, 201, 400, 400]
    make_lead(lead_source, phone="+79123450003")  # an older lead, so the latency lands in a high bucket
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[
        {"id": 5000 + index, "contact_id": 7000 + index, "request_id": [str(index)]} for index in range(2)])
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})

    assert leads_push(account_id=lead_source.account_id).sent == 2
    after = scrape(client)

    assert moved(before, after, 'amocrm_leads_intake_total{outcome="accepted",reason="new"}') == 1
    assert moved(before, after, 'amocrm_leads_intake_total{outcome="accepted",reason="duplicate"}') == 1
    assert moved(before, after, 'amocrm_leads_intake_total{outcome="refused",reason="invalid"}') == 1
    assert moved(before, after, 'amocrm_leads_intake_total{outcome="refused",reason="unknown_source"}') == 1
    assert moved(before, after, 'amocrm_leads_pushed_total{outcome="sent"}') == 2
    assert moved(before, after, "amocrm_lead_push_latency_seconds_count") == 2
    assert moved(before, after, 'amocrm_lead_push_latency_seconds_bucket{le="300.0"}') == 1, "the fresh one"
    assert moved(before, after, 'amocrm_requests_total{operation="leads.complex",status="200"}') == 1
    assert moved(before, after, 'amocrm_request_duration_seconds_count{operation="leads.complex"}') == 1
    calls = len(amocrm_mock.calls)
    assert moved(before, after, "amocrm_rate_limiter_wait_seconds_count") == calls, "one slot per call"


def test_a_lead_amocrm_rejects_counts_as_failed(lead_source, amocrm_mock, client):
    make_lead(lead_source, phone="+79123450004")
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", status=400, json={
        "title": "Bad Request", "status": 400,
        "validation-errors": [{"request_id": "0", "errors": [{"code": "NotSupportedChoice", "path": "status_id",
                                                              "detail": "The value is not supported"}]}]})
    before = scrape(client)
    leads_push(account_id=lead_source.account_id)
    after = scrape(client)
    assert moved(before, after, 'amocrm_leads_pushed_total{outcome="failed"}') == 1
    assert moved(before, after, 'amocrm_requests_total{operation="leads.complex",status="400"}') == 1


def test_refreshes_count_by_outcome(client, account, amocrm_mock):
    before = scrape(client)
    amocrm_mock.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 86400, "access_token": "access-2",
                                      "refresh_token": "refresh-2"})
    account_refresh_token(account_id=account.pk, force=True)
    amocrm_mock.replace("POST", TOKEN_URL, status=503, body=b"")
    with pytest.raises(Exception):  # noqa: B017, PT011 (a transient error of whatever class; counted is the point)
        account_refresh_token(account_id=account.pk, force=True)
    amocrm_mock.replace("POST", TOKEN_URL, status=401, json={"hint": "Token has been revoked", "status": 401,
                                                           "title": "Unauthorized"})
    with pytest.raises(TokenRevoked):
        account_refresh_token(account_id=account.pk, force=True)
    after = scrape(client)
    for outcome in ("ok", "failed", "revoked"):
        assert moved(before, after, f'amocrm_token_refreshes_total{{outcome="{outcome}"}}') == 1, outcome
    assert moved(before, after, 'amocrm_requests_total{operation="oauth.refresh",status="503"}') == 1


def test_a_webhook_delivered_and_processed_moves_deliveries_events_and_sales(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001, price=15000, updated_at=1700001000))
    before = scrape(client)
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    client.post(account.webhook_path.replace(account.webhook_key, "wrong-key"), data=b"x",
                content_type="application/x-www-form-urlencoded")
    assert webhook_event_process(event_id=event.pk) == "processed"
    deal = api_deal(9001, status_id=143, price=15000, updated_at=1700002000)
    sale_apply_deal(account=account, deal=deal)  # lost later: the sale is reverted
    after = scrape(client)

    assert moved(before, after, 'amocrm_webhook_deliveries_total{status="200"}') == 1
    assert moved(before, after, 'amocrm_webhook_deliveries_total{status="404"}') == 1
    assert moved(before, after, 'amocrm_webhook_events_total{state="processed"}') == 1
    assert moved(before, after, 'amocrm_sales_total{currency="RUB",event="won"}') == 1
    assert moved(before, after, 'amocrm_sales_revenue_total{currency="RUB",event="won"}') == 15000
    assert moved(before, after, 'amocrm_sales_revenue_total{currency="RUB",event="reverted"}') == 15000


def test_a_sale_whose_write_fails_moves_no_counter(client, account):
    """A deal priced beyond the column fails to be stored: the revenue counters must not count it (for good)."""
    before = scrape(client)
    with pytest.raises(DataError):
        sale_apply_deal(account=account, deal=api_deal(9101, price=10 ** 20, updated_at=1700001000))
    after = scrape(client)
    assert moved(before, after, 'amocrm_sales_total{currency="RUB",event="won"}') == 0
    assert moved(before, after, 'amocrm_sales_revenue_total{currency="RUB",event="won"}') == 0
