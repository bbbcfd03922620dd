"""Hostile input to POST /api/leads/: whatever an anonymous sender posts is answered 201 or 400, never 5xx."""

import json
from urllib.parse import quote

import pytest

from leads.models import Lead

pytestmark = pytest.mark.django_db
URL = "/api/leads/"
TEXT_FIELDS = ["name", "email", "phone", "message", "utm_source", "utm_medium", "utm_campaign", "utm_term",
               "utm_content", "referrer", "page_url", "website", "source"]


def post_raw(client, body: str, **headers):
    """Post JSON text as is: json.dumps writes a lone surrogate as the escape `\\ud800`, which the parser reads back."""
    return client.post(URL, data=body.encode(), content_type="application/json", **headers)


def valid(source, **extra):
    return {"source": source.public_key, "name": "Иван", "phone": "+79123456789", **extra}


def assert_400_naming(response, field):
    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert field in errors, errors
    assert all(isinstance(message, str) and message for message in errors[field])
    assert Lead.objects.count() == 0


@pytest.mark.parametrize("field", TEXT_FIELDS)
@pytest.mark.parametrize("text", ["\ud800", "Иван \udfff", "\udc80\ud800"], ids=["high", "low-after-text", "swapped"])
def test_a_lone_surrogate_in_any_text_field_is_400_naming_the_field(client, source, field, text):
    payload = valid(source, email="ivan@example.com")
    payload[field] = text
    assert_400_naming(post_raw(client, json.dumps(payload)), field)


def test_a_lone_surrogate_in_an_extra_field_value_is_400_naming_it(client, source):
    assert_400_naming(post_raw(client, json.dumps(valid(source, fields={"city": "Mos\ud800cow"}))), "fields.city")


@pytest.mark.parametrize("key", ["ci\x00ty", "ci\ud800ty", "\udfff"], ids=["nul", "surrogate", "only-surrogate"])
def test_nul_or_a_surrogate_in_an_extra_field_name_is_400(client, source, key):
    assert_400_naming(post_raw(client, json.dumps(valid(source, fields={key: "Moscow"}))), "fields")


def test_nul_in_a_form_posted_extra_field_name_is_400(client, source):
    body = f"source={source.public_key}&phone=%2B79123456789&fields%5Bci%00ty%5D=Moscow"
    response = client.post(URL, data=body, content_type="application/x-www-form-urlencoded")
    assert_400_naming(response, "fields")


@pytest.mark.parametrize("depth", [1_000, 20_000])
def test_deeply_nested_json_is_400_not_a_recursion_error(client, source, depth):
    nested = "[" * depth + "]" * depth
    body = json.dumps(valid(source))[:-1] + f', "fields": {{"deep": {nested}}}}}'
    assert len(body) < 64 * 1024
    response = post_raw(client, body)
    assert response.status_code == 400, response.content
    assert response.json()["errors"] and Lead.objects.count() == 0


def test_a_json_number_too_long_to_read_is_400(client, source):
    response = post_raw(client, json.dumps(valid(source))[:-1] + ', "name": ' + "9" * 5000 + "}")
    assert response.status_code == 400 and response.json()["errors"]


def test_huge_and_infinite_numbers_are_plain_text(client, source):
    response = post_raw(client, json.dumps(valid(source))[:-1] + ', "name": ' + "9" * 250
                        + ', "utm_term": 1e999, "fields": {"count": -1e999}}')
    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert (lead.name, lead.utm_term, lead.fields) == ("9" * 250, "inf", {"count": "-inf"})


@pytest.mark.parametrize("key", ["k\x00ey", "k\ud800ey"], ids=["nul", "surrogate"])
def test_an_idempotency_key_with_nul_or_a_surrogate_is_400(client, source, key):
    assert_400_naming(post_raw(client, json.dumps(valid(source)), HTTP_IDEMPOTENCY_KEY=key), "Idempotency-Key")


def test_a_user_agent_with_nul_is_stored_without_it(client, source):
    response = post_raw(client, json.dumps(valid(source)), HTTP_USER_AGENT="Bot\x00/1.0")
    assert response.status_code == 201, response.content
    assert Lead.objects.get().user_agent == "Bot/1.0"


def test_a_source_given_in_the_url_with_nul_is_400(client, source):
    body = "phone=%2B79123456789"
    response = client.post(f"{URL}?source={quote(source.public_key)}%00", data=body,
                           content_type="application/x-www-form-urlencoded")
    assert_400_naming(response, "source")
