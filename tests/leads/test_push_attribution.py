"""Attribution into amoCRM: click and client ids into the account's tracking fields chosen by code, the rest
into mapped fields, the first touch and every id into the note."""

from datetime import UTC, datetime

import pytest
from django.utils import translation

from amocrm.models import CustomField
from leads.push.engine import leads_push
from tests.leads.conftest import API, UTM_SOURCE_FIELD, body_of, calls_to, make_lead

pytestmark = pytest.mark.django_db
GCLID_FIELD, YM_UID_FIELD, GA_FIELD, ROISTAT_TEXT_FIELD, MAPPED_FBCLID_FIELD = 960, 961, 962, 963, 964


@pytest.fixture
def tracked_account(account):
    """The account of tests/leads/conftest.py plus GCLID, _YM_UID and GCLIENTID tracking fields (no YCLID,
    FBCLID, ROISTAT) and a text field for fbclid."""
    for amocrm_id, code in ((GCLID_FIELD, "GCLID"), (YM_UID_FIELD, "_YM_UID"), (GA_FIELD, "GCLIENTID")):
        CustomField.objects.create(account=account, amocrm_id=amocrm_id, name=code.lower(), code=code,
                                   type="tracking_data")
    CustomField.objects.create(account=account, amocrm_id=MAPPED_FBCLID_FIELD, name="Facebook click", type="text")
    return account


def push_one(source, account, amocrm_mock, **fields):
    lead = make_lead(source, phone="+79001112233", message="", **fields)
    amocrm_mock.get(f"{API}/contacts", status=204, body=b"")
    amocrm_mock.post(f"{API}/leads/complex", json=[{"id": 5001, "contact_id": 7001, "company_id": None,
                                                    "request_id": ["0"], "merged": False}])
    amocrm_mock.post(f"{API}/leads/notes", json={"_embedded": {"notes": [{"id": 1}]}})
    leads_push(account_id=account.pk)
    [deal] = body_of(calls_to(amocrm_mock, "/leads/complex")[0])
    notes = calls_to(amocrm_mock, "/leads/notes")
    return lead, deal, (body_of(notes[0])[0]["params"]["text"] if notes else "")


def test_ids_go_into_the_tracking_fields_the_account_has_by_code_and_a_mapped_field(source, tracked_account,
                                                                                   amocrm_mock):
    source.field_mapping = {"fbclid": MAPPED_FBCLID_FIELD}
    source.save()
    lead, deal, note = push_one(source, tracked_account, amocrm_mock, utm_source="yandex", gclid="G-1", yclid="Y-2",
                                fbclid="FB-3", ym_client_id="1700000000123456789", ga_client_id="123.456",
                                roistat_visit="4242")
    assert deal["custom_fields_values"] == [
        {"field_id": UTM_SOURCE_FIELD, "values": [{"value": "yandex"}]},
        {"field_id": GCLID_FIELD, "values": [{"value": "G-1"}]},
        {"field_id": YM_UID_FIELD, "values": [{"value": "1700000000123456789"}]},
        {"field_id": GA_FIELD, "values": [{"value": "123.456"}]},
        {"field_id": MAPPED_FBCLID_FIELD, "values": [{"value": "FB-3"}]},
    ]  # YCLID and ROISTAT have no tracking field in this account: the note has them
    assert ("Click and analytics ids: gclid=G-1, yclid=Y-2, fbclid=FB-3, ym_client_id=1700000000123456789, "
            "ga_client_id=123.456, roistat_visit=4242") in note


def test_the_first_touch_goes_into_the_note_and_the_last_touch_stays_in_the_utm_fields(source, tracked_account,
                                                                                      amocrm_mock):
    lead, deal, note = push_one(
        source, tracked_account, amocrm_mock, utm_source="yandex", utm_campaign="autumn",
        first_utm_source="google", first_utm_medium="cpc", first_utm_campaign="spring",
        first_referrer="https://www.google.com/", first_landing_page="https://shop.example/?gclid=G-1",
        first_touch_at=datetime(2026, 5, 1, 10, 30, tzinfo=UTC))
    assert deal["custom_fields_values"][0] == {"field_id": UTM_SOURCE_FIELD, "values": [{"value": "yandex"}]}
    assert note == (
        "UTM: utm_source=yandex, utm_campaign=autumn\n"
        "First touch (2026-05-01 10:30 UTC): utm_source=google, utm_medium=cpc, utm_campaign=spring\n"
        "  Landing page: https://shop.example/?gclid=G-1\n"
        "  Referrer: https://www.google.com/\n\n"
        f"Website lead {lead.id} from “{source.name}”.")


def test_a_first_touch_without_utms_is_noted_as_direct(source, tracked_account, amocrm_mock):
    lead, _, note = push_one(source, tracked_account, amocrm_mock, first_landing_page="https://shop.example/",
                             first_touch_at=datetime(2026, 5, 1, tzinfo=UTC))
    assert "First touch (2026-05-01 00:00 UTC): direct\n  Landing page: https://shop.example/" in note


def test_a_source_may_map_the_first_touch_to_its_own_deal_fields(source, tracked_account, amocrm_mock):
    source.field_mapping = {"first_utm_campaign": MAPPED_FBCLID_FIELD}
    source.save()
    _, deal, _ = push_one(source, tracked_account, amocrm_mock, first_utm_campaign="spring")
    assert {"field_id": MAPPED_FBCLID_FIELD, "values": [{"value": "spring"}]} in deal["custom_fields_values"]


def test_the_note_is_in_the_projects_language(source, tracked_account, amocrm_mock):
    with translation.override("ru"):
        lead, _, note = push_one(
            source, tracked_account, amocrm_mock, page_url="https://shop.example/p", referrer="https://ya.ru/",
            company="ООО Ромашка", price="45000.50", fields={"city": "Москва"}, gclid="G-1",
            first_landing_page="https://shop.example/", first_referrer="https://www.google.com/",
            first_touch_at=datetime(2026, 5, 1, tzinfo=UTC))
    assert note == (
        "Страница: https://shop.example/p\nОткуда пришёл: https://ya.ru/\nКомпания: ООО Ромашка\n"
        "Бюджет: 45000.50\n"
        "Первое касание (2026-05-01 00:00 UTC): прямой заход\n"
        "  Страница входа: https://shop.example/\n  Откуда пришёл: https://www.google.com/\n"
        "Идентификаторы кликов и аналитики: gclid=G-1\n"
        "Поля формы:\n  city: Москва\n\n"
        f"Заявка с сайта {lead.id} из источника «{source.name}».")
