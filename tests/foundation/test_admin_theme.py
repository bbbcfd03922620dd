"""The admin's theme as users meet it: a sidebar that shows only what the user may open, the language switcher,
the site names in both languages, every model on the theme's base classes."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from unfold.admin import ModelAdmin as UnfoldModelAdmin

pytestmark = pytest.mark.django_db


def sidebar_links(response) -> set[str]:
    """The sidebar's links the user is shown (unfold keeps the others in the context, marked, and leaves them out)."""
    return {str(item.get("link_callback") or item["link"]) for group in response.context["sidebar_navigation"]
            for item in group["items"] if item["has_permission"]}


def test_an_operator_sees_the_integrations_pages_but_not_users_and_groups(client, django_user_model):
    operator = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    operator.groups.add(Group.objects.get(name="Operators"))
    client.force_login(operator)

    response = client.get("/admin/")
    links = sidebar_links(response)

    assert 'href="/admin/auth/user/"' not in response.content.decode()
    assert {"/admin/", "/admin/amocrm/account/", "/admin/leads/lead/", "/admin/sales/sale/",
            "/admin/sales/sale/report/", "/admin/monitoring/incident/"} <= links
    assert not {"/admin/auth/user/", "/admin/auth/group/"} & links


def test_a_superuser_sees_every_section(admin_client):
    links = sidebar_links(admin_client.get("/admin/"))

    assert {"/admin/auth/user/", "/admin/auth/group/", "/admin/amocrm/webhookevent/",
            "/admin/monitoring/alertchannel/"} <= links


def test_the_language_switcher_posts_to_set_language_and_the_choice_sticks(admin_client):
    page = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert 'action="/i18n/setlang/"' in page and 'value="en"' in page and 'value="ru"' in page

    response = admin_client.post("/i18n/setlang/", {"language": "en", "next": "/admin/"})

    assert response.status_code == 302 and response["Location"] == "/admin/"
    english = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert '<html lang="en"' in english and "Needs your attention" in english


@pytest.mark.parametrize("language, title", [("ru", "Интеграция с amoCRM"), ("en", "amoCRM integration")])
def test_the_site_header_in_both_languages(admin_client, language, title):
    html = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE=language).content.decode()

    assert title in html
    assert "Django administration" not in html and "Администрирование Django" not in html


def test_every_model_admin_uses_the_themes_base_class():
    ours = {"amocrm", "leads", "sales", "monitoring", "conversions", "auth"}
    admins = [model_admin for model, model_admin in admin.site._registry.items() if model._meta.app_label in ours]

    assert len(admins) >= 13
    assert all(isinstance(model_admin, UnfoldModelAdmin) for model_admin in admins), [
        type(model_admin).__name__ for model_admin in admins if not isinstance(model_admin, UnfoldModelAdmin)]


def test_a_development_copy_says_so_in_the_header(admin_client, settings):
    settings.DEBUG = True
    assert "Development" in admin_client.get("/admin/").content.decode()

    settings.DEBUG = False
    assert "Development" not in admin_client.get("/admin/").content.decode()


def test_a_sidebar_entry_whose_page_is_gone_is_hidden_not_an_error(admin_client, monkeypatch):
    from django.urls import NoReverseMatch

    import config.unfold

    real = config.unfold.reverse

    def without_the_report(name, *args, **kwargs):
        if name == "admin:sales_sale_report":
            raise NoReverseMatch(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(config.unfold, "reverse", without_the_report)
    response = admin_client.get("/admin/")

    assert response.status_code == 200
    links = sidebar_links(response)
    assert "/admin/sales/sale/" in links and "/admin/sales/sale/report/" not in links


def test_the_open_pages_entry_is_marked_and_its_group_opened(admin_client):
    response = admin_client.get("/admin/leads/lead/")

    active = [str(item.get("link_callback")) for group in response.context["sidebar_navigation"]
              for item in group["items"] if item["active"]]
    assert active == ["/admin/leads/lead/"]


def test_fields_a_form_declares_itself_get_the_themes_widgets_with_their_choices(account):
    from unfold.widgets import UnfoldAdminSelectWidget, UnfoldAdminTextareaWidget

    from leads.admin_source_form import LeadSourceForm
    from leads.models import LeadSource

    form = LeadSourceForm(instance=LeadSource(account=account, name="Form"))

    assert isinstance(form.fields["pipeline_id"].widget, UnfoldAdminSelectWidget)
    assert form.fields["pipeline_id"].widget.choices[0][0] == ""  # the form's own empty choice kept
    assert isinstance(form.fields["field_mapping"].widget, UnfoldAdminTextareaWidget)
    assert form.fields["field_mapping"].widget.attrs["rows"] == 4
