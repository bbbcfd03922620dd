"""Pages outside the admin in both languages: the landing page ("View site"), the OAuth result, the embed snippet;
money per locale."""

from decimal import Decimal

import pytest
from django.template.loader import render_to_string
from django.utils import translation

from config import formats

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("language, heading", [("ru", "Интеграция с amoCRM"), ("en", "amoCRM integration")])
def test_the_landing_page_answers_in_the_browsers_language(client, language, heading):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE=language)

    html = response.content.decode()
    assert response.status_code == 200
    assert f'<html lang="{language}">' in html and f"<h1>{heading}</h1>" in html
    assert 'href="/admin/"' in html and 'href="/api/docs/"' in html
    assert "<script" not in html  # a plain page under the strict policy


def test_the_admins_view_site_link_opens_the_landing_page(admin_client):
    response = admin_client.get("/admin/")

    assert response.context["site_url"] == "/"
    assert admin_client.get(response.context["site_url"]).status_code == 200


def test_the_oauth_result_page_is_russian_for_a_russian_browser(client):
    response = client.get("/amocrm/oauth/callback/", {"state": "forged", "code": "c"}, HTTP_ACCEPT_LANGUAGE="ru-RU")

    html = response.content.decode()
    assert response.status_code == 400
    assert "Эта ссылка подключения недействительна" in html
    assert "Начните заново со страницы аккаунта в админке." in html
    assert "<script" not in html  # no admin theme: nothing that the strict policy would block


def test_the_embed_snippet_speaks_to_visitors_in_the_operators_language(account):
    from leads.models import LeadSource

    source = LeadSource.objects.create(account=account, name="Главная")
    with translation.override("ru"):
        snippet = render_to_string("leads/embed_snippet.html", {
            "source": source, "endpoint": "https://crm.example.com/api/leads/", "honeypot": "website"})

    assert 'placeholder="Ваше имя"' in snippet and ">Отправить</button>" in snippet
    assert 'alert("Спасибо! Мы скоро свяжемся с вами.")' in snippet
    assert "источник заявок «Главная»" in snippet


@pytest.mark.parametrize("language, expected", [("ru", "45\xa0000,00\xa0₽"), ("en", "RUB45,000.00")])
def test_money_is_written_as_the_language_writes_it(language, expected):
    with translation.override(language):
        assert formats.money(Decimal("45000"), "RUB") == expected
        assert formats.money(None) == "—"


def test_a_sale_without_currency_is_shown_in_roubles():
    with translation.override("ru"):
        assert formats.money(Decimal("1500.5"), "") == "1\xa0500,50\xa0₽"
        assert formats.number(1000000) == "1\xa0000\xa0000"


def test_a_russian_visitor_reads_the_forms_errors_in_russian(client, account):
    """The embed snippet shows the intake's errors to the visitor; the browser's language picks them."""
    from leads.models import LeadSource

    source = LeadSource.objects.create(account=account, name="Главная")

    response = client.post("/api/leads/", {"source": source.public_key, "name": "Анна"},
                           content_type="application/json", HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9")

    assert response.status_code == 400
    assert response.json()["errors"]["phone"] == ["Укажите телефон или адрес электронной почты."]
    bad_phone = client.post("/api/leads/", {"source": source.public_key, "phone": "12"},
                            content_type="application/json", HTTP_ACCEPT_LANGUAGE="ru")
    assert bad_phone.json()["errors"]["phone"] == ["Введите правильный номер телефона."]
