"""The admin's home page: each account's numbers, the problems that need a person with their links, cheap queries."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone, translation

from amocrm.models import Account, SyncLog, WebhookEvent
from config.dashboard import dashboard
from leads.models import Lead, LeadSource
from monitoring.models import AlertRule, Incident
from sales.models import Sale
from tests.factories import make_account

pytestmark = [pytest.mark.django_db, pytest.mark.account(name="Shop")]


def _lead(account, *, status=Lead.Status.SENT, created_at=None):
    source = LeadSource.objects.filter(account=account).first() or LeadSource.objects.create(
        account=account, name="Form")
    return Lead.objects.create(source=source, account=account, phone="+79123456789", status=status,
                               created_at=created_at or timezone.now())


def _sale(account, deal_id, amount, *, won_at=None, state=Sale.State.WON):
    return Sale.objects.create(account=account, amocrm_deal_id=deal_id, amount=Decimal(amount), currency="RUB",
                               won_at=won_at or timezone.now(), state=state)


def test_the_summary_counts_todays_leads_pending_failed_and_this_months_sales(account):
    now = timezone.now()
    _lead(account)
    _lead(account, status=Lead.Status.PENDING, created_at=now - timedelta(minutes=30))
    _lead(account, status=Lead.Status.FAILED)
    _lead(account, created_at=now - timedelta(days=40))  # not today
    _sale(account, 1, "45000")
    _sale(account, 2, "5000.50")
    _sale(account, 3, "999", state=Sale.State.REVERTED)  # not revenue
    _sale(account, 4, "777", won_at=now - timedelta(days=40))  # an earlier month
    SyncLog.objects.create(account=account, operation="leads.complex", status=SyncLog.Status.OK)
    WebhookEvent.objects.create(account=account, body=b"x", body_sha256="0" * 64)

    (row,) = dashboard(now=timezone.now())["accounts"]

    assert (row.leads_today, row.pending, row.failed) == (3, 1, 1)
    assert now - timedelta(minutes=31) < row.oldest_pending_at < now - timedelta(minutes=29)
    assert row.sales == 2
    assert row.revenue == [(Decimal("50000.50"), "RUB")]
    assert row.last_push_at is not None and row.last_webhook_at is not None
    assert row.health == "connected"


def test_problems_name_the_account_say_what_to_do_and_link_to_the_page_that_fixes_it(account):
    broken = make_account(name="Old shop", state=Account.State.NEEDS_REAUTH, amocrm_account_id=31000002,
                          host="http://old.sandbox.test")
    _lead(account, status=Lead.Status.FAILED)
    _lead(account, status=Lead.Status.FAILED)
    rule = AlertRule.objects.get(kind=AlertRule.Kind.WEBHOOK_SILENT)  # the rules come with the migrations
    Incident.objects.create(rule=rule, subject_key=f"account:{account.pk}", subject="Shop", account=account,
                            details={"hours": 6}, admin_path=f"/admin/amocrm/account/{account.pk}/change/")
    Incident.objects.create(rule=AlertRule.objects.get(kind=AlertRule.Kind.ACCOUNT_REAUTH),
                            subject_key=f"account:{broken.pk}", subject="Old shop", account=broken,
                            admin_path=f"/admin/amocrm/account/{broken.pk}/change/")

    with translation.override("en"):
        problems = dashboard(now=timezone.now())["problems"]

    by_url = {problem.url: problem for problem in problems}
    reauth = by_url[f"/admin/amocrm/account/{broken.pk}/change/"]
    assert reauth.subject == "Old shop" and "Connect" in reauth.todo
    failed = by_url[f"/admin/leads/lead/?account__id__exact={account.pk}&status__exact=failed"]
    assert failed.subject == "Shop" and failed.what.startswith("2 leads failed")
    silent = by_url[f"/admin/amocrm/account/{account.pk}/change/"]
    assert "No webhook arrived for 6 hours" in silent.what and "Subscribe webhook" in silent.todo
    # The re-authorization incident says what the account's own problem already says: listed once.
    assert len(problems) == 3


def test_the_index_page_shows_the_dashboard_in_russian(account, admin_client):
    _lead(account, status=Lead.Status.FAILED)
    _sale(account, 1, "45000")

    response = admin_client.get("/admin/", HTTP_ACCEPT_LANGUAGE="ru")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Требует внимания" in html and "Заявок сегодня" in html
    assert "45\xa0000,00\xa0₽" in html
    assert f'href="/admin/amocrm/account/{account.pk}/change/"' in html
    assert "Интеграция с amoCRM" in html


def test_the_links_open_filtered_lists(account, admin_client):
    (row,) = dashboard(now=timezone.now())["accounts"]

    for url in (row.leads_today_url, row.pending_url, row.failed_url, row.sales_url):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert "?e=1" not in response.get("Location", ""), url  # the admin accepted the filter


def test_a_user_without_account_permission_sees_no_numbers(account, client, django_user_model):
    staff = django_user_model.objects.create_user("clerk", password="pw", is_staff=True)
    client.force_login(staff)

    response = client.get("/admin/")

    assert response.status_code == 200
    assert "dashboard-accounts" not in response.content.decode()


def test_the_query_count_does_not_grow_with_leads(account):
    for _ in range(3):
        _lead(account)

    with CaptureQueriesContext(connection) as few:
        dashboard(now=timezone.now())
    for _ in range(20):
        _lead(account, status=Lead.Status.PENDING)
    with CaptureQueriesContext(connection) as many:
        dashboard(now=timezone.now())

    assert len(many) == len(few)
    for query in many.captured_queries:
        sql = query["sql"]
        # Leads are read through a time or outbox bound only: never a count over the whole table.
        if 'FROM "leads_lead"' in sql and "COUNT" in sql:
            assert '"leads_lead"."created_at" >=' in sql or '"leads_lead"."status" IN' in sql, sql


def test_a_paused_account_is_listed_with_where_to_resume_it(account):
    Account.objects.filter(pk=account.pk).update(sending_paused_at=timezone.now())  # the account page's Pause
    _lead(account, status=Lead.Status.PENDING)

    with translation.override("en"):
        (problem,) = dashboard(now=timezone.now())["problems"]

    assert problem.subject == "Shop" and "paused" in problem.what and "Resume" in problem.todo
    assert problem.url == f"/admin/amocrm/account/{account.pk}/change/"
