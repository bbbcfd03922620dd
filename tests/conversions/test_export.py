"""Conversions export: the exact CSV of each platform, byte for byte, and never the same sale twice."""

import io
from datetime import date

import pytest
from django.core.management import CommandError, call_command

from conversions.models import ConversionExport
from conversions.services import export_conversions
from tests.fixtures.loader import load_fixture

pytestmark = pytest.mark.django_db
HEADER_ONLY = {"ClientId": b"ClientId,Target,DateTime,Price,Currency\n",
               "Yclid": b"Yclid,Target,DateTime,Price,Currency\n"}


def run(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_conversions", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_yandex_clientid_then_yclid_files_are_exactly_the_fixtures(sales):
    assert export_conversions("yandex").content == load_fixture("conversions/yandex_clientid.csv")
    # The sale with both ids went with its ClientID: the yclid file has only the yclid-only sale.
    assert export_conversions("yandex", "Yclid").content == load_fixture("conversions/yandex_yclid.csv")


def test_the_google_file_is_exactly_the_fixture_with_the_time_zone_line_and_offsets(sales, settings):
    settings.TIME_ZONE = "Europe/Moscow"
    assert export_conversions("google").content == load_fixture("conversions/google.csv")


def test_an_incremental_export_never_repeats_a_sale(sales):
    first = export_conversions("yandex")
    assert [record.sale for record in first.records] == [sales["both"], sales["client_id"]]
    assert export_conversions("yandex").content == HEADER_ONLY["ClientId"]
    assert export_conversions("yandex", "Yclid").records[0].sale == sales["yclid"]
    assert export_conversions("yandex", "Yclid").content == HEADER_ONLY["Yclid"]
    # Another platform is its own: Google still gets both gclid sales, once.
    assert [record.sale for record in export_conversions("google").records] == [sales["both"], sales["yclid"]]
    assert export_conversions("google").records == []
    assert ConversionExport.objects.count() == 5
    assert {(r.sale_id, r.platform) for r in ConversionExport.objects.all()} == {
        (sales["both"].pk, "yandex"), (sales["client_id"].pk, "yandex"), (sales["yclid"].pk, "yandex"),
        (sales["both"].pk, "google"), (sales["yclid"].pk, "google")}


def test_a_date_range_takes_the_days_won_both_included_and_leaves_the_rest_for_later(sales):
    only_second = export_conversions("yandex", date_from=date(2026, 5, 2), date_to=date(2026, 5, 2))
    assert [record.sale for record in only_second.records] == [sales["client_id"]]
    assert [record.sale for record in export_conversions("yandex").records] == [sales["both"]]


def test_a_record_keeps_what_was_sent(sales):
    [record, _] = export_conversions("yandex").records
    record.refresh_from_db()
    assert (record.id_type, record.click_id, record.goal, str(record.value), record.currency, record.state) == (
        "ClientId", "1700000000123456789", "crm_sale", "12500.00", "RUB", "exported")


def test_the_goal_names_are_settings(sales, settings):
    settings.CONVERSIONS_YANDEX_TARGET, settings.CONVERSIONS_GOOGLE_NAME = "paid_order", "Paid order"
    assert b",paid_order," in export_conversions("yandex").content
    assert b",Paid order," in export_conversions("google").content


def test_the_command_prints_the_csv_and_counts_on_stderr(sales, tmp_path):
    out, err = run("--format", "yandex", "--from", "2026-05-01", "--to", "2026-05-31")
    assert out.encode() == load_fixture("conversions/yandex_clientid.csv")
    assert err.strip() == "2 sales exported to yandex (ClientId)."
    target = tmp_path / "yclid.csv"
    run("--format", "yandex", "--yandex-id", "yclid", "--output", str(target))
    assert target.read_bytes() == load_fixture("conversions/yandex_yclid.csv")
    out, err = run("--format", "yandex")
    assert (out, err.strip()) == (HEADER_ONLY["ClientId"].decode(), "0 sales exported to yandex (ClientId).")


@pytest.mark.parametrize(("args", "message"), [
    (["--format", "google", "--from", "01.05.2026"], "“01.05.2026” is not a date: write YYYY-MM-DD"),
    (["--format", "google", "--from", "2026-05-02", "--to", "2026-05-01"], "--from 2026-05-02 is after --to"),
])
def test_the_command_says_what_is_wrong_with_its_dates(sales, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert ConversionExport.objects.count() == 0


def test_the_command_speaks_the_projects_language(sales):
    from django.utils import translation

    with translation.override("ru"):
        _, err = run("--format", "yandex", "--from", "2026-05-01", "--to", "2026-05-31")
        with pytest.raises(CommandError, match="«01.05.2026» — не дата"):
            run("--format", "google", "--from", "01.05.2026")
    assert err.strip() == "2 продажи выгружены для yandex (ClientId)."
