"""Ad spend import: a CSV of date, utm_source, utm_medium, utm_campaign, cost, currency → upserted AdSpend rows."""

import csv
import io
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils.translation import gettext as _

from .models import AdSpend

COLUMNS = ("date", "utm_source", "utm_medium", "utm_campaign", "cost", "currency")
REQUIRED = ("date", "cost")
DEFAULT_CURRENCY = "RUB"
# A mistyped file must not be half-imported: every line is checked before any row is written.
MAX_ERRORS_SHOWN = 20


class SpendImportError(ValueError):
    """The file cannot be imported; `errors` says which lines are wrong and how, in plain words."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors[:MAX_ERRORS_SHOWN]))


@dataclass
class SpendImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    days: set[date] = field(default_factory=set)


def _decode(data: bytes) -> str:
    """UTF-8 (with or without the BOM Excel writes), else Windows-1251 (Russian Excel's "CSV")."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1251")


def _reader(text: str) -> csv.DictReader:
    """A reader for `,`- or `;`-separated text (Russian Excel saves with `;`)."""
    first_line = text.split("\n", 1)[0]
    delimiter = ";" if first_line.count(";") > first_line.count(",") else ","
    return csv.DictReader(io.StringIO(text), delimiter=delimiter)


def _cost(text: str) -> Decimal:
    """'1 234,50' or '1234.50' → Decimal('1234.50'); a negative or unreadable number raises ValueError."""
    cleaned = text.replace("\u00a0", "").replace(" ", "").replace(",", ".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise ValueError(text) from None
    if value < 0 or not value.is_finite():
        raise ValueError(text)
    return value.quantize(Decimal("0.01"))


def _row(line: int, raw: dict, errors: list[str]) -> AdSpend | None:
    values = {key.strip().lower(): (value or "").strip() for key, value in raw.items() if key}
    try:
        day = date.fromisoformat(values.get("date", ""))
    except ValueError:
        errors.append(_("Line %(line)s: the date “%(value)s” is not a date like 2026-03-31.")
                      % {"line": line, "value": values.get("date", "")})
        return None
    try:
        cost = _cost(values.get("cost", ""))
    except ValueError:
        errors.append(_("Line %(line)s: the cost “%(value)s” is not a positive number like 1234.50.")
                      % {"line": line, "value": values.get("cost", "")})
        return None
    return AdSpend(day=day, cost=cost, currency=(values.get("currency") or DEFAULT_CURRENCY).upper()[:8],
                   **{name: values.get(name, "")[:255] for name in ("utm_source", "utm_medium", "utm_campaign")})


def spend_rows_parse(data: bytes) -> list[AdSpend]:
    """The file's rows as unsaved AdSpend objects; SpendImportError lists every bad line (nothing is saved)."""
    reader = _reader(_decode(data))
    header = {name.strip().lower() for name in (reader.fieldnames or []) if name}
    missing = [name for name in REQUIRED if name not in header]
    if missing:
        raise SpendImportError([_("The file has no column %(columns)s. Expected columns: %(expected)s.")
                                % {"columns": ", ".join(missing), "expected": ", ".join(COLUMNS)}])
    errors: list[str] = []
    rows: dict[tuple, AdSpend] = {}
    for line, raw in enumerate(reader, start=2):
        if not any((value or "").strip() for value in raw.values() if isinstance(value, str)):
            continue  # blank line
        spend = _row(line, raw, errors)
        if spend is not None:
            # The same day and campaign twice in one file: the later line wins, as a later import would.
            rows[(spend.day, spend.utm_source, spend.utm_medium, spend.utm_campaign)] = spend
    if errors:
        raise SpendImportError(errors)
    return list(rows.values())


def spend_import(data: bytes) -> SpendImportResult:
    """Upsert the file's rows (day × source × medium × campaign): importing a file twice changes nothing."""
    rows = spend_rows_parse(data)
    result = SpendImportResult(rows=len(rows), days={row.day for row in rows})
    with transaction.atomic():
        existing = 0
        if rows:
            existing = AdSpend.objects.filter(day__in=result.days).filter(
                utm_source__in={r.utm_source for r in rows}, utm_campaign__in={r.utm_campaign for r in rows},
            ).values_list("day", "utm_source", "utm_medium", "utm_campaign")
            keys = {(r.day, r.utm_source, r.utm_medium, r.utm_campaign) for r in rows}
            existing = len(keys & set(existing))
        AdSpend.objects.bulk_create(
            rows, update_conflicts=True, unique_fields=["day", "utm_source", "utm_medium", "utm_campaign"],
            update_fields=["cost", "currency", "updated_at"], batch_size=1000,
        )
    result.updated = existing
    result.created = result.rows - existing
    return result
