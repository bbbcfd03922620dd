"""The exact CSV files the ad platforms accept for offline conversions (docs/conversions.md).

Yandex Metrika: a header of the id column (`ClientId` or `Yclid`, one id type per file, as the upload's
`client_id_type` says), `Target`, `DateTime` (Unix time, seconds), `Price` (a dot as decimal separator),
`Currency` (ISO 4217). Google Ads "conversions from clicks": a `Parameters:TimeZone=` line, then `Google Click
ID`, `Conversion Name`, `Conversion Time` (`yyyy-MM-dd HH:mm:ss+hhmm`, the zone's offset written in every
time), `Conversion Value`, `Conversion Currency`. UTF-8 without a byte-order mark, "\\n" line ends.
"""

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

YANDEX_COLUMNS = ("Target", "DateTime", "Price", "Currency")
GOOGLE_COLUMNS = ("Google Click ID", "Conversion Name", "Conversion Time", "Conversion Value", "Conversion Currency")


@dataclass(frozen=True)
class ConversionRow:
    """One conversion: the platform's id of the visitor or click, the goal, when, how much."""

    click_id: str
    goal: str
    at: datetime
    value: Decimal | None  # None: no value (a qualified stage), the column left empty
    currency: str


def _writer(buffer: io.StringIO):
    return csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)


def money(value: Decimal | None) -> str:
    """12500 → "12500.00": a dot, two decimals, no thousands separator; None → ""."""
    return "" if value is None else f"{Decimal(value):.2f}"


def yandex_csv(rows: Iterable[ConversionRow], *, id_column: str) -> bytes:
    """Yandex Metrika's offline-conversion file; `id_column` is "ClientId" or "Yclid"."""
    buffer = io.StringIO()
    writer = _writer(buffer)
    writer.writerow((id_column, *YANDEX_COLUMNS))
    for row in rows:
        writer.writerow((row.click_id, row.goal, int(row.at.timestamp()), money(row.value), row.currency))
    return buffer.getvalue().encode()


def google_csv(rows: Iterable[ConversionRow], *, time_zone: str) -> bytes:
    """Google Ads' click-conversion file, times in `time_zone` (an IANA name) with their offset."""
    zone = ZoneInfo(time_zone)
    buffer = io.StringIO()
    writer = _writer(buffer)
    writer.writerow((f"Parameters:TimeZone={time_zone}",))
    writer.writerow(GOOGLE_COLUMNS)
    for row in rows:
        at = row.at.astimezone(zone)
        writer.writerow((row.click_id, row.goal, at.strftime("%Y-%m-%d %H:%M:%S%z"), money(row.value),
                         row.currency))
    return buffer.getvalue().encode()
