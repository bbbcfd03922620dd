"""Deal name templates checked when the source is saved, every lead field a placeholder, the preview."""

import html

import pytest
from django.urls import reverse

from leads import deal_names
from leads.models import Lead, LeadSource
from leads.payloads import deal_name
from tests.leads.conftest import make_lead
from tests.leads.test_admin import source_form

pytestmark = pytest.mark.django_db

ADD = reverse("admin:leads_leadsource_add")


def test_an_unknown_form_field_is_refused_with_the_available_placeholders(staff, account_with_metadata):
    response = staff.post(ADD, source_form(account_with_metadata, deal_name_template="Заказ {fields[product]}"))
    page = html.unescape(response.content.decode())
    assert response.status_code == 200 and not LeadSource.objects.filter(name="Promo").exists()
    assert "this source's form has sent no field “product” yet" in page
    assert "Available: {name}, {phone}, {phone_raw}, {email}, {message}, {source}" in page


@pytest.mark.parametrize(("template", "problem"), [
    ("{nmae}", "“{nmae}” is not a placeholder."),
    ("{name.upper}", "“{name.upper}” is not a placeholder."),
    ("Заявка {name", "The braces do not match."),
    ("{fields.city}", "write a form field as {fields[city]}"),
    ("{name:%}", "The template cannot be filled in"),
])
def test_broken_templates_are_refused_in_plain_words(template, problem):
    assert any(problem in text for text in deal_names.template_problems(template, form_fields={"city"}))


@pytest.mark.parametrize("template", ["{name:%}", "{name!z}", "{name:,}"])
def test_a_bad_format_is_explained_in_plain_words_not_pythons(template):
    problems = deal_names.template_problems(template, form_fields=set())
    assert problems == ["The template cannot be filled in: a placeholder has a format or conversion (after “:” or "
                        "“!”) its value does not take. Write it without one, e.g. {name}."]


def test_a_mapped_or_already_sent_form_field_is_accepted(staff, source):
    make_lead(source, fields={"product": "Диван"})
    url = reverse("admin:leads_leadsource_change", args=[source.pk])
    response = staff.post(url, source_form(source.account, name="Landing",
                                           deal_name_template="{fields[product]} — {fields[city]} — {utm_medium}",
                                           field_mapping="city: Город"))
    assert response.status_code == 302, html.unescape(response.content.decode())[-2000:]
    source.refresh_from_db()
    assert source.deal_name_template == "{fields[product]} — {fields[city]} — {utm_medium}"


def test_every_lead_field_fills_the_deal_name(source):
    source.deal_name_template = "{name}|{phone}|{phone_raw}|{email}|{message}|{source}|{utm_source}|{utm_medium}|" \
                                "{utm_campaign}|{utm_term}|{utm_content}|{referrer}|{page_url}|{fields[product]}"
    lead = make_lead(source, name="Иван", email="i@example.com", message="hi", utm_source="ya", utm_medium="cpc",
                     utm_campaign="spring", utm_term="sofa", utm_content="b1", referrer="https://r.example/",
                     page_url="https://shop.example/p", fields={"product": "Диван"})
    assert deal_name(lead, source) == ("Иван|+79123456789|8 (912) 345-67-89|i@example.com|hi|Landing|ya|cpc|spring|"
                                       "sofa|b1|https://r.example/|https://shop.example/p|Диван")


def test_the_source_page_previews_the_name_from_its_last_real_lead(staff, source):
    source.deal_name_template = "Заказ: {fields[product]} от {name}"
    source.save()
    make_lead(source, name="Old", fields={"product": "Стол"})
    make_lead(source, name="Newest", fields={"product": "Диван"})
    make_lead(source, name="Bot", status=Lead.Status.SPAM, fields={"product": "spam"})
    page = html.unescape(staff.get(reverse("admin:leads_leadsource_change", args=[source.pk])).content.decode())
    assert "<strong>Заказ: Диван от Newest</strong>" in page


def test_the_source_form_never_offers_won_or_lost_as_the_starting_stage(staff, source):
    from amocrm.models import Stage

    pipeline = source.account.pipelines.get(amocrm_id=777)
    Stage.objects.create(pipeline=pipeline, amocrm_id=142, name="Won", sort=90)
    page = staff.get(reverse("admin:leads_leadsource_change", args=[source.pk])).content.decode()
    stage_select = page.split('name="status_id"')[1].split("</select>")[0]
    assert "Talks" in stage_select and "Won" not in stage_select
