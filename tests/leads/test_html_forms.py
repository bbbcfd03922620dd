"""Plain HTML forms (no JavaScript): a refused post is answered with a page or a redirect, never JSON."""

from urllib.parse import urlencode

import pytest

from leads.models import Lead

pytestmark = pytest.mark.django_db
URL = "/api/leads/"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def post_form(client, payload, url=URL, **headers):
    return client.post(url, data=urlencode(payload), content_type="application/x-www-form-urlencoded",
                       HTTP_ACCEPT=BROWSER, **headers)


def test_a_form_without_phone_or_email_gets_a_page_listing_what_to_fix(client, source):
    response = post_form(client, {"source": source.public_key, "name": "Ivan"},
                         HTTP_REFERER="https://shop.example/contacts")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert "Please fix the following" in page and "Give a phone number or an email address." in page
    assert "<strong>Phone</strong>" in page and 'href="https://shop.example/contacts"' in page
    assert Lead.objects.count() == 0


def test_the_page_is_in_russian_for_a_russian_browser(client, source):
    response = post_form(client, {"source": source.public_key, "phone": "12"}, HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9")
    page = response.content.decode()
    assert response.status_code == 400 and 'lang="ru"' in page
    assert "Форма не отправлена" in page and "<strong>Телефон</strong>" in page
    assert "Введите правильный номер телефона." in page


def test_an_unknown_source_is_explained_on_the_page_too(client, source):
    response = post_form(client, {"source": "nope", "phone": "+79123456789"})
    assert response.status_code == 400 and "Unknown or inactive lead source." in response.content.decode()


def test_with_an_error_url_the_visitor_is_redirected_there_with_the_fields_to_fix(client, source):
    source.error_url = "https://shop.example/oops?form=1"
    source.save()
    response = post_form(client, {"source": source.public_key, "email": "not-an-email"})
    assert response.status_code == 303
    assert response["Location"] == "https://shop.example/oops?form=1&lead_errors=email"


def test_a_throttled_form_post_gets_html_too(client, source, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"lead_intake": "1/min"}}
    assert post_form(client, {"source": source.public_key, "phone": "+79123456789"}).status_code == 303
    refused = post_form(client, {"source": source.public_key, "phone": "+79120000000"})
    assert refused.status_code == 429 and refused["Content-Type"].startswith("text/html")


def test_success_keeps_the_303_and_json_clients_keep_json_errors(client, source):
    assert post_form(client, {"source": source.public_key, "phone": "+79123456789"}).status_code == 303
    response = client.post(URL, data=urlencode({"source": source.public_key}),
                           content_type="application/x-www-form-urlencoded", HTTP_ACCEPT="application/json")
    assert response.status_code == 400 and set(response.json()["errors"]) == {"phone", "email"}


def test_the_hook_answers_a_browser_form_with_html_too(client, source):
    response = post_form(client, {"Name": "Ivan"}, url=f"/api/leads/hook/{source.hook_secret}/")
    assert response.status_code == 400 and response["Content-Type"].startswith("text/html")


def test_too_many_extra_fields_are_explained_in_the_visitors_language(client, source):
    payload = {"source": source.public_key, "phone": "+79123456789", **{f"fields[k{i}]": "v" for i in range(51)}}
    response = post_form(client, payload, HTTP_ACCEPT_LANGUAGE="ru")
    assert response.status_code == 400 and "Не больше 50 полей." in response.content.decode()
    assert Lead.objects.count() == 0
