"""Read-only queries behind the sales admin: totals of a filtered list, and revenue/conversion by campaign."""

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext

from leads.models import Lead

from .models import Sale

# group_by choice → (path from a Sale, path from a Lead, label)
GROUPINGS = {
    "utm_source": ("lead__utm_source", "utm_source", "UTM source"),
    "utm_campaign": ("lead__utm_campaign", "utm_campaign", "UTM campaign"),
    "source": ("lead__source__name", "source__name", "Lead source"),
}
NOT_ATTRIBUTED = "(not attributed)"
EMPTY = "(none)"
# The dates a report may cover, and its longest period: far outside any real sale, and a year
# beyond what date arithmetic at the edges of Python's calendar (9999-12-31 + 1 day) survives.
REPORT_FIRST_DAY = date(2000, 1, 1)
REPORT_LAST_DAY = date(2100, 12, 31)
REPORT_MAX_DAYS = 5 * 366


class ReportPeriodError(ValueError):
    """The period cannot be reported on; the message says why in plain words."""


def report_period_check(*, date_from: date, date_to: date) -> None:
    """Raise ReportPeriodError unless the period is in order, within 2000-2100 and at most five years long."""
    for day in (date_from, date_to):
        if not REPORT_FIRST_DAY <= day <= REPORT_LAST_DAY:
            raise ReportPeriodError(gettext("Dates must be between %(first)s and %(last)s; %(day)s is not.") % {
                "first": REPORT_FIRST_DAY.isoformat(), "last": REPORT_LAST_DAY.isoformat(),
                "day": day.isoformat()})
    if date_from > date_to:
        raise ReportPeriodError(gettext("The period ends before it starts."))
    if (date_to - date_from).days + 1 > REPORT_MAX_DAYS:
        raise ReportPeriodError(gettext("The period is longer than five years: choose a shorter one."))


def format_amount(amount: Decimal | None, currency: str = "") -> str:
    """15000 → "15 000.00 RUB": digits grouped by spaces, as amoCRM shows money."""
    text = f"{amount or 0:,.2f}".replace(",", " ")
    return f"{text} {currency}".strip()


@dataclass(frozen=True)
class CurrencyTotal:
    currency: str
    count: int
    amount: Decimal

    @property
    def display(self) -> str:
        return format_amount(self.amount, self.currency)


@dataclass(frozen=True)
class SaleTotals:
    rows: int
    won: list[CurrencyTotal]


def sale_totals(*, sales: QuerySet[Sale]) -> SaleTotals:
    """How many sales the queryset holds, and the count and revenue of its won ones per currency.

    Reverted and deleted sales stay in lists (they are history) but never count as revenue.
    """
    # One pass over the filtered sales for both figures (on a big filtered list each pass is a scan).
    won = Q(state=Sale.State.WON)
    per_currency = list(sales.order_by().values("currency").annotate(
        rows=Count("id"), count=Count("id", filter=won), amount=Sum("amount", filter=won)).order_by("currency"))
    return SaleTotals(rows=sum(row["rows"] for row in per_currency),
                      won=[CurrencyTotal(row["currency"], row["count"], row["amount"] or Decimal(0))
                           for row in per_currency if row["count"]])


@dataclass
class ReportRow:
    key: str | None
    leads: int = 0
    converted: int = 0
    sales: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    bar_percent: float = 0.0

    @property
    def label(self) -> str:
        if self.key is None:
            return NOT_ATTRIBUTED
        return self.key or EMPTY

    @property
    def conversion(self) -> float | None:
        """Share of this group's leads (created in the period) whose deal is won now, in percent."""
        return round(100 * self.converted / self.leads, 1) if self.leads else None

    def revenue_in(self, currency: str) -> Decimal:
        return self.revenue.get(currency, Decimal(0))


@dataclass
class SalesReport:
    group_by: str
    date_from: date
    date_to: date
    rows: list[ReportRow]
    currencies: list[str]

    @property
    def group_label(self) -> str:
        return GROUPINGS[self.group_by][2]

    @property
    def chart_currency(self) -> str | None:
        """The currency the chart draws: the one with the most revenue (the only one, usually)."""
        totals = {c: sum(row.revenue_in(c) for row in self.rows) for c in self.currencies}
        return max(totals, key=totals.get) if totals else None

    @property
    def total(self) -> ReportRow:
        total = ReportRow(key="Total")
        for row in self.rows:
            total.leads += row.leads
            total.converted += row.converted
            total.sales += row.sales
            for currency, amount in row.revenue.items():
                total.revenue[currency] = total.revenue.get(currency, Decimal(0)) + amount
        return total


def _period(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """Whole days in the current time zone, date_to included."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(date_from, time.min, tzinfo=tz)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz)
    return start, end


def sales_report(*, date_from: date, date_to: date, group_by: str, account_id: int | None = None) -> SalesReport:
    """Revenue, sales and lead→sale conversion per UTM source, UTM campaign or lead source.

    Sales and revenue: sales won in the period that are still won. Leads: leads created in the
    period (spam excluded); converted: those of them whose deal is won now. Sales without a lead
    of ours form their own "not attributed" row. A period outside report_period_check's bounds
    raises ReportPeriodError.
    """
    report_period_check(date_from=date_from, date_to=date_to)
    sale_path, lead_path, _ = GROUPINGS[group_by]
    start, end = _period(date_from, date_to)
    sales = Sale.objects.filter(state=Sale.State.WON, won_at__gte=start, won_at__lt=end)
    leads = Lead.objects.filter(created_at__gte=start, created_at__lt=end).exclude(status=Lead.Status.SPAM)
    if account_id is not None:
        sales = sales.filter(account_id=account_id)
        leads = leads.filter(account_id=account_id)

    rows: dict[str | None, ReportRow] = {}

    def row(key: str | None) -> ReportRow:
        return rows.setdefault(key, ReportRow(key=key))

    def add_sales(queryset, key_of) -> None:
        for item in queryset:
            target = row(key_of(item))
            target.sales += item["count"]
            target.revenue[item["currency"]] = target.revenue_in(item["currency"]) + (item["amount"] or Decimal(0))

    per_currency = {"count": Count("id"), "amount": Sum("amount")}
    add_sales(sales.filter(lead__isnull=False).order_by().values(sale_path, "currency").annotate(**per_currency),
              lambda item: item[sale_path] or "")
    add_sales(sales.filter(lead__isnull=True).order_by().values("currency").annotate(**per_currency),
              lambda item: None)
    for item in leads.order_by().values(lead_path).annotate(count=Count("id")):
        row(item[lead_path] or "").leads += item["count"]
    converted = (leads.filter(sales__state=Sale.State.WON).order_by().values(lead_path)
                 .annotate(count=Count("id", distinct=True)))
    for item in converted:
        row(item[lead_path] or "").converted += item["count"]

    report = SalesReport(group_by=group_by, date_from=date_from, date_to=date_to, rows=list(rows.values()),
                         currencies=sorted({currency for r in rows.values() for currency in r.revenue}))
    currency = report.chart_currency
    report.rows.sort(key=lambda r: (-(r.revenue_in(currency) if currency else 0), -r.sales, -r.leads, r.label))
    top = max((r.revenue_in(currency) for r in report.rows), default=0) if currency else 0
    for r in report.rows:
        r.bar_percent = round(float(100 * r.revenue_in(currency) / top), 2) if top else 0.0
    return report
