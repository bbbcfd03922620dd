"""Builders for the sales and webhook-processing tests: leads, webhook bodies, API deals, deliveries."""

import copy
import json
import re
from collections.abc import Callable
from datetime import datetime
from urllib.parse import parse_qs, quote_plus, urlsplit

import responses
from django.utils import timezone

from amocrm.models import Account, WebhookEvent
from leads.models import Lead, LeadSource
from tests.factories import HOST
from tests.fixtures.loader import load_json

FORM = "application/x-www-form-urlencoded"
AMO_ACCOUNT_ID = 123456  # the account id the webhook fixtures carry
LEAD_URL = f"{HOST}/api/v4/leads/"


def make_lead(account: Account, *, deal_id: int | None = None, contact_id: int | None = None,
              utm_source: str = "", utm_campaign: str = "", source: LeadSource | None = None,
              created_at: datetime | None = None, **fields) -> Lead:
    source = source or LeadSource.objects.filter(account=account).first() or LeadSource.objects.create(
        account=account, name="Site form")
    return Lead.objects.create(
        account=account, source=source, name="Анна", phone="+79161234567", status=Lead.Status.SENT,
        amocrm_deal_id=deal_id, amocrm_contact_id=contact_id, utm_source=utm_source, utm_campaign=utm_campaign,
        created_at=created_at or timezone.now(), **fields,
    )


def form_body(pairs: list[tuple[str, object]]) -> bytes:
    """Form-encode the way amoCRM (PHP's http_build_query) does: brackets as %5B/%5D, spaces as "+"."""
    return "&".join(f"{quote_plus(key, safe='')}={quote_plus(str(value), safe='')}" for key, value in pairs).encode()


def lead_event(action: str, deal_id: int, *, status_id: int | None = None, old_status_id: int | None = None,
               pipeline_id: int = 777, last_modified: int | None = None, price: int | None = None,
               responsible_user_id: int | None = None, index: int = 0) -> list[tuple[str, object]]:
    """The pairs of one `leads[<action>][<index>]` item; fields left None are not sent (reduced bodies)."""
    fields = {"id": deal_id, "status_id": status_id, "old_status_id": old_status_id, "pipeline_id": pipeline_id,
              "price": price, "responsible_user_id": responsible_user_id, "last_modified": last_modified}
    return [(f"leads[{action}][{index}][{name}]", value) for name, value in fields.items() if value is not None]


def delivery(*items: list[tuple[str, object]], account_id: int = AMO_ACCOUNT_ID) -> bytes:
    pairs = [pair for item in items for pair in item]
    pairs += [("account[subdomain]", "example"), ("account[id]", account_id)]
    return form_body(pairs)


def api_deal(deal_id: int = 9001, *, status_id: int = 142, pipeline_id: int = 777, price: int = 15000,
             updated_at: int = 1700001000, closed_at: int | None = None, contact_id: int | None = 7001,
             name: str | None = None, responsible_user_id: int = 4040) -> dict:
    """A deal as GET /api/v4/leads/{id}?with=contacts returns it, built on the won-deal fixture."""
    deal = copy.deepcopy(load_json("amocrm/api/lead_9001_won.json"))
    deal.update(id=deal_id, status_id=status_id, pipeline_id=pipeline_id, price=price, updated_at=updated_at,
                responsible_user_id=responsible_user_id,
                closed_at=closed_at if closed_at is not None else (updated_at if status_id in (142, 143) else None))
    if name is not None:
        deal["name"] = name
    deal["_embedded"]["contacts"] = [{"id": contact_id, "is_main": True}] if contact_id else []
    return deal


def answer_deal(mock: responses.RequestsMock, deal: dict | None, *, deal_id: int | None = None) -> None:
    """Register one answer of GET /api/v4/leads/{id}: the deal, or amoCRM's 204 for a deleted one."""
    deal_id = deal_id or deal["id"]
    if deal is None:
        mock.get(f"{LEAD_URL}{deal_id}", status=204, body=b"")
    else:
        mock.get(f"{LEAD_URL}{deal_id}", json=deal)


def deliver(client, account: Account, body: bytes, content_type: str = FORM) -> WebhookEvent:
    """POST the body to the account's webhook URL like amoCRM does; returns the stored delivery."""
    response = client.post(account.webhook_path, data=body, content_type=content_type,
                           headers={"User-Agent": "amoCRM-WebHook-client/1.0"})
    assert response.status_code == 200, response.content
    return WebhookEvent.objects.filter(account=account).latest("pk")


def serve_deals(mock: responses.RequestsMock, deal_for: Callable[[int], dict | None]) -> None:
    """Answer both reads the processing makes — GET /leads/{id} and GET /leads?filter[id][]=... —
    from `deal_for(deal_id)` (None: the deal is gone, 204 / left out of the list)."""

    def single(request):
        deal = deal_for(int(request.url.split("?")[0].rsplit("/", 1)[1]))
        return (200, {}, json.dumps(deal)) if deal else (204, {}, "")

    def listing(request):
        query = parse_qs(urlsplit(request.url).query)
        deals = [deal for deal in map(deal_for, (int(i) for i in query.get("filter[id][]", []))) if deal]
        return (200, {}, json.dumps({"_embedded": {"leads": deals}, "_links": {}})) if deals else (204, {}, "")

    mock.add_callback(responses.GET, re.compile(rf"{re.escape(LEAD_URL)}\d+"), callback=single)
    mock.add_callback(responses.GET, f"{HOST}/api/v4/leads", callback=listing)
