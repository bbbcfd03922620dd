"""The lead source form's routing settings: contact field mapping, round-robin users, task, repeat enquiries."""

import pytest
from django.urls import reverse

from amocrm.models import AmoUser, CustomField
from leads.models import Lead, LeadSource
from tests.leads.conftest import USER, make_lead
from tests.leads.test_admin import source_form

pytestmark = pytest.mark.django_db
POSITION_FIELD = 960


@pytest.fixture
def staff(admin_client):
    return admin_client


@pytest.fixture
def position_field(account_with_metadata):
    return CustomField.objects.create(account=account_with_metadata, entity_type="contacts",
                                      amocrm_id=POSITION_FIELD, name="Должность", type="text")


def test_routing_settings_are_saved_by_name(staff, account, position_field):
    AmoUser.objects.create(account=account, amocrm_id=7, name="Vera", is_active=False)
    page = staff.get(reverse("admin:leads_leadsource_add") + f"?account={account.pk}").content.decode()
    assert "Vera (7), inactive" in page
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(
        account, contact_field_mapping="position: Должность", responsible_mode="round_robin",
        responsible_user_ids=[str(USER), "6"], task_enabled="on", task_text="Позвонить {name}",
        task_due_minutes="15", task_type_id="2", dedup_policy="attach", dedup_days="14"))
    assert response.status_code == 302, response.content.decode()
    created = LeadSource.objects.get(name="Promo")
    assert created.contact_field_mapping == {"position": POSITION_FIELD}
    assert (created.responsible_mode, created.responsible_user_ids) == ("round_robin", [USER, 6])
    assert (created.task_enabled, created.task_text, created.task_due_minutes, created.task_type_id) == (
        True, "Позвонить {name}", 15, 2)
    assert (created.dedup_policy, created.dedup_days) == ("attach", 14)


def test_a_source_posted_without_routing_settings_keeps_todays_behaviour(staff, account):
    assert staff.post(reverse("admin:leads_leadsource_add"), source_form(account)).status_code == 302
    created = LeadSource.objects.get(name="Promo")
    assert (created.dedup_policy, created.dedup_days, created.responsible_mode, created.task_enabled) == (
        "new", 30, "fixed", False)


@pytest.mark.parametrize(("changes", "message"), [
    ({"contact_field_mapping": "position: Город"}, "is not a contact field of this account"),
    ({"responsible_mode": "round_robin"}, "Choose the users of the round-robin."),
    ({"task_text": "Позвонить {name[0]"}, "Use only the placeholders"),
])
def test_routing_settings_that_cannot_work_are_refused_with_what_to_fix(staff, account, position_field, changes,
                                                                       message):
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(account, **changes))
    assert response.status_code == 200 and message in response.content.decode()
    assert not LeadSource.objects.filter(name="Promo").exists()


def test_a_lead_shows_its_budget_company_manager_by_name_and_the_deal_it_was_attached_to(staff, source):
    lead = make_lead(source, company="ООО Ромашка", price="45000.50", responsible_user_id=USER,
                     amocrm_deal_id=4002, attached_to_deal=True, status=Lead.Status.SENT)
    page = staff.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    for text in ("ООО Ромашка", "45000", "Anna (5)", "4002"):
        assert text in page
    attached_row = page[page.index("Attached to an open deal"):page.index("The person had an open deal")]
    assert 'title="True"' in attached_row  # the flag itself, not only the deal id the link shows anyway


def test_working_hours_that_cannot_be_read_are_refused(staff, account):
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(account, task_working_hours="9 to 6"))
    assert response.status_code == 200 and "e.g. 09:00-18:00" in response.content.decode()
    response = staff.post(reverse("admin:leads_leadsource_add"), source_form(account, task_working_hours="09:00-18:00"))
    assert response.status_code == 302
    assert LeadSource.objects.get(name="Promo").task_working_hours == "09:00-18:00"
