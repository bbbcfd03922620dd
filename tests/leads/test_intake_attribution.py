"""POST /api/leads/ with attribution: click ids, analytics client ids and the first touch, JSON and form-encoded."""

import json
from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest
from django.utils import translation
from rest_framework import serializers

from leads.attribution import ID_FIELDS
from leads.intake.api import LeadIntakeApi
from leads.models import Lead

pytestmark = pytest.mark.django_db
URL = "/api/leads/"
IDS = {"gclid": "Cj0KCQ-g", "gbraid": "0AAAA-gb", "wbraid": "CkAB-wb", "yclid": "5432109876", "fbclid": "IwAR-fb",
       "msclkid": "ms-123", "vk_clickid": "vk-42", "ym_client_id": "1700000000123456789",
       "ga_client_id": "123456789.1700000000", "roistat_visit": "4242"}
FIRST = {"utm_source": "google", "utm_medium": "cpc", "utm_campaign": "spring", "utm_term": "sofa",
         "utm_content": "ad1", "referrer": "https://www.google.com/", "landing_page": "https://shop.example/?gclid=1",
         "at": "2026-05-01T10:00:00.123Z"}
STORED_FIRST = {"first_utm_source": "google", "first_utm_medium": "cpc", "first_utm_campaign": "spring",
                "first_utm_term": "sofa", "first_utm_content": "ad1", "first_referrer": "https://www.google.com/",
                "first_landing_page": "https://shop.example/?gclid=1",
                "first_touch_at": datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)}


def valid(source, **extra):
    return {"source": source.public_key, "name": "Иван", "phone": "+79123456789", "utm_source": "yandex", **extra}


def post_json(client, payload):
    return client.post(URL, data=json.dumps(payload), content_type="application/json")


def post_form(client, payload):
    return client.post(URL, data=urlencode(payload), content_type="application/x-www-form-urlencoded")


def stored(lead: Lead) -> dict:
    return {name: getattr(lead, name) for name in (*ID_FIELDS, *STORED_FIRST)}


def test_json_click_ids_client_ids_and_the_first_touch_are_stored_beside_the_last_touch(client, source):
    response = post_json(client, valid(source, **IDS, first_touch=FIRST))
    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert stored(lead) == {**IDS, **STORED_FIRST}
    assert lead.utm_source == "yandex"  # the last touch is the flat UTMs, as before


@pytest.mark.parametrize("spelling", ["first_touch[{}]", "first_{}"])
def test_form_posts_send_the_first_touch_as_bracket_or_prefixed_keys(client, source, spelling):
    first = {(spelling.format(key) if key.startswith("utm_") else f"first_touch[{key}]"): value
             for key, value in FIRST.items()}
    if spelling == "first_{}":  # the prefixed spellings of the other keys are the Lead's field names
        first = {**{f"first_utm_{key[4:]}": value for key, value in FIRST.items() if key.startswith("utm_")},
                 "first_referrer": FIRST["referrer"], "first_landing_page": FIRST["landing_page"],
                 "first_touch_at": FIRST["at"]}
    response = post_form(client, valid(source, **IDS, **first))
    assert response.status_code == 201, response.content
    assert stored(Lead.objects.get()) == {**IDS, **STORED_FIRST}


def test_without_attribution_the_fields_stay_empty(client, source):
    assert post_json(client, valid(source)).status_code == 201
    lead = Lead.objects.get()
    assert stored(lead) == {**dict.fromkeys(ID_FIELDS, ""), **dict.fromkeys(STORED_FIRST, ""), "first_touch_at": None}


def test_a_first_touch_time_without_a_zone_is_utc(client, source):
    assert post_json(client, valid(source, first_touch={"at": "2026-05-01T10:00:00"})).status_code == 201
    assert Lead.objects.get().first_touch_at == datetime(2026, 5, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("change", "field", "words"), [
    *[({name: "x" * 256}, name, "255") for name in ID_FIELDS],
    ({"first_touch": {"utm_campaign": "x" * 256}}, "first_touch", "utm_campaign"),
    ({"first_touch": {"landing_page": "x" * 2001}}, "first_touch", "landing_page"),
    ({"first_touch": {"at": "yesterday"}}, "first_touch", "ISO 8601"),
    ({"first_touch": {"at": "2026-13-01T10:00:00Z"}}, "first_touch", "ISO 8601"),
    ({"first_touch": {"utm_sourse": "google"}}, "first_touch", "utm_sourse"),
    ({"first_touch": {"utm_source": ["a"]}}, "first_touch", "utm_source"),
    ({"first_touch": {"utm_source": "a\x00b"}}, "first_touch", "null"),
    ({"first_touch": "google"}, "first_touch", "object"),
])
def test_overlong_or_malformed_attribution_is_400_naming_the_field(client, source, change, field, words):
    response = post_json(client, valid(source, **change))
    assert response.status_code == 400, response.content
    messages = response.json()["errors"][field]
    assert any(words in message for message in messages), messages
    assert Lead.objects.count() == 0


def test_the_longest_attribution_values_are_accepted(client, source):
    first = {"utm_source": "s" * 255, "referrer": "r" * 2000, "landing_page": "l" * 2000}
    response = post_json(client, valid(source, **dict.fromkeys(ID_FIELDS, "i" * 255), first_touch=first))
    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert (len(lead.gclid), len(lead.first_utm_source), len(lead.first_landing_page)) == (255, 255, 2000)


def test_the_api_docs_describe_the_attribution_fields(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    properties = schema["components"]["schemas"]["LeadIntake"]["properties"]
    assert set(ID_FIELDS) <= set(properties)
    first_touch = properties["first_touch"]
    assert set(first_touch["properties"]) == {*FIRST} and first_touch["properties"]["at"]["format"] == "date-time"
    assert first_touch["properties"]["referrer"]["maxLength"] == 2000


def test_attribution_errors_come_with_the_other_fields_errors(client, source):
    response = post_json(client, valid(source, phone="not a phone", gclid="g" * 256, first_touch={"at": "later"}))
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"phone", "gclid", "first_touch"}


def test_a_null_id_is_like_an_absent_one(client, source):
    assert post_json(client, valid(source, gclid=None, first_touch=None)).status_code == 201
    lead = Lead.objects.get()
    assert (lead.gclid, lead.first_utm_source, lead.first_touch_at) == ("", "", None)


@pytest.mark.parametrize(("value", "words"), [
    ({"at": "yesterday"}, "at: ожидаются дата и время в формате ISO 8601"),
    ({"utm_sourse": "google"}, "Неизвестные ключи: utm_sourse."),
    ({"utm_campaign": "x" * 256}, "utm_campaign: ожидается строка не длиннее 255 символов."),
    ("google", "Ожидается объект с ключами"),
])
def test_first_touch_errors_are_in_the_senders_language(value, words):
    with translation.override("ru"):
        with pytest.raises(serializers.ValidationError) as refused:
            LeadIntakeApi.DocumentedInput().fields["first_touch"].to_internal_value(value)
        assert words in str(refused.value.detail[0])
