"""POST /api/leads/ with a deal budget (`price`) and a `company`: what is accepted, stored and refused."""

import json
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from leads.models import Lead

pytestmark = pytest.mark.django_db
URL = "/api/leads/"


def post_json(client, payload):
    return client.post(URL, data=json.dumps(payload), content_type="application/json")


def valid(source, **extra):
    return {"source": source.public_key, "name": "Иван", "phone": "8 (912) 345-67-89", **extra}


@pytest.mark.parametrize(("sent", "stored"), [
    ("45 000,50", Decimal("45000.50")),
    ("45\u00a0000", Decimal("45000.00")),
    (1200, Decimal("1200.00")),
    (99.999, Decimal("100.00")),
    ("0", Decimal("0.00")),
])
def test_a_budget_is_stored_from_numbers_and_from_text_with_spaces_and_a_decimal_comma(client, source, sent, stored):
    assert post_json(client, valid(source, price=sent, company="ООО Ромашка")).status_code == 201
    lead = Lead.objects.get()
    assert (lead.price, lead.company) == (stored, "ООО Ромашка")


def test_a_form_encoded_budget_and_company_are_stored(client, source):
    response = client.post(URL, data=urlencode(valid(source, price="1 500,5", company="ИП Петров")),
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 201
    assert Lead.objects.values_list("price", "company").get() == (Decimal("1500.50"), "ИП Петров")


@pytest.mark.parametrize("sent", ["", None])
def test_no_budget_is_stored_as_none(client, source, sent):
    assert post_json(client, valid(source, price=sent)).status_code == 201
    assert Lead.objects.get().price is None


@pytest.mark.parametrize(("sent", "message"), [
    ("-5", "The budget cannot be negative."),
    ("abc", "Enter the budget as a number, e.g. 45000 or 45 000,50."),
    ("NaN", "Enter the budget as a number, e.g. 45000 or 45 000,50."),
    ("1e400", "The budget is too large."),
    (True, "Enter the budget as a number, e.g. 45000 or 45 000,50."),
])
def test_a_budget_that_is_no_number_or_negative_is_refused_with_what_to_fix(client, source, sent, message):
    response = post_json(client, valid(source, price=sent))
    assert response.status_code == 400
    assert response.json()["errors"]["price"] == [message]
    assert not Lead.objects.exists()
