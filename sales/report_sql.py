"""The SQL pieces of the sales report: a median aggregate, day differences, and which column a grouping reads."""

from django.db.models import Aggregate, F, FloatField, Func


class Median(Aggregate):
    """PostgreSQL's percentile_cont(0.5): the median of the expression within each group (none on SQLite)."""

    function = "percentile_cont"
    template = "percentile_cont(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def as_sqlite(self, compiler, connection, **extra_context):
        return "NULL", []  # `make run` without servers: the report works, without its medians


def days_between(later: str, earlier: str) -> Func:
    return Func(F(later) - F(earlier), template="EXTRACT(EPOCH FROM %(expressions)s) / 86400.0",
                output_field=FloatField())


def lead_group_path(group_by: str, attribution: str = "last") -> str:
    """The Lead column a grouping reads: `utm_campaign` or, under first touch, `first_utm_campaign`."""
    if group_by == "lead_source":
        return "source__name"
    if group_by == "manager":
        return "responsible_user_id"
    return f"first_{group_by}" if attribution == "first" else group_by


def sale_group_path(group_by: str, attribution: str = "last") -> str:
    """The same column seen from a Sale; a manager is the deal's responsible user, attributed or not."""
    return "responsible_user_id" if group_by == "manager" else "lead__" + lead_group_path(group_by, attribution)
