"""Admin lists over big tables: a paginator that never counts a whole table, and a cheap date hierarchy.

Django's changelist counts every matching row for its paginator (`SELECT COUNT(*)` over millions of rows when
nothing is filtered) and builds the date hierarchy with `SELECT DISTINCT date_trunc(...)` over every row.
Here the count is the planner's estimate for an unfiltered list, and a count capped at COUNT_CAP rows
otherwise (past the cap, the planner's estimate again); the date hierarchy's periods are found with one
indexed EXISTS per candidate period between the first and the last row.
"""

import json
from datetime import datetime, timedelta

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

COUNT_CAP = 1_000
# A hierarchy level with more candidate periods than this falls back to Django's DISTINCT (never in the admin:
# a level is the years, the months of one year or the days of one month).
MAX_PERIODS = 400


class EstimatedCountPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows; beyond that (or for an unfiltered big table) uses PostgreSQL's estimate."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return super().count
        if not queryset.query.where:
            estimate = table_estimate(queryset)
            if estimate > COUNT_CAP:
                return estimate
        # Only the key: annotations (names looked up per row) cost nothing in a count.
        capped = queryset.order_by().values("pk")[:COUNT_CAP + 1].count()
        if capped <= COUNT_CAP:
            return capped
        return max(capped, plan_estimate(queryset))


def table_estimate(queryset: QuerySet) -> int:
    """Rows in the queryset's table as of the last ANALYZE (0 when unknown or not on PostgreSQL)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
                       [queryset.model._meta.db_table])
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row and row[0] is not None else 0


def plan_estimate(queryset: QuerySet) -> int:
    """The planner's row estimate for the queryset (0 when not on PostgreSQL)."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return 0
    sql, params = queryset.order_by().values("pk").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0]
    if isinstance(plan, str):  # psycopg returns the JSON parsed, other drivers may not
        plan = json.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


class CheapDatesQuerySet(QuerySet):
    """`dates()`/`datetimes()` (what the admin's date hierarchy calls) by indexed EXISTS per period, not DISTINCT.

    The date hierarchy first asks this same queryset for the field's Min and Max; they are kept and reused
    rather than asked for twice.
    """

    def aggregate(self, *args, **kwargs):
        result = super().aggregate(*args, **kwargs)
        if not args and set(kwargs) == {"first", "last"} and isinstance(kwargs["first"], Min) \
                and isinstance(kwargs["last"], Max):
            self._date_bounds = (getattr(kwargs["first"].source_expressions[0], "name", None), result)
        return result

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        found = self._periods_with_rows(field_name, kind, tzinfo)
        if found is None:
            return super().datetimes(field_name, kind, order, tzinfo)
        return found if order == "ASC" else found[::-1]

    def dates(self, field_name, kind, order="ASC"):
        found = self._periods_with_rows(field_name, kind, None)
        if found is None:
            return super().dates(field_name, kind, order)
        days = [moment.date() for moment in found]
        return days if order == "ASC" else days[::-1]

    def _periods_with_rows(self, field_name: str, kind: str, tzinfo) -> list[datetime] | None:
        if kind not in ("year", "month", "day"):
            return None
        known = getattr(self, "_date_bounds", None)
        if known and known[0] == field_name:
            bounds = known[1]
        else:
            bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if bounds["first"] is None:
            return []
        tz = tzinfo or timezone.get_current_timezone()
        first, last = (_as_datetime(bounds[key], tz) for key in ("first", "last"))
        starts = period_starts(first, last, kind)
        if len(starts) > MAX_PERIODS:
            return None
        ends = starts[1:] + [_next_period(starts[-1], kind)]
        return [start for start, end in zip(starts, ends, strict=True)
                if self.filter(**{f"{field_name}__gte": start, f"{field_name}__lt": end}).exists()]


def _as_datetime(value, tz) -> datetime:
    if isinstance(value, datetime):
        return timezone.localtime(value, tz) if timezone.is_aware(value) else value
    return datetime(value.year, value.month, value.day)


def period_starts(first: datetime, last: datetime, kind: str) -> list[datetime]:
    """The starts of every year, month or day from the one holding `first` to the one holding `last`."""
    start = first.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind in ("year", "month"):
        start = start.replace(day=1)
    if kind == "year":
        start = start.replace(month=1)
    if start.tzinfo is not None:  # the start of the day in that zone (DST moves the offset)
        start = timezone.make_aware(start.replace(tzinfo=None), start.tzinfo)
    starts = []
    while start <= last:
        starts.append(start)
        start = _next_period(start, kind)
    return starts


def _next_period(start: datetime, kind: str) -> datetime:
    naive = start.replace(tzinfo=None)
    if kind == "year":
        naive = naive.replace(year=naive.year + 1)
    elif kind == "month":
        naive = naive.replace(year=naive.year + naive.month // 12, month=naive.month % 12 + 1)
    else:
        naive = naive + timedelta(days=1)
    return timezone.make_aware(naive, start.tzinfo) if start.tzinfo is not None else naive


def with_cheap_dates(queryset: QuerySet) -> QuerySet:
    """The queryset, its class switched so that the date hierarchy built on it costs indexed lookups only."""
    cls = queryset.__class__
    if issubclass(cls, CheapDatesQuerySet):
        return queryset
    cheap = _CLASSES.get(cls)
    if cheap is None:
        cheap = _CLASSES[cls] = type(f"CheapDates{cls.__name__}", (CheapDatesQuerySet, cls), {})
    clone = queryset._chain()
    clone.__class__ = cheap
    return clone


_CLASSES: dict[type, type] = {}
