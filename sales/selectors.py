"""Read-only queries behind the sales admin: totals of a filtered list, money formatting, the report period rules."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone
from django.utils.translation import gettext

from .models import Sale

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


def report_bounds(date_from: date, date_to: date) -> tuple[datetime, datetime]:
    """Whole days in the current time zone, date_to included."""
    tz = timezone.get_current_timezone()
    start = datetime.combine(date_from, time.min, tzinfo=tz)
    end = datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=tz)
    return start, end
