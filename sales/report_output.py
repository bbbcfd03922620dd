"""The sales report as files and pictures: its columns once, for the page, the CSV (Excel-ready), JSON and charts."""

import csv
import io
from decimal import Decimal

from django.utils import translation
from django.utils.translation import gettext, gettext_lazy
from openpyxl import Workbook

from .report import ReportRow, SalesReport
from .selectors import format_amount

# (key, header, value of a row). The admin table, the CSV and `manage.py sales_report` use exactly these.
COLUMNS = [
    ("leads", gettext_lazy("Leads"), lambda r: r.leads),
    ("deals", gettext_lazy("Deals"), lambda r: r.deals),
    ("won", gettext_lazy("Won leads"), lambda r: r.converted),
    ("lost", gettext_lazy("Lost leads"), lambda r: r.lost),
    ("conversion", gettext_lazy("Conversion, %"), lambda r: r.conversion),
    ("sales", gettext_lazy("Sales"), lambda r: r.sales),
    ("revenue", gettext_lazy("Revenue"), lambda r: r.main_revenue),
    ("average_deal", gettext_lazy("Average deal"), lambda r: r.average_deal),
    ("cost", gettext_lazy("Cost"), lambda r: r.cost),
    ("cost_per_lead", gettext_lazy("Cost per lead"), lambda r: r.cost_per_lead),
    ("cost_per_sale", gettext_lazy("Cost per sale"), lambda r: r.cost_per_sale),
    ("romi", gettext_lazy("ROMI, %"), lambda r: r.romi),
    ("drr", gettext_lazy("Ad cost share of revenue (ACoS), %"), lambda r: r.drr),
    ("median_days_to_win", gettext_lazy("Median days to win"), lambda r: r.median_days_to_win),
    ("loss_reasons", gettext_lazy("Top loss reasons"), lambda r: r.loss_reasons_text),
]
MONEY = {"revenue", "average_deal", "cost", "cost_per_lead", "cost_per_sale"}
# The measures drawn as one chart each, in this order.
CHARTED = ["revenue", "sales", "leads", "conversion", "average_deal", "cost", "romi"]
# Spreadsheets run a cell starting with one of these as a formula; UTM values come from visitors.
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CHART_ROW_HEIGHT = 28
CHART_LABEL_WIDTH = 300
CHART_BAR_WIDTH = 560


def report_lines(report: SalesReport) -> list[ReportRow]:
    """The rows, then the total."""
    return [*report.rows, report.total]


def row_record(row: ReportRow, *, group_key: str = "group") -> dict:
    """One row as plain values (Decimal kept): what JSON, CSV and the tests compare."""
    return {group_key: row.label, **{key: value(row) for key, _, value in COLUMNS}}


def report_records(report: SalesReport) -> list[dict]:
    return [row_record(row) for row in report_lines(report)]


def json_ready(record: dict) -> dict:
    return {key: (str(value) if isinstance(value, Decimal) else value) for key, value in record.items()}


def _csv_cell(value, decimal_comma: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, (Decimal, float)):
        text = str(value.quantize(Decimal("0.01")) if isinstance(value, Decimal) else value)
        return text.replace(".", ",") if decimal_comma else text
    text = str(value)
    return "'" + text if text.startswith(CSV_FORMULA_PREFIXES) else text


def csv_dialect(language: str | None = None) -> tuple[str, bool]:
    """(separator, decimal comma) for a language: Russian Excel splits on `;` and reads `1234,50`."""
    language = (language or translation.get_language() or "en").lower()
    return (";", True) if language.startswith("ru") else (",", False)


def report_csv(report: SalesReport, *, language: str | None = None) -> bytes:
    """The report as CSV bytes that Excel opens as a table: UTF-8 with a BOM, the locale's separator and decimals."""
    separator, decimal_comma = csv_dialect(language)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=separator, lineterminator="\r\n")
    writer.writerow([report.group_label, *(f"{header} ({report.currency})" if key in MONEY else str(header)
                                           for key, header, _ in COLUMNS)])
    for row in report_lines(report):
        writer.writerow([_csv_cell(row.label, decimal_comma),
                         *(_csv_cell(value(row), decimal_comma) for _, _, value in COLUMNS)])
    return "\ufeff".encode() + buffer.getvalue().encode("utf-8")


def report_xlsx(report: SalesReport) -> bytes:
    """The report as an Excel workbook: numbers stay numbers (Excel formats them in the user's locale)."""
    book = Workbook()
    sheet = book.active
    sheet.title = str(report.group_label)[:31]
    sheet.append([str(report.group_label), *headers(report)])
    for row in report_lines(report):
        values = [value(row) for _, _, value in COLUMNS]
        # openpyxl stores a string starting with "=" as a formula: visitor UTMs get the CSV's quote too.
        sheet.append([_csv_cell(row.label, False),
                      *(float(v) if isinstance(v, Decimal) else _csv_cell(v, False) if isinstance(v, str) else v
                        for v in values)])
    sheet.freeze_panes = "B2"
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def display_value(key: str, value) -> str:
    """A cell as the page shows it: money grouped by spaces, percents with %, nothing as a dash.

    In Russian with a decimal comma (45 000,00), as csv_dialect does for the download.
    """
    if value is None or value == "":
        return "—"
    if key in MONEY:
        text = format_amount(value)
    elif key in ("conversion", "romi", "drr"):
        text = f"{value}%"
    else:
        text = str(value)
    return text.replace(".", ",") if csv_dialect()[1] and isinstance(value, (Decimal, float)) else text


def table(report: SalesReport) -> list[dict]:
    """Rows with their cells formatted for the page, the total last."""
    return [{"row": row, "cells": [display_value(key, value(row)) for key, _, value in COLUMNS],
             "revenue": [format_amount(row.revenue_in(c)) for c in report.currencies]}
            for row in report_lines(report)]


def chart(report: SalesReport, key: str) -> dict | None:
    """Geometry of one inline SVG bar chart (no script, no CDN): a bar per group for one measure."""
    getter = {k: v for k, _, v in COLUMNS}[key]
    values = [(row.label, getter(row)) for row in report.rows]
    top = max((abs(v) for _, v in values if v is not None), default=0)
    if not top:
        return None
    bars = []
    for index, (label, value) in enumerate(values):
        width = round(float(abs(value or 0) * CHART_BAR_WIDTH / top), 1)
        bars.append({"y": index * CHART_ROW_HEIGHT, "label": label, "width": width,
                     "negative": value is not None and value < 0, "value": display_value(key, value),
                     "value_x": CHART_LABEL_WIDTH + width + 8})
    title = str({k: h for k, h, _ in COLUMNS}[key])
    if key in MONEY:
        title = f"{title}, {report.currency}"
    return {"key": key, "title": title, "bars": bars, "height": len(bars) * CHART_ROW_HEIGHT,
            "label_width": CHART_LABEL_WIDTH, "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + 140}


def charts(report: SalesReport) -> list[dict]:
    return [drawn for drawn in (chart(report, key) for key in CHARTED) if drawn]


def headers(report: SalesReport) -> list[str]:
    return [f"{header}, {report.currency}" if key in MONEY else str(header) for key, header, _ in COLUMNS]


def empty_text() -> str:
    return gettext("No leads, sales or spend in this period.")
