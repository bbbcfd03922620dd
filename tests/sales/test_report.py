"""The sales report on a fixture of journeys: figures computed by hand, first vs last touch, the CLI, CSV, rights."""

import csv
import io
import json
import re
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.urls import reverse

from amocrm.models import AmoUser, Pipeline, Stage
from leads.models import Lead
from sales import report_output
from sales.models import AdSpend, DealLoss, Sale
from sales.report import sales_report
from tests.sales.builders import make_lead
from tests.sales.test_admin import staff_with

pytestmark = pytest.mark.django_db

MARCH = {"date_from": date(2026, 3, 1), "date_to": date(2026, 3, 31)}
TZ = ZoneInfo("Europe/Moscow")


def at(day: int) -> datetime:
    return datetime(2026, 3, day, 12, 0, tzinfo=TZ)


def journey(account, deal_id, *, first: tuple[str, str, str], last: tuple[str, str, str], stage=None,
            manager=None, **fields) -> Lead:
    return make_lead(account, deal_id=deal_id, created_at=at(1), utm_source=last[0], utm_campaign=last[2],
                     utm_medium=last[1], first_utm_source=first[0], first_utm_medium=first[1],
                     first_utm_campaign=first[2], pipeline_id=777 if stage else None, stage_id=stage,
                     responsible_user_id=manager, **fields)


def win(account, lead, amount, day, manager):
    return Sale.objects.create(account=account, amocrm_deal_id=lead.amocrm_deal_id, lead=lead, amount=Decimal(amount),
                               currency="RUB", won_at=at(day), responsible_user_id=manager, pipeline_id=777,
                               stage_id=142, attribution=Sale.Attribution.DEAL)


BRAND = ("google", "cpc", "brand")
RETARGET = ("yandex", "cpc", "retarget")
PROMO = ("vk", "social", "promo")


@pytest.fixture
def journeys(account, settings):
    """Five real leads and one spam lead of March 2026 (see each line), the pipeline's stages, spend and a loss."""
    settings.TIME_ZONE = "Europe/Moscow"
    pipeline = Pipeline.objects.create(account=account, amocrm_id=777, name="Продажи", is_main=True)
    for amocrm_id, name, sort in [(10, "Новая", 10), (20, "Переговоры", 20), (142, "Успешно", 10000),
                                  (143, "Закрыто и не реализовано", 11000)]:
        Stage.objects.create(pipeline=pipeline, amocrm_id=amocrm_id, name=name, sort=sort)
    AmoUser.objects.create(account=account, amocrm_id=4040, name="Ирина")
    one = journey(account, 1, first=BRAND, last=RETARGET, stage=142, manager=4040)  # won 100 000 after 10 days
    journey(account, 2, first=BRAND, last=BRAND, stage=20, manager=4040)  # in talks
    three = journey(account, 3, first=PROMO, last=RETARGET, stage=143, manager=4040)  # lost: too expensive
    four = journey(account, 4, first=("", "", ""), last=RETARGET, stage=142, manager=5050)  # won 50 000 after 20 days
    journey(account, None, first=BRAND, last=BRAND)  # no deal yet
    spam = journey(account, 6, first=BRAND, last=RETARGET, stage=142)  # spam: never counted
    Lead.objects.filter(pk=spam.pk).update(status=Lead.Status.SPAM)
    win(account, one, "100000", 11, 4040)
    win(account, four, "50000", 21, 5050)
    DealLoss.objects.create(account=account, amocrm_deal_id=3, lead=three, loss_reason="Дорого", lost_at=at(9))
    for (source, medium, campaign), cost in [(BRAND, "30000"), (RETARGET, "60000"), (PROMO, "5000")]:
        AdSpend.objects.create(day=date(2026, 3, 5), utm_source=source, utm_medium=medium, utm_campaign=campaign,
                               cost=Decimal(cost), currency="RUB")
    AdSpend.objects.create(day=date(2026, 4, 1), utm_source="yandex", utm_medium="cpc", utm_campaign="retarget",
                           cost=Decimal("999"), currency="RUB")  # April: outside the period


def rows(report) -> dict:
    return {record["group"]: record for record in report_output.report_records(report)}


def test_last_touch_by_campaign_carries_every_measure(journeys):
    report = sales_report(**MARCH, group_by="utm_campaign", attribution="last")
    by = rows(report)

    assert [row.label for row in report.rows] == ["retarget", "brand", "promo"]
    assert by["retarget"] == {
        "group": "retarget", "leads": 3, "deals": 3, "won": 2, "lost": 1, "conversion": 66.7, "sales": 2,
        "revenue": Decimal("150000"), "average_deal": Decimal("75000.00"), "cost": Decimal("60000"),
        "cost_per_lead": Decimal("20000.00"), "cost_per_sale": Decimal("30000.00"), "romi": 150.0, "drr": 40.0,
        "median_days_to_win": 15.0, "loss_reasons": "Дорого (1)"}
    brand = by["brand"]
    assert (brand["leads"], brand["deals"], brand["won"], brand["sales"], brand["cost"], brand["cost_per_lead"],
            brand["romi"], brand["drr"], brand["cost_per_sale"]) == (2, 1, 0, 0, Decimal("30000"),
                                                                     Decimal("15000.00"), -100.0, None, None)
    assert (by["promo"]["leads"], by["promo"]["cost"], by["promo"]["romi"]) == (0, Decimal("5000"), -100.0)
    total = by["Total"]
    assert (total["leads"], total["deals"], total["won"], total["lost"], total["sales"], total["revenue"],
            total["cost"], total["romi"]) == (5, 4, 2, 1, 2, Decimal("150000"), Decimal("95000"), 57.9)


def test_first_touch_credits_the_campaign_that_brought_the_visitor(journeys):
    by = rows(sales_report(**MARCH, group_by="utm_campaign", attribution="first"))

    assert (by["brand"]["leads"], by["brand"]["won"], by["brand"]["sales"], by["brand"]["revenue"],
            by["brand"]["romi"], by["brand"]["median_days_to_win"]) == (3, 1, 1, Decimal("100000"), 233.3, 10.0)
    assert (by["promo"]["leads"], by["promo"]["lost"], by["promo"]["loss_reasons"]) == (1, 1, "Дорого (1)")
    assert (by["(none)"]["leads"], by["(none)"]["sales"], by["(none)"]["revenue"]) == (1, 1, Decimal("50000"))
    assert (by["retarget"]["leads"], by["retarget"]["sales"], by["retarget"]["romi"]) == (0, 0, -100.0)


def test_grouping_by_manager_names_them_and_says_when_a_name_is_missing(journeys):
    by = rows(sales_report(**MARCH, group_by="manager"))

    assert (by["Ирина"]["leads"], by["Ирина"]["sales"], by["Ирина"]["revenue"]) == (3, 1, Decimal("100000"))
    unnamed = by["User 5050 (sync metadata to see the name)"]
    assert (unnamed["leads"], unnamed["sales"], unnamed["revenue"]) == (1, 1, Decimal("50000"))
    assert by["(no manager)"]["leads"] == 1
    assert by["Total"]["cost"] == Decimal("95000")  # spend cannot be split by manager: only the total carries it


def test_the_funnel_counts_the_stages_each_deal_passed(journeys):
    report = sales_report(**MARCH, group_by="utm_campaign")

    assert report.pipeline_name == "Продажи"
    assert [stage.name for stage in report.stages] == ["Новая", "Переговоры", "Успешно"]
    funnel = {row.label: row.funnel for row in [*report.rows, report.total]}
    # retarget: two won deals passed every stage; the lost one counts in the first stage only.
    assert funnel["retarget"] == {10: 3, 20: 2, 142: 2}
    assert funnel["brand"] == {10: 1, 20: 1}
    assert funnel["Total"] == {10: 4, 20: 3, 142: 2}


def test_lead_cohorts_by_month(journeys):
    cohorts = sales_report(**MARCH, group_by="utm_campaign").cohorts

    assert [(c.month, c.leads, c.deals, c.won, c.lost, c.revenue, c.conversion) for c in cohorts] == [
        (date(2026, 3, 1), 5, 4, 2, 1, Decimal("150000"), 40.0)]


def test_the_csv_in_russian_uses_semicolons_and_decimal_commas_with_a_bom(journeys):
    data = report_output.report_csv(sales_report(**MARCH, group_by="utm_campaign"), language="ru")

    assert data.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert lines[1][:8] == ["retarget", "3", "3", "2", "1", "66,7", "2", "150000,00"]
    assert b"\r\n" in data
    english = report_output.report_csv(sales_report(**MARCH, group_by="utm_campaign"), language="en")
    assert list(csv.reader(io.StringIO(english.decode("utf-8-sig"))))[1][5:8] == ["66.7", "2", "150000.00"]


@pytest.mark.parametrize("group_by", ["utm_source", "utm_medium", "utm_campaign", "lead_source", "manager"])
@pytest.mark.parametrize("attribution", ["first", "last"])
def test_the_command_prints_the_same_figures_as_the_admin_report(admin_client, journeys, capsys, group_by,
                                                                  attribution):
    page = admin_client.get(reverse("admin:sales_sale_report"), {
        "period": "custom", "date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": group_by,
        "attribution": attribution})
    stages = page.context["report"].stages
    admin_rows = [{**report_output.json_ready(report_output.row_record(line["row"])),
                   "funnel": {str(stage.id): line["row"].funnel.get(stage.id, 0) for stage in stages}}
                  for line in page.context["table"]]

    call_command("sales_report", "--from", "2026-03-01", "--to", "2026-03-31", "--group-by", group_by,
                 "--attribution", attribution, "--format", "json")
    printed = json.loads(capsys.readouterr().out)

    assert printed["rows"] == admin_rows
    assert len(admin_rows) >= 2


def test_the_command_writes_csv_and_explains_a_bad_period(journeys, capsys):
    call_command("sales_report", "--from", "2026-03-01", "--to", "2026-03-31", "--format", "csv", "--language", "ru")
    out = capsys.readouterr().out
    assert out.startswith("\ufeff") and "retarget;3;3;2;1;66,7" in out
    assert out.splitlines()[0].startswith("\ufeffКампания (UTM campaign);Заявки;Сделки;")  # headers in Russian too

    from django.core.management import CommandError

    with pytest.raises(CommandError, match="ends before it starts"):
        call_command("sales_report", "--from", "2026-03-31", "--to", "2026-03-01")
    with pytest.raises(CommandError, match="not a date"):
        call_command("sales_report", "--from", "March", "--to", "2026-03-01")


def test_the_page_shows_charts_funnel_and_cohorts(admin_client, journeys):
    response = admin_client.get(reverse("admin:sales_sale_report"), {
        "date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "utm_campaign"})
    page = response.content.decode()

    assert [chart["key"] for chart in response.context["charts"]] == [
        "revenue", "sales", "leads", "conversion", "average_deal", "cost", "romi"]
    assert page.count('<svg class="sales-chart"') == 7 and 'class="bar negative"' in page  # brand's ROMI is −100 %
    assert "Переговоры" in page and "Дорого (1)" in page and "150 000.00" in page
    # No script of the report's own: after the content starts, only the theme's static files (unfold's page end).
    scripts = re.findall(r"<script\b[^>]*>", page.split('id="content-main"')[1])
    assert all(re.fullmatch(r'<script src="/static/unfold/[^"]+\.js">', script) for script in scripts), scripts


@pytest.mark.parametrize("preset, expected", [
    ("today", (date(2026, 5, 14), date(2026, 5, 14))), ("7d", (date(2026, 5, 8), date(2026, 5, 14))),
    ("this_month", (date(2026, 5, 1), date(2026, 5, 14))), ("last_month", (date(2026, 4, 1), date(2026, 4, 30))),
    ("quarter", (date(2026, 4, 1), date(2026, 5, 14))), ("year", (date(2026, 1, 1), date(2026, 5, 14))),
])
def test_period_presets(preset, expected):
    from sales.report_views import preset_period

    assert preset_period(preset, date(2026, 5, 14)) == expected


def test_the_report_and_its_download_need_the_view_permission(client, django_user_model, journeys):
    client.force_login(staff_with(django_user_model, "nobody"))
    assert client.get(reverse("admin:sales_sale_report")).status_code == 403
    assert client.get(reverse("admin:sales_sale_report_csv")).status_code == 403
    assert client.get(reverse("admin:sales_sale_report_xlsx")).status_code == 403

    client.force_login(staff_with(django_user_model, "viewer", "sales.view_sale"))
    assert client.get(reverse("admin:sales_sale_report")).status_code == 200
    assert client.get(reverse("admin:sales_sale_report_csv")).status_code == 200
    assert client.get(reverse("admin:sales_sale_report_xlsx")).status_code == 200


def test_uploading_spend_needs_the_add_and_change_permissions(client, django_user_model):
    from django.core.files.uploadedfile import SimpleUploadedFile

    upload = reverse("admin:sales_adspend_upload")
    client.force_login(staff_with(django_user_model, "viewer", "sales.view_adspend"))
    assert client.get(upload).status_code == 403
    assert "Upload CSV" not in client.get(reverse("admin:sales_adspend_changelist")).content.decode()

    client.force_login(staff_with(django_user_model, "marketer", "sales.view_adspend", "sales.add_adspend",
                                  "sales.change_adspend"))
    assert "Upload CSV" in client.get(reverse("admin:sales_adspend_changelist")).content.decode()
    file = SimpleUploadedFile("spend.csv", b"date;utm_source;utm_medium;utm_campaign;cost;currency\n"
                                           b"2026-03-01;google;cpc;brand;1 500,50;RUB\n")
    response = client.post(upload, {"file": file}, follow=True)
    assert "Imported 1 rows (1 new, 0 updated) for 1 days." in response.content.decode()
    assert AdSpend.objects.get().cost == Decimal("1500.50")

    bad = SimpleUploadedFile("spend.csv", b"date,cost\nyesterday,1\n")
    page = client.post(upload, {"file": bad}).content.decode()
    assert "Nothing was imported" in page and "Line 2" in page


def test_the_report_speaks_russian(admin_client, journeys, settings):
    from django.conf import settings as django_settings

    settings.LANGUAGE_CODE = "ru"
    settings.LOCALE_PATHS = [django_settings.BASE_DIR / "locale"]
    response = admin_client.get(reverse("admin:sales_sale_report"), {
        "date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "utm_campaign"})
    page = response.content.decode()

    for text in ["Продажи по кампаниям", "Выручка", "Конверсия, %", "Главные причины отказа", "Воронка: «Продажи»",
                 "Заявки по месяцу поступления", "Скачать CSV", "Последнее касание", "Итого"]:
        assert text in page, text
    data = admin_client.get(reverse("admin:sales_sale_report_csv"), {
        "date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "utm_campaign"}).content
    assert data.decode("utf-8-sig").splitlines()[0].startswith("Кампания (UTM campaign);Заявки;Сделки;")


@pytest.mark.parametrize("catalogue", ["sales/locale/ru/LC_MESSAGES/django.po", "locale/ru/LC_MESSAGES/django.po"])
def test_every_report_string_has_a_russian_translation(catalogue):
    from django.conf import settings as django_settings

    text = (django_settings.BASE_DIR / catalogue).read_text(encoding="utf-8")
    entries = text.split("\n\n")[1:]  # the first entry is the header
    untranslated = [entry for entry in entries if entry.rstrip().endswith('msgstr ""') and "#~" not in entry]
    assert entries and untranslated == []


def test_the_xlsx_download_holds_the_same_figures_as_numbers(admin_client, journeys):
    from openpyxl import load_workbook

    response = admin_client.get(reverse("admin:sales_sale_report_xlsx"), {
        "date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "utm_campaign"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    sheet = load_workbook(io.BytesIO(response.content)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert rows[0][:3] == ["UTM campaign", "Leads", "Deals"]
    assert rows[1][:8] == ["retarget", 3, 3, 2, 1, 66.7, 2, 150000.0]
    assert rows[-1][0] == "Total"


def test_the_sales_list_links_each_sale_and_keeps_amounts_on_one_line(admin_client, journeys):
    page = admin_client.get(reverse("admin:sales_sale_changelist")).content.decode()

    for sale in Sale.objects.all():
        assert f'href="{reverse("admin:sales_sale_change", args=[sale.pk])}"' in page
    assert '<span style="white-space:nowrap">RUB100,000.00</span>' in page  # one line, in the page's language


def test_the_funnel_pipeline_can_be_chosen_by_name(admin_client, account, journeys, capsys):
    partners = Pipeline.objects.create(account=account, amocrm_id=888, name="Партнёры")
    Stage.objects.create(pipeline=partners, amocrm_id=50, name="Заявка партнёра", sort=10)
    lead = make_lead(account, deal_id=50, created_at=at(2), utm_campaign="brand")
    Lead.objects.filter(pk=lead.pk).update(pipeline_id=888, stage_id=50)
    params = {"date_from": "2026-03-01", "date_to": "2026-03-31", "group_by": "utm_campaign"}

    default = admin_client.get(reverse("admin:sales_sale_report"), params)
    assert default.context["report"].pipeline_name == "Продажи"
    assert '<option value="888">Партнёры</option>' in default.content.decode()
    chosen = admin_client.get(reverse("admin:sales_sale_report"), {**params, "pipeline": "888"}).context["report"]
    assert [stage.name for stage in chosen.stages] == ["Заявка партнёра"]
    assert chosen.total.funnel == {50: 1}

    call_command("sales_report", "--from", "2026-03-01", "--to", "2026-03-31", "--pipeline", "888")
    printed = json.loads(capsys.readouterr().out)
    assert printed["pipeline"] == "Партнёры" and printed["rows"][-1]["funnel"] == {"50": 1}
