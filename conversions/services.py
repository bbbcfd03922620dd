"""Which won sales are due for a platform, and exporting them exactly once.

A sale is due for a platform when it is won, its lead carries the platform's id (Yandex: the Metrika
ClientID, or the yclid; Google: the gclid) and it has no export record for that platform yet. Exporting
writes the records and builds the file in one transaction, under a lock per platform, so two exports
running at once never put one sale into both files.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from config.locks import hold_locks, lock_key
from sales.models import Sale

from . import formats
from .models import ConversionExport

Platform, IdType = ConversionExport.Platform, ConversionExport.IdType
# The lead field each id type is read from.
LEAD_FIELD = {IdType.CLIENT_ID: "ym_client_id", IdType.YCLID: "yclid", IdType.GCLID: "gclid"}
PLATFORM_ID_TYPES = {Platform.YANDEX: (IdType.CLIENT_ID, IdType.YCLID), Platform.GOOGLE: (IdType.GCLID,)}
DEFAULT_CURRENCY = "RUB"


@dataclass(frozen=True)
class Export:
    """A built file and the records written for it."""

    platform: str
    id_type: str
    content: bytes
    records: list[ConversionExport]

    @property
    def filename(self) -> str:
        return f"conversions-{self.platform}-{self.id_type.lower()}-{timezone.localdate():%Y-%m-%d}.csv"


def goal_of(platform: str) -> str:
    return settings.CONVERSIONS_YANDEX_TARGET if platform == Platform.YANDEX else settings.CONVERSIONS_GOOGLE_NAME


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def due_sales(platform: str, id_type: str, *, date_from: date | None = None,
              date_to: date | None = None) -> QuerySet[Sale]:
    """Won sales (won on date_from … date_to, both included, in TIME_ZONE) whose lead has the id, not yet
    exported to `platform`, oldest first."""
    if id_type not in PLATFORM_ID_TYPES[platform]:
        raise ValueError(f"{id_type} is not an id of {platform}")
    field = f"lead__{LEAD_FIELD[id_type]}"
    sales = (Sale.objects.filter(state=Sale.State.WON).exclude(**{field: ""}).exclude(**{f"{field}__isnull": True})
             .exclude(conversion_exports__platform=platform).select_related("lead", "account")
             .order_by("won_at", "id"))
    if date_from:
        sales = sales.filter(won_at__gte=_day_start(date_from))
    if date_to:
        sales = sales.filter(won_at__lt=_day_start(date_to + timedelta(days=1)))
    return sales


def row_of(sale: Sale, platform: str, id_type: str) -> formats.ConversionRow:
    return formats.ConversionRow(
        click_id=getattr(sale.lead, LEAD_FIELD[id_type]), goal=goal_of(platform), at=sale.won_at,
        value=sale.amount, currency=(sale.currency or sale.account.currency or DEFAULT_CURRENCY).upper())


def render(platform: str, id_type: str, rows: list[formats.ConversionRow]) -> bytes:
    if platform == Platform.YANDEX:
        return formats.yandex_csv(rows, id_column=str(id_type))
    return formats.google_csv(rows, time_zone=settings.TIME_ZONE)


def record_of(sale: Sale, row: formats.ConversionRow, platform: str, id_type: str,
            state: str = ConversionExport.State.EXPORTED, **extra) -> ConversionExport:
    return ConversionExport(sale=sale, platform=platform, id_type=id_type, click_id=row.click_id, goal=row.goal,
                            value=row.value, currency=row.currency, state=state, **extra)


def export_conversions(platform: str, id_type: str | None = None, *, date_from: date | None = None,
                       date_to: date | None = None) -> Export:
    """The platform's CSV of every due sale, each recorded as exported: the next export leaves them out.

    `id_type` defaults to the platform's first (Yandex: ClientId). An export with nothing due is a file with
    the header only.
    """
    id_type = id_type or PLATFORM_ID_TYPES[platform][0]
    # The lock outlives the transaction: a second export waits until this one's records are committed.
    with hold_locks([lock_key("conversions.export", platform)]), transaction.atomic():
        sales = list(due_sales(platform, id_type, date_from=date_from, date_to=date_to))
        rows = [row_of(sale, platform, id_type) for sale in sales]
        records = ConversionExport.objects.bulk_create(
            [record_of(sale, row, platform, id_type) for sale, row in zip(sales, rows, strict=True)])
    return Export(platform=platform, id_type=id_type, content=render(platform, id_type, rows), records=records)
