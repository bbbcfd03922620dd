"""POST /api/leads/hook/<secret>/: the secret, form builders' bodies (Tilda, CF7, Elementor), probe, tranid, rate."""

import json
import logging
import time
from io import StringIO

import pytest
from django.core.management import call_command

from config.logging import JsonFormatter
from leads.models import HookPreset, Lead, LeadSource
from tests.amocrm.test_oauth import TOKEN_ANSWER, mock_metadata
from tests.fixtures.loader import load_fixture
from tests.leads.conftest import TOKEN_URL

pytestmark = pytest.mark.django_db
FORM = "application/x-www-form-urlencoded"


def hook_url(source) -> str:
    return f"/api/leads/hook/{source.hook_secret}/"


def post(client, source, body, content_type=FORM, url=None, **headers):
    if isinstance(body, dict):
        body, content_type = json.dumps(body), "application/json"
    return client.post(url or hook_url(source), data=body, content_type=content_type, **headers)


def test_every_source_has_its_own_long_secret(source, account_with_metadata):
    other = type(source).objects.create(account=account_with_metadata, name="Other")
    assert len(source.hook_secret) >= 32 and source.hook_secret != other.hook_secret


def test_a_json_post_to_the_secret_url_is_stored_for_that_source(client, source):
    response = post(client, source, {"name": "Ivan", "phone": "+7 912 345 67 89"}, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 201
    lead = Lead.objects.get()
    assert response.json() == {"id": str(lead.id), "status": "pending"}
    assert (lead.source, lead.name, lead.phone, lead.ip) == (source, "Ivan", "+79123456789", "203.0.113.9")


def test_a_wrong_or_inactive_secret_is_404_and_stores_nothing(client, source):
    wrong = post(client, source, {"phone": "+79123456789"}, url=f"/api/leads/hook/{source.hook_secret}x/")
    assert wrong.status_code == 404
    source.is_active = False
    source.save()
    assert post(client, source, {"phone": "+79123456789"}).status_code == 404
    assert Lead.objects.count() == 0


def test_a_rotated_secret_stops_working_and_the_new_one_works(client, source):
    old = hook_url(source)
    source.rotate_hook_secret()
    assert post(client, source, {"phone": "+79123456789"}, url=old).status_code == 404
    assert post(client, source, {"phone": "+79123456789"}).status_code == 201
    source.refresh_from_db()
    assert hook_url(source) != old


def test_a_real_tilda_body_is_understood(client, source):
    response = post(client, source, load_fixture("formbuilders/tilda.txt"))
    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert (lead.name, lead.phone, lead.email) == ("Иван Петров", "+79123456789", "ivan@example.com")
    assert lead.message == "Перезвоните после 18"
    assert (lead.utm_source, lead.utm_medium, lead.utm_campaign) == ("yandex", "cpc", "autumn_sale")
    assert lead.fields == {"Город": "Казань", "formid": "form426717316", "formname": "Cart"}
    assert lead.idempotency_key == "tranid:5849913:4287351191"
    stored = json.dumps([lead.fields, lead.message, lead.referrer, lead.page_url])
    assert "tildauid" not in stored and "_ym_d" not in stored  # the raw cookies are not kept


def test_a_contact_form_7_json_body_is_understood(client, source):
    response = post(client, source, load_fixture("formbuilders/cf7.json"), content_type="application/json")
    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert (lead.name, lead.phone, lead.email) == ("Анна Смирнова", "+79120001122", "anna@example.com")
    assert lead.message == "Сколько стоит доставка в Казань?"
    assert (lead.utm_source, lead.utm_campaign) == ("google", "brand")
    assert lead.fields == {"your-subject": "Доставка"}  # CF7's own _wpcf7 fields are dropped


def test_an_elementor_body_is_understood_in_both_formats(client, source):
    assert post(client, source, load_fixture("formbuilders/elementor.txt")).status_code == 201
    assert post(client, source, load_fixture("formbuilders/elementor_advanced.txt")).status_code == 201
    simple, advanced = Lead.objects.order_by("created_at")
    assert (simple.name, simple.email, simple.message) == ("Борис", "boris@example.com", "Нужен диван")
    assert simple.page_url == "https://shop.example/sofa/" and simple.fields == {}
    assert (advanced.name, advanced.phone, advanced.page_url) == ("Борис", "+79123334455",
                                                                  "https://shop.example/contacts/")
    assert advanced.fields == {"city": "Самара", "form[id]": "a1b2c3d", "form[name]": "Callback"}


def test_the_sources_aliases_rename_fields_before_the_presets(client, source):
    source.hook_aliases = {"Как вас зовут": "name", "Мобильный": "phone", "Name": "city"}
    source.save()
    response = post(client, source, "Как+вас+зовут=Ольга&Мобильный=89120000000&Name=Tver", content_type=FORM)
    assert response.status_code == 201, response.content
    lead = Lead.objects.get()
    assert (lead.name, lead.phone, lead.fields) == ("Ольга", "+79120000000", {"city": "Tver"})


def test_the_none_preset_takes_only_our_names_and_the_aliases(client, source):
    source.hook_preset = HookPreset.NONE
    source.save()
    response = post(client, source, {"Телефон": "+79123456789", "Phone": "+79120000001"})
    assert response.status_code == 201
    lead = Lead.objects.get()
    assert lead.phone == "+79120000001" and lead.fields == {"Телефон": "+79123456789"}


def test_tildas_probe_answers_200_and_stores_nothing(client, source):
    response = post(client, source, "test=test")
    assert response.status_code == 200 and response.json() == {"status": "test"}
    assert Lead.objects.count() == 0


def test_a_repeated_tranid_answers_with_the_first_lead(client, source):
    body = load_fixture("formbuilders/tilda.txt")
    first = post(client, source, body)
    again = post(client, source, body)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"] and Lead.objects.count() == 1


def test_an_idempotency_key_header_works_on_the_hook_too(client, source):
    first = post(client, source, {"phone": "+79123456789", "message": "a"}, HTTP_IDEMPOTENCY_KEY="make-1")
    again = post(client, source, {"phone": "+79123456789", "message": "a"}, HTTP_IDEMPOTENCY_KEY="make-1")
    assert again.json()["id"] == first.json()["id"] and Lead.objects.count() == 1


def test_invalid_input_gets_the_intakes_errors(client, source):
    response = post(client, source, {"Name": "No contact"})
    assert response.status_code == 400
    assert set(response.json()["errors"]) == {"phone", "email"}


def test_the_rate_is_per_source_and_not_per_ip(client, source, settings, monkeypatch):
    # One fixed window for the whole test: on a slow run the posts could otherwise straddle a minute's end.
    now = (time.time() // 60) * 60 + 1
    monkeypatch.setattr(time, "time", lambda: now)  # the hook's and the intake's windows read time.time()
    settings.LEAD_HOOK_THROTTLE = "3/min"
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"lead_intake": "1/min"}}
    answers = [post(client, source, {"phone": f"+7912000000{n}"}, REMOTE_ADDR=f"203.0.113.{n}").status_code
               for n in range(4)]
    assert answers == [201, 201, 201, 429]
    assert Lead.objects.count() == 3
    same_ip = [post(client, source, {"phone": f"+7912100000{n}"}, REMOTE_ADDR="198.51.100.1").status_code
               for n in range(2)]
    assert same_ip == [429, 429]  # the source's budget is spent, whoever sends
    other = LeadSource.objects.create(account=source.account, name="Other site")
    assert post(client, other, {"phone": "+79122000000"}, REMOTE_ADDR="198.51.100.1").status_code == 201


def test_the_secret_never_reaches_a_log_line(client, source, caplog):
    caplog.set_level(logging.INFO)
    post(client, source, {"phone": "+79123456789"})
    client.get(hook_url(source))  # 405, logged by django.request
    client.post(hook_url(source), data="{not json", content_type="application/json")  # 400
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert any(source.hook_secret[-4:] in line and "/api/leads/hook/" in line for line in lines)
    assert not any(source.hook_secret in line for line in lines)


def test_amocrm_connect_json_prints_the_default_sources_hook_url_which_takes_leads(client, amocrm_mock):
    amocrm_mock.post(TOKEN_URL, json=TOKEN_ANSWER)
    mock_metadata(amocrm_mock)
    out = StringIO()
    call_command("amocrm_connect", "--host", "sandbox.test", "--client-id", "cid", "--client-secret", "cs",
                 "--redirect-uri", "https://site/amocrm/oauth/callback/", "--code", "c1", "--json", stdout=out)
    url = json.loads(out.getvalue())["lead_hook_url"]
    source = LeadSource.objects.get(is_default=True)
    assert url == f"http://testserver/api/leads/hook/{source.hook_secret}/"
    response = client.post(url.removeprefix("http://testserver"), data="Name=Ivan&Phone=89123456789",
                           content_type=FORM)
    assert response.status_code == 201 and Lead.objects.get().source == source


def test_the_openapi_schema_documents_the_hook_once(client):
    paths = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()["paths"]
    operation = paths["/api/leads/hook/{secret}/"]["post"]
    assert operation["operationId"] == "leads_hook_create"
    assert {"200", "201", "400", "404", "429"} <= set(operation["responses"])
    assert "/api/leads/hook/{secret}" not in paths


def test_the_hook_url_without_its_trailing_slash_works_too(client, source):
    response = post(client, source, {"phone": "+79123456789"}, url=hook_url(source).rstrip("/"))
    assert response.status_code == 201


def test_click_ids_first_touch_and_tilda_client_id_cookies_pass_through_the_hook(client, source):
    body = ("Name=Ivan&Phone=%2B79123456789&gclid=Cj0-abc&yclid=777&first_utm_source=yandex"
            "&first_utm_campaign=spring&COOKIES=_ym_uid%3D1690000000123456789%3B+utm_source%3Dgoogle")
    assert post(client, source, body).status_code == 201
    lead = Lead.objects.get()
    assert (lead.gclid, lead.yclid, lead.ym_client_id) == ("Cj0-abc", "777", "1690000000123456789")
    assert (lead.first_utm_source, lead.first_utm_campaign, lead.utm_source) == ("yandex", "spring", "google")
    assert "gclid" not in lead.fields and "first_utm_source" not in lead.fields
