"""The source admin's hook section: the URL with instructions for who may change the source, rotation, aliases."""

import html

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import translation

from leads.admin import LeadSourceAdmin
from leads.models import LeadSource

pytestmark = pytest.mark.django_db
SOURCES = reverse("admin:leads_leadsource_changelist")


def change_page(client, source) -> str:
    return html.unescape(client.get(reverse("admin:leads_leadsource_change", args=[source.pk])).content.decode())


def test_the_change_page_shows_the_hook_url_and_how_to_connect_each_builder(staff, source):
    page = change_page(staff, source)
    url = f"http://testserver/api/leads/hook/{source.hook_secret}/"
    assert f'value="{url}"' in page and f"curl -X POST '{url}'" in page
    for text in ("Tilda", "Contact Form 7", "Elementor Pro", "WPForms", "Make", "Rotate hook secret"):
        assert text in page


def test_the_hook_section_is_in_russian_for_a_russian_operator(source):
    with translation.override("ru"):
        section = str(LeadSourceAdmin(LeadSource, admin.site).hook_instructions(source))
    assert "Настройки сайта → Формы → Webhook" in section and "Отправлять cookies" in section
    assert f"/api/leads/hook/{source.hook_secret}/" in section


def test_a_user_who_may_only_view_the_source_does_not_see_the_secret(client, django_user_model, source):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_leadsource"))
    client.force_login(viewer)
    page = change_page(client, source)
    assert "Landing" in page and source.hook_secret not in page
    assert "rotate_hook_secret" not in client.get(SOURCES).content.decode()
    client.post(SOURCES, {"action": "rotate_hook_secret", "_selected_action": [source.pk]})
    assert LeadSource.objects.get(pk=source.pk).hook_secret == source.hook_secret


def test_rotating_gives_a_new_secret_and_says_so(staff, source, client):
    old = source.hook_secret
    response = staff.post(SOURCES, {"action": "rotate_hook_secret", "_selected_action": [source.pk]})
    source.refresh_from_db()
    assert source.hook_secret != old and len(source.hook_secret) >= 32
    assert any("New hook URL for Landing" in str(m) for m in get_messages(response.wsgi_request))
    assert client.post(f"/api/leads/hook/{old}/", data={"phone": "+79123456789"}).status_code == 404


def test_aliases_and_preset_are_saved_from_the_change_form(staff, source):
    page = change_page(staff, source)
    assert 'name="hook_preset"' in page and 'name="hook_aliases"' in page
    data = {"name": "Landing", "account": source.account_id, "is_active": "on", "mode": "deal",
            "pipeline_id": "", "status_id": "", "responsible_user_id": "", "deal_name_template": "{name}",
            "tags": "", "field_mapping": "", "allowed_origins": "", "success_url": "", "form_id": "",
            "error_url": "https://shop.example/oops", "hook_preset": "tilda",
            "hook_aliases": '{"Ваш город": "city"}'}
    response = staff.post(reverse("admin:leads_leadsource_change", args=[source.pk]), data)
    assert response.status_code == 302, response.content.decode()[:3000]
    source.refresh_from_db()
    assert (source.hook_preset, source.hook_aliases, source.error_url) == (
        "tilda", {"Ваш город": "city"}, "https://shop.example/oops")
    data["hook_aliases"] = '["name"]'
    refused = staff.post(reverse("admin:leads_leadsource_change", args=[source.pk]), data)
    assert refused.status_code == 200 and "Write a JSON object" in html.unescape(refused.content.decode())
