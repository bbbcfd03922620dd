"""Ad spend import: CSV upsert per day × campaign (idempotent), Excel's encodings and separators, bad lines refused."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command

from sales.models import AdSpend
from sales.spend import SpendImportError, spend_import

pytestmark = pytest.mark.django_db

CSV = (b"date,utm_source,utm_medium,utm_campaign,cost,currency\n"
       b"2026-03-01,google,cpc,spring,1000.50,RUB\n"
       b"2026-03-02,google,cpc,spring,2000,RUB\n"
       b"2026-03-01,yandex,cpc,spring,300,\n")


def spend() -> set[tuple]:
    return set(AdSpend.objects.values_list("day", "utm_source", "utm_medium", "utm_campaign", "cost", "currency"))


def test_an_import_twice_changes_nothing_and_a_corrected_cost_replaces_the_old_one():
    first = spend_import(CSV)
    assert (first.rows, first.created, first.updated) == (3, 3, 0)
    expected = {(date(2026, 3, 1), "google", "cpc", "spring", Decimal("1000.50"), "RUB"),
                (date(2026, 3, 2), "google", "cpc", "spring", Decimal("2000.00"), "RUB"),
                (date(2026, 3, 1), "yandex", "cpc", "spring", Decimal("300.00"), "RUB")}
    assert spend() == expected

    second = spend_import(CSV)
    assert (second.rows, second.created, second.updated) == (3, 0, 3)
    assert spend() == expected

    spend_import(b"date,utm_source,utm_medium,utm_campaign,cost,currency\n2026-03-02,google,cpc,spring,2500,RUB\n")
    assert AdSpend.objects.get(day=date(2026, 3, 2), utm_source="google").cost == Decimal("2500.00")
    assert AdSpend.objects.count() == 3


def test_russian_excel_files_semicolons_decimal_comma_and_cp1251_are_read():
    text = "date;utm_source;utm_medium;utm_campaign;cost;currency\n2026-03-01;яндекс;cpc;весна;1 234,50;RUB\n"
    spend_import(text.encode("cp1251"))
    spend_import(("\ufeff" + text).encode("utf-8"))
    row = AdSpend.objects.get()
    assert (row.utm_source, row.utm_campaign, row.cost) == ("яндекс", "весна", Decimal("1234.50"))


def test_a_file_with_a_bad_line_imports_nothing_and_names_the_line():
    bad = CSV + b"2026-13-01,google,cpc,x,10,RUB\n2026-03-03,google,cpc,x,ten,RUB\n"
    with pytest.raises(SpendImportError) as caught:
        spend_import(bad)
    assert len(caught.value.errors) == 2
    assert "Line 5" in caught.value.errors[0] and "2026-13-01" in caught.value.errors[0]
    assert "Line 6" in caught.value.errors[1] and "ten" in caught.value.errors[1]
    assert AdSpend.objects.count() == 0


def test_a_file_without_the_cost_column_is_refused():
    with pytest.raises(SpendImportError, match="cost"):
        spend_import(b"date,utm_source\n2026-03-01,google\n")


def test_the_command_imports_a_file_and_reports_what_it_did(tmp_path, capsys):
    path = tmp_path / "spend.csv"
    path.write_bytes(CSV)
    call_command("import_ad_spend", str(path))
    call_command("import_ad_spend", str(path))
    out = capsys.readouterr().out
    assert "Imported 3 rows (3 new, 0 updated) for 2 days." in out
    assert "Imported 3 rows (0 new, 3 updated) for 2 days." in out
    assert AdSpend.objects.count() == 3


def test_the_command_explains_a_bad_file(tmp_path):
    path = tmp_path / "spend.csv"
    path.write_bytes(b"date,cost\nyesterday,10\n")
    with pytest.raises(CommandError, match="(?s)Nothing was imported.*Line 2"):
        call_command("import_ad_spend", str(path))
    with pytest.raises(CommandError, match="Cannot read"):
        call_command("import_ad_spend", str(tmp_path / "missing.csv"))


def test_the_spend_and_lost_deal_pages_render(admin_client, account):
    from django.urls import reverse

    from sales.models import DealLoss

    spend_import(CSV)
    DealLoss.objects.create(account=account, amocrm_deal_id=77, loss_reason="Дорого")

    spend_page = admin_client.get(reverse("admin:sales_adspend_changelist")).content.decode()
    assert "RUB1,000.50" in spend_page and "Upload CSV" in spend_page  # money as the page's language writes it
    assert admin_client.get(reverse("admin:sales_adspend_add")).status_code == 200
    losses = admin_client.get(reverse("admin:sales_dealloss_changelist"))
    assert losses.status_code == 200 and "Дорого" in losses.content.decode()
    assert admin_client.get(reverse("admin:sales_dealloss_add")).status_code == 403
