"""The sales admin: list with totals for the current filter, re-read action, report page and CSV export."""

import csv
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
import responses
from django.urls import reverse
from django.utils import timezone

from sales.models import Sale
from tests.factories import HOST, make_account
from tests.sales.builders import AMO_ACCOUNT_ID, api_deal, make_lead

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]

LIST = "admin:sales_sale_changelist"
REPORT = "admin:sales_sale_report"
REPORT_CSV = "admin:sales_sale_report_csv"


def days_ago(days: int) -> datetime:
    return timezone.now() - timedelta(days=days)


def make_sale(account, deal_id, *, amount, lead=None, state=Sale.State.WON, won_at=None, currency="RUB"):
    return Sale.objects.create(account=account, amocrm_deal_id=deal_id, lead=lead, amount=Decimal(amount),
                               currency=currency, state=state, won_at=won_at or days_ago(1), name=f"Deal {deal_id}",
                               attribution=Sale.Attribution.DEAL if lead else Sale.Attribution.NONE)


@pytest.fixture
def campaigns(account):
    """Spring: 3 leads, 2 won (100 000 + 50 000); autumn: 1 lead, won then reverted; one sale of nobody's."""
    spring = [make_lead(account, deal_id=100 + i, utm_source="google", utm_campaign="spring", created_at=days_ago(5))
              for i in range(3)]
    autumn = make_lead(account, deal_id=200, utm_source="yandex", utm_campaign="autumn", created_at=days_ago(5))
    make_lead(account, utm_source="google", utm_campaign="spring", created_at=days_ago(90))  # outside the period
    make_sale(account, 100, amount="100000", lead=spring[0])
    make_sale(account, 101, amount="50000", lead=spring[1])
    make_sale(account, 200, amount="70000", lead=autumn, state=Sale.State.REVERTED)
    make_sale(account, 300, amount="9000")
    make_sale(account, 400, amount="1", lead=spring[2], won_at=days_ago(60))  # won before the period
    return spring, autumn


def report_url(**params):
    from urllib.parse import urlencode

    return reverse(REPORT) + "?" + urlencode(params)


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_deal_links_amounts_and_utms(admin_client, campaigns):
    page = admin_client.get(reverse(LIST)).content.decode()

    assert f'href="{HOST}/leads/detail/100"' in page
    assert "RUB100,000.00" in page  # money as the page's language writes it (config/formats.py)
    assert "spring" in page and "yandex" in page
    assert "Report by campaign" in page


def test_the_totals_follow_the_current_filter(admin_client, campaigns):
    everything = admin_client.get(reverse(LIST)).context["sale_totals"]
    assert everything.rows == 5
    assert [(t.currency, t.count, t.amount) for t in everything.won] == [("RUB", 4, Decimal("159001"))]

    spring = admin_client.get(reverse(LIST), {"lead__utm_campaign": "spring"}).context["sale_totals"]
    assert [(t.count, t.amount) for t in spring.won] == [(3, Decimal("150001"))]

    reverted = admin_client.get(reverse(LIST), {"state__exact": "reverted"})
    assert reverted.context["sale_totals"].won == []
    assert "none won" in reverted.content.decode()


def test_the_totals_are_per_currency(admin_client, account):
    make_sale(account, 1, amount="10", currency="RUB")
    make_sale(account, 2, amount="20", currency="USD")

    totals = admin_client.get(reverse(LIST)).context["sale_totals"]

    assert [(t.currency, t.amount) for t in totals.won] == [("RUB", Decimal("10")), ("USD", Decimal("20"))]


def test_the_list_has_a_date_hierarchy_and_a_detail_page(admin_client, campaigns):
    year = timezone.now().year
    assert admin_client.get(reverse(LIST), {"won_at__year": year}).status_code == 200
    sale = Sale.objects.get(amocrm_deal_id=100)

    page = admin_client.get(reverse("admin:sales_sale_change", args=[sale.pk])).content.decode()

    assert "Deal 100" in page and "RUB100,000.00" in page


def test_sales_cannot_be_added_edited_or_deleted_by_hand(admin_client, campaigns):
    sale = Sale.objects.get(amocrm_deal_id=100)
    assert admin_client.get(reverse("admin:sales_sale_add")).status_code == 403
    assert admin_client.post(reverse("admin:sales_sale_delete", args=[sale.pk]), {"post": "yes"}).status_code == 403
    assert Sale.objects.filter(pk=sale.pk).exists()


def test_the_reread_action_applies_the_deal_as_amocrm_has_it_now(admin_client, account):
    sale = make_sale(account, 9001, amount="100")
    with responses.RequestsMock() as amo:
        amo.get(f"{HOST}/api/v4/leads/9001", json=api_deal(9001, price=250, status_id=143, updated_at=1700009000))
        response = admin_client.post(reverse(LIST), {"action": "action_refresh", "_selected_action": [sale.pk]},
                                     follow=True)

    assert "Deal #9001: reverted." in response.content.decode()
    sale.refresh_from_db()
    assert sale.state == Sale.State.REVERTED


def test_the_reread_action_reports_a_failure(admin_client, account):
    sale = make_sale(account, 9001, amount="100")
    with responses.RequestsMock() as amo:
        amo.get(f"{HOST}/api/v4/leads/9001", status=503)
        response = admin_client.post(reverse(LIST), {"action": "action_refresh", "_selected_action": [sale.pk]},
                                     follow=True)

    assert "Deal #9001: re-read failed" in response.content.decode()
    sale.refresh_from_db()
    assert sale.state == Sale.State.WON


# --- The report -------------------------------------------------------------------------------


def rows_of(response):
    return {line["row"].label: line["row"] for line in response.context["table"]}


def test_the_report_groups_revenue_sales_and_conversion_by_campaign(admin_client, campaigns):
    response = admin_client.get(report_url(group_by="utm_campaign"))

    assert response.status_code == 200
    rows = rows_of(response)
    spring, autumn, nobody, total = rows["spring"], rows["autumn"], rows["(not attributed)"], rows["Total"]
    assert (spring.leads, spring.converted, spring.conversion, spring.sales) == (3, 3, 100.0, 2)
    assert spring.revenue == {"RUB": Decimal("150000")}
    assert (autumn.leads, autumn.converted, autumn.conversion, autumn.sales, autumn.revenue) == (1, 0, 0.0, 0, {})
    assert (nobody.leads, nobody.sales, nobody.revenue, nobody.conversion) == (0, 1, {"RUB": Decimal("9000")}, None)
    assert (total.leads, total.sales, total.revenue) == (4, 3, {"RUB": Decimal("159000")})
    # Ordered by revenue, biggest first.
    assert [line["row"].label for line in response.context["table"]] == [
        "spring", "(not attributed)", "autumn", "Total"]


def test_the_report_draws_an_inline_svg_chart_without_scripts(admin_client, campaigns):
    response = admin_client.get(report_url(group_by="utm_campaign"))
    page = response.content.decode()

    bars = response.context["chart"]["bars"]
    assert [(bar["label"], bar["width"]) for bar in bars] == [("spring", 560.0), ("(not attributed)", 33.6),
                                                                ("autumn", 0.0)]
    assert "<svg" in page and 'width="560.0"' in page and "150 000.00" in page
    # No script of the report's own: after the content starts, only the theme's static files (unfold's page end).
    scripts = re.findall(r"<script\b[^>]*>", page.split('id="content-main"')[1])
    assert all(re.fullmatch(r'<script src="/static/unfold/[^"]+\.js">', script) for script in scripts), scripts


@pytest.mark.parametrize("group_by, label, expected", [
    ("utm_source", "google", (3, 2, Decimal("150000"))),
    ("lead_source", "Site form", (4, 2, Decimal("150000"))),
])
def test_the_report_groups_by_utm_source_or_lead_source(admin_client, campaigns, group_by, label, expected):
    row = rows_of(admin_client.get(report_url(group_by=group_by)))[label]

    assert (row.leads, row.sales, row.revenue["RUB"]) == expected


def test_the_report_covers_only_the_period_asked_for(admin_client, campaigns):
    today = timezone.localdate()
    rows = rows_of(admin_client.get(report_url(group_by="utm_campaign", date_from=today - timedelta(days=70),
                                               date_to=today - timedelta(days=30))))

    assert (rows["spring"].leads, rows["spring"].sales, rows["spring"].revenue) == (0, 1, {"RUB": Decimal("1")})


def test_the_report_can_be_limited_to_one_account(admin_client, campaigns, account):
    other = make_account(host="http://other.sandbox.test", amocrm_account_id=999, name="Other")
    make_sale(other, 100, amount="5")

    rows = rows_of(admin_client.get(report_url(group_by="utm_campaign", account=account.pk)))

    assert rows["Total"].revenue == {"RUB": Decimal("159000")}


def test_the_report_explains_an_invalid_period(admin_client, campaigns):
    response = admin_client.get(report_url(date_from="2025-02-01", date_to="2025-01-01"))

    assert response.status_code == 200
    assert response.context["report"] is None
    assert "The period ends before it starts." in response.content.decode()


def test_the_report_escapes_campaign_names(admin_client, account):
    lead = make_lead(account, deal_id=1, utm_campaign="<img src=x onerror=alert(1)>", created_at=days_ago(1))
    make_sale(account, 1, amount="10", lead=lead)

    page = admin_client.get(report_url(group_by="utm_campaign")).content.decode()

    assert "<img src=x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page


def test_the_csv_export_has_the_reports_rows(admin_client, campaigns):
    response = admin_client.get(reverse(REPORT_CSV), {"group_by": "utm_campaign"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment; filename=\"sales-by-utm_campaign-" in response["Content-Disposition"]
    assert response.content.startswith("\ufeff".encode())  # Excel reads UTF-8 only with the BOM
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows == [
        ["UTM campaign", "Leads", "Deals", "Won leads", "Lost leads", "Conversion, %", "Sales", "Revenue (RUB)",
         "Average deal (RUB)", "Cost (RUB)", "Cost per lead (RUB)", "Cost per sale (RUB)", "ROMI, %",
         "Ad cost share of revenue (ACoS), %", "Median days to win", "Top loss reasons"],
        ["spring", "3", "3", "3", "0", "100.0", "2", "150000.00", "75000.00", "0.00", "", "", "", "", "4.0", ""],
        ["(not attributed)", "0", "0", "0", "0", "", "1", "9000.00", "9000.00", "0.00", "", "", "", "", "", ""],
        ["autumn", "1", "1", "0", "0", "0.0", "0", "0.00", "", "0.00", "", "", "", "", "", ""],
        ["Total", "4", "4", "3", "0", "75.0", "3", "159000.00", "53000.00", "0.00", "", "", "", "", "", ""],
    ]


def test_the_csv_export_defuses_spreadsheet_formulas_from_visitors(admin_client, account):
    lead = make_lead(account, deal_id=1, utm_campaign='=HYPERLINK("http://evil")', created_at=days_ago(1))
    make_sale(account, 1, amount="10", lead=lead)

    rows = list(csv.reader(io.StringIO(admin_client.get(reverse(REPORT_CSV), {"group_by": "utm_campaign"})
                                       .content.decode("utf-8-sig"))))

    assert rows[1][0] == "'=HYPERLINK(\"http://evil\")"


def test_the_csv_export_refuses_an_invalid_period(admin_client):
    response = admin_client.get(reverse(REPORT_CSV), {"date_from": "2025-02-01", "date_to": "2025-01-01"})

    assert response.status_code == 400


def test_the_report_is_for_staff_only(client, campaigns):
    response = client.get(reverse(REPORT))
    assert response.status_code == 302 and "/login/" in response["Location"]
    assert client.get(reverse(REPORT_CSV)).status_code == 302


# --- Who may re-read ----------------------------------------------------------------------------


def staff_with(django_user_model, username, *perms):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw", is_staff=True)
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


def test_a_view_only_user_can_neither_see_nor_run_the_reread_action(client, django_user_model, account):
    client.force_login(staff_with(django_user_model, "viewer", "sales.view_sale"))
    sale = make_sale(account, 9001, amount="100")

    assert 'value="action_refresh"' not in client.get(reverse(LIST)).content.decode()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as amo:
        amo.get(f"{HOST}/api/v4/leads/9001", json=api_deal(9001, price=250, status_id=143, updated_at=1700009000))
        response = client.post(reverse(LIST), {"action": "action_refresh", "_selected_action": [sale.pk]},
                               follow=True)
        assert len(amo.calls) == 0

    assert "Deal #9001" not in response.content.decode()
    sale.refresh_from_db()
    assert (sale.state, sale.amount) == (Sale.State.WON, Decimal("100"))


def test_an_operator_with_the_reread_permission_may_reread(client, django_user_model, account):
    client.force_login(staff_with(django_user_model, "operator", "sales.view_sale", "sales.reread_sale"))
    sale = make_sale(account, 9001, amount="100")

    assert 'value="action_refresh"' in client.get(reverse(LIST)).content.decode()
    with responses.RequestsMock() as amo:
        amo.get(f"{HOST}/api/v4/leads/9001", json=api_deal(9001, price=250, status_id=143, updated_at=1700009000))
        response = client.post(reverse(LIST), {"action": "action_refresh", "_selected_action": [sale.pk]},
                               follow=True)

    assert "Deal #9001: reverted." in response.content.decode()
    sale.refresh_from_db()
    assert sale.state == Sale.State.REVERTED


# --- Report parameters --------------------------------------------------------------------------

BAD_REPORT_PARAMETERS = [
    pytest.param({"date_to": "9999-12-31"}, id="the-last-date-python-knows"),
    pytest.param({"date_from": "0001-01-01"}, id="the-first-date-python-knows"),
    pytest.param({"date_from": "0001-01-01", "date_to": "9999-12-31"}, id="everything"),
    pytest.param({"date_from": "1999-12-31", "date_to": "2000-01-31"}, id="before-2000"),
    pytest.param({"date_from": "2101-01-01", "date_to": "2101-01-31"}, id="after-2100"),
    pytest.param({"date_from": "2000-01-01", "date_to": "2100-12-31"}, id="a-century"),
    pytest.param({"date_from": "garbage", "date_to": "2025-13-45"}, id="garbage"),
    pytest.param({"date_from": "2025-02-01", "date_to": "2025-01-01"}, id="reversed"),
    pytest.param({"group_by": "password"}, id="unknown-grouping"),
    pytest.param({"account": "abc"}, id="account-not-a-number"),
    pytest.param({"account": "99999999999999999999999"}, id="account-out-of-range"),
]


@pytest.mark.parametrize("params", BAD_REPORT_PARAMETERS)
def test_the_report_explains_bad_parameters_on_the_page(admin_client, account, params):
    response = admin_client.get(report_url(group_by="utm_campaign", **params) if "group_by" not in params
                                else report_url(**params))

    assert response.status_code == 200
    assert response.context["report"] is None
    assert response.context["form"].errors
    assert 'class="errorlist' in response.content.decode()


@pytest.mark.parametrize("params", BAD_REPORT_PARAMETERS)
def test_the_csv_export_refuses_bad_parameters_with_400(admin_client, account, params):
    response = admin_client.get(reverse(REPORT_CSV), params)

    assert response.status_code == 400
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "<" not in response.content.decode()  # plain words, not an HTML error list


def test_the_report_accepts_a_period_of_a_few_years(admin_client, campaigns):
    today = timezone.localdate()
    response = admin_client.get(report_url(group_by="utm_campaign", date_from=today.replace(year=today.year - 3),
                                           date_to=today))

    assert response.status_code == 200
    assert rows_of(response)["Total"].revenue == {"RUB": Decimal("159001")}


def test_the_report_selector_refuses_a_period_outside_its_range():
    from datetime import date

    from sales import report, selectors

    with pytest.raises(selectors.ReportPeriodError):
        report.sales_report(date_from=date(2025, 1, 1), date_to=date(9999, 12, 31), group_by="utm_campaign")


def test_the_list_writes_money_and_totals_in_russian_for_a_russian_reader(admin_client, campaigns):
    page = admin_client.get(reverse(LIST), HTTP_ACCEPT_LANGUAGE="ru").content.decode()

    assert '<span style="white-space:nowrap">100\xa0000,00\xa0₽</span>' in page
    assert "Итого по выборке:" in page


def test_a_sale_is_named_by_its_state_label_in_the_operators_language(account):
    from django.utils import translation

    sale = make_sale(account, 7, amount="100")
    with translation.override("ru"):
        assert str(sale) == "Deal 7 #7 (Выиграна)"
        sale.name = ""
        assert str(sale) == "сделка #7 (Выиграна)"


def test_a_lost_deal_page_names_its_pipeline(account, admin_client):
    from amocrm.models import Pipeline
    from sales.models import DealLoss

    Pipeline.objects.create(account=account, amocrm_id=777, name="Продажи")
    loss = DealLoss.objects.create(account=account, amocrm_deal_id=3, pipeline_id=777, loss_reason="Дорого")

    page = admin_client.get(reverse("admin:sales_dealloss_change", args=[loss.pk])).content.decode()

    assert "Продажи (777)" in page and "pipeline id" not in page.lower()


def test_the_reread_action_reports_in_the_operators_language(admin_client, account):
    sale = make_sale(account, 9001, amount="100")
    with responses.RequestsMock() as amo:
        amo.get(f"{HOST}/api/v4/leads/9001", json=api_deal(9001, price=250, status_id=143, updated_at=1700009000))
        response = admin_client.post(reverse(LIST), {"action": "action_refresh", "_selected_action": [sale.pk]},
                                     follow=True, headers={"accept-language": "ru"})

    assert "Сделка #9001: отменена." in response.content.decode()


def test_the_report_without_a_period_selects_the_period_it_shows(admin_client, campaigns):
    response = admin_client.get(reverse(REPORT))

    today = timezone.localdate()
    assert (response.context["report"].date_from, response.context["report"].date_to) == (
        today - timedelta(days=29), today)
    assert '<option value="30d" selected>' in response.content.decode()
    dates_only = admin_client.get(report_url(date_from=today - timedelta(days=3), date_to=today))
    assert '<option value="custom" selected>' in dates_only.content.decode()
