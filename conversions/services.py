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
from leads.models import Lead
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


def _sale_due(sale: Sale, platform: str, id_type: str) -> "Due":
    row = formats.ConversionRow(
        click_id=getattr(sale.lead, LEAD_FIELD[id_type]), goal=goal_of(platform), at=sale.won_at,
        value=sale.amount, currency=(sale.currency or sale.account.currency or DEFAULT_CURRENCY).upper())
    return Due(row=row, lead=sale.lead, sale=sale)


def due_stage_leads(platform: str, id_type: str, *, date_from: date | None = None,
                    date_to: date | None = None) -> QuerySet[Lead]:
    """Leads now in one of CONVERSIONS_QUALIFIED_STAGE_IDS (moved there on date_from … date_to) whose id is
    set, with no qualified-stage record for `platform` yet; none when the setting is empty."""
    stage_ids = settings.CONVERSIONS_QUALIFIED_STAGE_IDS
    if not stage_ids:
        return Lead.objects.none()
    field = LEAD_FIELD[id_type]
    leads = (Lead.objects.filter(stage_id__in=stage_ids, stage_changed_at__isnull=False).exclude(**{field: ""})
             .exclude(pk__in=ConversionExport.objects.filter(platform=platform, kind=ConversionExport.Kind.STAGE)
                      .values("lead_id"))
             .order_by("stage_changed_at", "id"))
    if date_from:
        leads = leads.filter(stage_changed_at__gte=_day_start(date_from))
    if date_to:
        leads = leads.filter(stage_changed_at__lt=_day_start(date_to + timedelta(days=1)))
    return leads


@dataclass(frozen=True)
class Due:
    """One conversion to send: its row, and the sale (none for a qualified stage) and lead it comes from."""

    row: formats.ConversionRow
    lead: Lead
    sale: Sale | None = None

    def record(self, platform: str, id_type: str, state: str = ConversionExport.State.EXPORTED,
               **extra) -> ConversionExport:
        kind = ConversionExport.Kind.SALE if self.sale else ConversionExport.Kind.STAGE
        return ConversionExport(kind=kind, sale=self.sale, lead=self.lead, platform=platform, id_type=id_type,
                                click_id=self.row.click_id, goal=self.row.goal, value=self.row.value or 0,
                                currency=self.row.currency, state=state, **extra)


def due(platform: str, id_type: str, *, date_from: date | None = None, date_to: date | None = None) -> list[Due]:
    """Every conversion due for the platform's file of `id_type`, oldest first: won sales, then (when
    configured) leads that reached a qualified stage, each once per platform."""
    items = [_sale_due(sale, platform, id_type)
             for sale in due_sales(platform, id_type, date_from=date_from, date_to=date_to)]
    items += [Due(row=formats.ConversionRow(click_id=getattr(lead, LEAD_FIELD[id_type]),
                                            goal=settings.CONVERSIONS_QUALIFIED_GOAL, at=lead.stage_changed_at,
                                            value=None, currency=""), lead=lead)
              for lead in due_stage_leads(platform, id_type, date_from=date_from, date_to=date_to)]
    return sorted(items, key=lambda item: item.row.at)


def render(platform: str, id_type: str, rows: list[formats.ConversionRow]) -> bytes:
    if platform == Platform.YANDEX:
        return formats.yandex_csv(rows, id_column=str(id_type))
    return formats.google_csv(rows, time_zone=settings.TIME_ZONE)


def export_conversions(platform: str, id_type: str | None = None, *, date_from: date | None = None,
                       date_to: date | None = None) -> Export:
    """The platform's CSV of every due conversion, each recorded as exported: the next export leaves them out.

    `id_type` defaults to the platform's first (Yandex: ClientId). An export with nothing due is a file with
    the header only.
    """
    id_type = id_type or PLATFORM_ID_TYPES[platform][0]
    # The lock outlives the transaction: a second export waits until this one's records are committed.
    with hold_locks([lock_key("conversions.export", platform)]), transaction.atomic():
        items = due(platform, id_type, date_from=date_from, date_to=date_to)
        records = ConversionExport.objects.bulk_create([item.record(platform, id_type) for item in items])
    content = render(platform, id_type, [item.row for item in items])
    return Export(platform=platform, id_type=id_type, content=content, records=records)
