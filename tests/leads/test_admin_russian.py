"""The lead admin's messages after an action, its sync log table and the embed snippet's hint in Russian."""

import html

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from amocrm.models import SyncLog
from leads.models import Lead
from tests.leads.conftest import PIPELINE, make_lead
from tests.leads.test_admin import source_form

pytestmark = pytest.mark.django_db

RUSSIAN = {"HTTP_ACCEPT_LANGUAGE": "ru"}


def run_action(client, action, *leads):
    response = client.post(reverse("admin:leads_lead_changelist"),
                           {"action": action, "_selected_action": [str(lead.pk) for lead in leads]}, **RUSSIAN)
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_retry_push_says_what_it_did_in_russian(staff, source):
    failed = [make_lead(source, status=Lead.Status.FAILED) for _ in range(2)]
    sent = make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=1)
    assert run_action(staff, "action_retry_push", *failed, sent) == [
        "2 заявки снова поставлены в очередь на отправку.",
        "1 заявка пропущена: уже отправлена или отправляется."]


def test_mark_as_spam_says_what_it_did_in_russian(staff, source):
    pending = [make_lead(source) for _ in range(5)]
    sent = make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=1)
    assert run_action(staff, "action_mark_spam", *pending, sent) == [
        "5 заявок помечено как спам и не будут отправлены.",
        "1 заявка пропущена: уже в amoCRM или отправляется."]


def test_the_sync_log_table_and_the_snippet_hint_are_in_russian(staff, source, account):
    lead = make_lead(source, status=Lead.Status.SENT, amocrm_deal_id=5001)
    lead.sync_logs.add(SyncLog.objects.create(account=account, operation="leads.complex", status=SyncLog.Status.OK,
                                              method="POST", path="/api/v4/leads/complex", http_status=200))
    page = staff.get(reverse("admin:leads_lead_change", args=[lead.pk]), **RUSSIAN).content.decode()
    assert ("<th>время</th><th>операция</th><th>статус</th><th>HTTP</th><th>длительность</th><th>ошибка</th>"
            in page)
    page = html.unescape(staff.get(reverse("admin:leads_leadsource_change", args=[source.pk]), **RUSSIAN)
                         .content.decode())
    assert "Вставьте на страницу сайта. Добавьте адрес сайта в «Разрешённые сайты» выше." in page


@pytest.mark.usefixtures("account_with_metadata")
@pytest.mark.parametrize(("changes", "message"), [
    ({"allowed_origins": "shop.example"}, "'shop.example' — не адрес сайта: укажите только протокол и домен"),
    ({"pipeline_id": str(PIPELINE), "status_id": "2002"}, "Этого этапа нет в выбранной воронке."),
    ({"field_mapping": "city: No such field"}, "'No such field' — не поле (сделки) этого аккаунта"),
])
def test_the_source_form_says_what_to_fix_in_russian(staff, account, changes, message):
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(account, **changes), **RUSSIAN)
    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())


@pytest.mark.usefixtures("account_with_metadata")
def test_the_source_form_names_the_main_pipeline_in_russian(staff, source):
    page = staff.get(reverse("admin:leads_leadsource_change", args=[source.pk]), **RUSSIAN).content.decode()
    assert "Sales (основная)" in page


def test_a_lead_is_named_with_its_status_in_the_operators_language(staff, source):
    lead = make_lead(source, name="Иван")
    page = staff.get(reverse("admin:leads_lead_change", args=[lead.pk]), **RUSSIAN).content.decode()
    assert "Иван (Ожидает)" in page and "(pending)" not in page
