"""The sync log, webhook and sales lists at volume: no big columns, no DISTINCT, capped counts, cheap dates."""

import re
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from amocrm.admin.logs import SYNC_LOG_OPERATIONS
from amocrm.models import SyncLog, WebhookEvent
from config import admin_paging
from config.admin_paging import EstimatedCountPaginator, period_starts
from leads.models import Lead, LeadSource
from sales.models import Sale

pytestmark = pytest.mark.django_db

SYNC_LOG = reverse("admin:amocrm_synclog_changelist")
WEBHOOKS = reverse("admin:amocrm_webhookevent_changelist")
SALES = reverse("admin:sales_sale_changelist")


def log(account, operation="leads.complex", **fields):
    return SyncLog.objects.create(account=account, operation=operation, status=SyncLog.Status.OK,
                                  request_body='{"big": "request"}', response_body='{"big": "response"}', **fields)


def choices(response, title: str) -> list[str]:
    changelist = response.context["cl"]
    spec = next(spec for spec in changelist.filter_specs if str(spec.title) == title)
    return [str(choice["display"]) for choice in spec.choices(changelist)][1:]  # after "All"


def sqls(queries) -> list[str]:
    return [query["sql"] for query in queries.captured_queries]


def test_the_operation_filter_offers_known_and_recent_operations_without_distinct_over_the_log(staff, account):
    log(account, "leads.complex")
    log(account, "custom.operation")
    with CaptureQueriesContext(connection) as queries:
        response = staff.get(SYNC_LOG)
    offered = choices(response, "operation")
    assert set(SYNC_LOG_OPERATIONS) <= set(offered) and "custom.operation" in offered
    assert offered == sorted(offered)
    assert not [sql for sql in sqls(queries) if "DISTINCT" in sql]
    page = staff.get(SYNC_LOG, {"operation": "custom.operation"}).content.decode()
    assert page.count("custom.operation") > page.count("leads.complex")


def test_the_sync_log_list_selects_no_bodies_and_counts_at_most_the_cap(staff, account):
    log(account)
    with CaptureQueriesContext(connection) as queries:
        assert staff.get(SYNC_LOG).status_code == 200
    listed = [sql for sql in sqls(queries) if 'FROM "amocrm_synclog"' in sql and "COUNT(" not in sql]
    assert listed and not [sql for sql in listed if "request_body" in sql or "response_body" in sql]
    counts = [sql for sql in sqls(queries) if "COUNT(" in sql]
    assert counts and all("LIMIT 1001" in sql for sql in counts)


def test_the_date_hierarchy_offers_the_months_with_rows_without_distinct(staff, account):
    year = timezone.localtime().year - 1  # a whole year in the past: every month of it is over
    tz = timezone.get_current_timezone()
    for month in (3, 7):
        log(account, created_at=timezone.make_aware(timezone.datetime(year, month, 15, 12), tz))
    with CaptureQueriesContext(connection) as queries:
        response = staff.get(SYNC_LOG, {"created_at__year": year})
    assert response.status_code == 200
    assert not [sql for sql in sqls(queries) if "DISTINCT" in sql]
    assert {int(month) for month in re.findall(r"created_at__month=(\d+)", response.content.decode())} == {3, 7}


def test_period_starts_cover_every_year_month_and_day_between_two_moments():
    tz = timezone.get_current_timezone()
    first = timezone.make_aware(timezone.datetime(2025, 11, 30, 23, 0), tz)
    last = timezone.make_aware(timezone.datetime(2026, 2, 1, 1, 0), tz)
    assert [(s.year, s.month) for s in period_starts(first, last, "month")] == [(2025, 11), (2025, 12), (2026, 1),
                                                                                  (2026, 2)]
    assert [s.year for s in period_starts(first, last, "year")] == [2025, 2026]
    assert len(period_starts(first, last, "day")) == 64


def test_the_webhook_list_loads_no_body_or_parsed_json_and_still_summarises_the_events(staff, account):
    WebhookEvent.objects.create(account=account, body=b"leads[status][0][id]=1" * 1000, body_sha256="a" * 64,
                                parsed={"leads": {"status": [{"id": "1"}], "update": [{"id": "1"}]},
                                        "account": {"id": "1"}}, headers={"User-Agent": "amoCRM"})
    WebhookEvent.objects.create(account=account, body=b"not a form", body_sha256="b" * 64, parsed=None,
                                state=WebhookEvent.State.REJECTED)
    WebhookEvent.objects.create(account=account, body=b"[]", body_sha256="c" * 64, parsed=["odd"])
    with CaptureQueriesContext(connection) as queries:
        page = staff.get(WEBHOOKS).content.decode()
    assert "leads.status, leads.update" in page
    # nothing parsed, or not an object (the theme's cell: <td class="field-summary …" data-label="…">—</td>)
    assert len(re.findall(r'<td class="field-summary\b[^>]*>—</td>', page)) == 2
    listed = [sql for sql in sqls(queries) if 'FROM "amocrm_webhookevent"' in sql and "COUNT(" not in sql]
    assert listed
    for column in ("body", "parsed", "headers", "item_errors"):
        assert not [sql for sql in listed if f'"amocrm_webhookevent"."{column}"' in sql], column


def test_the_sales_utm_filters_offer_the_values_of_recent_sales_leads(staff, account):
    source = LeadSource.objects.create(account=account, name="Form")
    for deal_id, utm_source, campaign in ((1, "google", "spring"), (2, "vk", "autumn")):
        lead = Lead.objects.create(account=account, source=source, name=f"Lead {deal_id}", utm_source=utm_source,
                                   utm_campaign=campaign, amocrm_deal_id=deal_id)
        Sale.objects.create(account=account, amocrm_deal_id=deal_id, lead=lead, amount=Decimal(100),
                            won_at=timezone.now(), name=f"Deal {deal_id}")
    Lead.objects.create(account=account, source=source, name="Never sold", utm_source="telegram")
    with CaptureQueriesContext(connection) as queries:
        response = staff.get(SALES)
    assert choices(response, "UTM source") == ["google", "vk"]
    assert choices(response, "UTM campaign") == ["autumn", "spring"]
    assert not [sql for sql in sqls(queries) if "DISTINCT" in sql]
    page = staff.get(SALES, {"lead__utm_campaign": "autumn"}).content.decode()
    assert "Deal 2" in page and "Deal 1" not in page


def test_the_paginator_counts_up_to_the_cap_and_estimates_beyond(account, monkeypatch):
    monkeypatch.setattr(admin_paging, "COUNT_CAP", 3)
    for _ in range(5):
        log(account)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE amocrm_synclog")
    assert EstimatedCountPaginator(SyncLog.objects.filter(operation="other"), 100).count == 0
    beyond = EstimatedCountPaginator(SyncLog.objects.filter(operation="leads.complex"), 100).count
    assert beyond >= 4  # past the cap: the planner's estimate, never less than what was counted
    unfiltered = EstimatedCountPaginator(SyncLog.objects.all(), 100).count
    assert unfiltered == 5  # pg_class knows 5 rows after ANALYZE: the estimate, no count at all
