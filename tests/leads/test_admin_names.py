"""Names, never bare ids: account defaults chosen by name, lead and sale pages and lists showing "Name (id)"."""

import pytest
from django.urls import reverse
from django.utils import timezone

from amocrm.models import Account, Stage
from sales.models import Sale
from tests.leads.conftest import FIRST_STAGE, PIPELINE, SECOND_STAGE, USER, make_lead

pytestmark = pytest.mark.django_db

LEADS = reverse("admin:leads_lead_changelist")
SALES = reverse("admin:sales_sale_changelist")


def account_post(account, **changes) -> dict:
    data = {"name": account.name, "client_id": account.client_id, "client_secret": "",
            "redirect_uri": account.redirect_uri, "host": account.host,
            "token-TOTAL_FORMS": "1", "token-INITIAL_FORMS": "1", "token-MIN_NUM_FORMS": "0",
            "token-MAX_NUM_FORMS": "0", "token-0-id": account.token.pk, "token-0-account": account.pk}
    data.update(changes)
    return {key: value for key, value in data.items() if value is not None}


def test_the_account_page_offers_defaults_by_name_without_won_or_lost_stages(staff, account_with_metadata):
    pipeline = account_with_metadata.pipelines.get(amocrm_id=PIPELINE)
    Stage.objects.create(pipeline=pipeline, amocrm_id=142, name="Won", sort=90)
    Stage.objects.create(pipeline=pipeline, amocrm_id=143, name="Lost", sort=91)
    page = staff.get(reverse("admin:amocrm_account_change", args=[account_with_metadata.pk])).content.decode()
    default_stage = page.split('name="default_status_id"')[1].split("</select>")[0]
    assert "New (1002)" in default_stage and "Talks (1003)" in default_stage
    assert "Won (142)" not in default_stage and "Lost (143)" not in default_stage
    won = page.split('name="won_stages"')[1].split("</select>")[0]
    assert 'value="777:142"' in won and "Won (142)" in won
    assert "Sales (777)" in page and "Anna (5)" in page


def test_defaults_and_won_stages_chosen_by_name_are_saved_as_ids(staff, account_with_metadata):
    url = reverse("admin:amocrm_account_change", args=[account_with_metadata.pk])
    response = staff.post(url, account_post(account_with_metadata, default_pipeline_id=str(PIPELINE),
                                            default_status_id=str(SECOND_STAGE), default_responsible_user_id="6",
                                            won_stages=["777:1003", "888:2002"]))
    assert response.status_code == 302, response.content.decode()[:3000]
    account = Account.objects.get(pk=account_with_metadata.pk)
    assert (account.default_pipeline_id, account.default_status_id, account.default_responsible_user_id) == (
        PIPELINE, SECOND_STAGE, 6)
    assert account.won_stages == [[777, 1003], [888, 2002]]


def test_a_won_stage_is_refused_as_the_incoming_stage(staff, account_with_metadata):
    url = reverse("admin:amocrm_account_change", args=[account_with_metadata.pk])
    response = staff.post(url, account_post(account_with_metadata, default_pipeline_id=str(PIPELINE),
                                            default_status_id="142"))
    assert response.status_code == 200
    assert Account.objects.get(pk=account_with_metadata.pk).default_status_id == FIRST_STAGE


def test_a_stored_id_the_cache_does_not_know_is_kept_and_hinted(staff, account_with_metadata):
    Account.objects.filter(pk=account_with_metadata.pk).update(default_responsible_user_id=424242)
    page = staff.get(reverse("admin:amocrm_account_change", args=[account_with_metadata.pk])).content.decode()
    assert "424242 (not in the cached amoCRM metadata" in page


def test_the_lead_list_and_page_show_stage_and_manager_by_name(staff, source):
    lead = make_lead(source, name="Placed", pipeline_id=PIPELINE, stage_id=SECOND_STAGE, responsible_user_id=USER,
                     amocrm_contact_id=7001)
    make_lead(source, name="Unknown stage", pipeline_id=PIPELINE, stage_id=55555)
    page = staff.get(LEADS).content.decode()
    assert "Talks (1003)" in page and "Anna (5)" in page
    assert "55555" in page and "Sync metadata" in page
    detail = staff.get(reverse("admin:leads_lead_change", args=[lead.pk])).content.decode()
    assert "Sales (777)" in detail and "Talks (1003)" in detail and "Anna (5)" in detail
    assert '<a href="http://sandbox.test/contacts/detail/7001" target="_blank" rel="noopener">Placed (7001)</a>' \
        in detail


@pytest.mark.parametrize(("query", "shown", "hidden"), [
    ({"stage": f"{PIPELINE}:{SECOND_STAGE}"}, "In talks", "Partner lead"),
    ({"pipeline": "888"}, "Partner lead", "In talks"),
    ({"manager": str(USER)}, "In talks", "Partner lead"),
])
def test_the_lead_list_filters_by_pipeline_stage_and_manager(staff, source, query, shown, hidden):
    make_lead(source, name="In talks", pipeline_id=PIPELINE, stage_id=SECOND_STAGE, responsible_user_id=USER)
    make_lead(source, name="Partner lead", pipeline_id=888, stage_id=2002, responsible_user_id=6)
    page = staff.get(LEADS).content.decode()
    assert "Sales → Talks" in page and "Boris" in page  # the filter choices are names
    filtered = staff.get(LEADS, query).content.decode()
    assert shown in filtered and hidden not in filtered


def test_the_sale_list_and_page_show_stage_and_manager_by_name(staff, account_with_metadata):
    pipeline = account_with_metadata.pipelines.get(amocrm_id=PIPELINE)
    Stage.objects.create(pipeline=pipeline, amocrm_id=142, name="Won", sort=90)
    sale = Sale.objects.create(account=account_with_metadata, amocrm_deal_id=9001, name="Big deal", amount=45000,
                               currency="RUB", won_at=timezone.now(), pipeline_id=PIPELINE, stage_id=142,
                               responsible_user_id=6)
    page = staff.get(SALES).content.decode()
    assert "Won (142)" in page and "Boris (6)" in page
    assert "Big deal" in staff.get(SALES, {"manager": "6"}).content.decode()
    assert "Big deal" not in staff.get(SALES, {"manager": str(USER)}).content.decode()
    detail = staff.get(reverse("admin:sales_sale_change", args=[sale.pk])).content.decode()
    assert "Sales (777)" in detail and "Won (142)" in detail and "Boris (6)" in detail


def test_the_lead_list_shows_the_reason_and_the_next_try(staff, source):
    from datetime import timedelta

    from leads.models import Lead
    make_lead(source, name="Backing off", last_error="amoCRM answered 503.",
              next_attempt_at=timezone.now() + timedelta(minutes=10))
    make_lead(source, name="Given up", status=Lead.Status.FAILED,
              last_error="Gave up after 8 attempts: amoCRM answered 503.")
    page = staff.get(LEADS).content.decode()
    assert "amoCRM had a temporary failure on its side." in page and "Next try at" in page
    assert "Sending failed again and again, so it was stopped." in page


def test_a_new_account_is_added_before_any_metadata_exists(staff):
    add = reverse("admin:amocrm_account_add")
    page = staff.get(add).content.decode()
    assert "Nothing to choose from yet" in page
    response = staff.post(add, {"name": "New shop", "client_id": "cid", "client_secret": "secret",
                                "redirect_uri": "https://crm.example.com/amocrm/oauth/callback/", "host": "",
                                "token-TOTAL_FORMS": "0", "token-INITIAL_FORMS": "0", "token-MIN_NUM_FORMS": "0",
                                "token-MAX_NUM_FORMS": "0"})
    assert response.status_code == 302
    account = Account.objects.get(name="New shop")
    assert account.won_stages == [] and account.default_pipeline_id is None
