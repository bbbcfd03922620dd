"""The sales report, computed once for the admin page, its CSV/XLSX and `manage.py sales_report`: money by campaign.

Every figure comes from GROUP BY aggregates over indexed columns (leads by `created_at`, sales by
`state, won_at`, spend by `day`), never from rows loaded one by one, so a year over a million leads
stays within a few seconds (bench/report.py).

Definitions (the same everywhere the report is shown):

- leads: leads created in the period, spam excluded; deals: those of them that have an amoCRM deal;
  won: those whose deal is won now; lost: those whose deal is in the lost stage (143) now;
- sales and revenue: sales won in the period that are still won (grouped by the lead they are
  attributed to; sales without a lead of ours form the "not attributed" row);
- cost: ad spend of the period for the group's UTM value (only UTM groupings carry cost);
- attribution: `last` groups by the UTMs of the page the form was sent from, `first` by the
  lead's first touch (`first_utm_*`).
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncMonth
from django.utils.translation import gettext, gettext_lazy

from amocrm.models import Account, AmoUser, Stage
from leads.models import Lead

from .models import AdSpend, Sale
from .report_sql import Median, days_between, lead_group_path, sale_group_path
from .selectors import report_bounds, report_period_check

LOST_STAGE = 143
WON_STAGE = 142
GROUPINGS = {
    "utm_source": gettext_lazy("UTM source"),
    "utm_medium": gettext_lazy("UTM medium"),
    "utm_campaign": gettext_lazy("UTM campaign"),
    "lead_source": gettext_lazy("Lead source"),
    "manager": gettext_lazy("Manager"),
}
ATTRIBUTIONS = {"last": gettext_lazy("Last touch"), "first": gettext_lazy("First touch")}
TOP_LOSS_REASONS = 3
REPORT_WORK_MEM = "64MB"


@dataclass
class ReportRow:
    key: object
    name: str | None = None
    leads: int = 0
    deals: int = 0
    converted: int = 0
    lost: int = 0
    sales: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)
    cost: Decimal = Decimal(0)
    median_days_to_win: float | None = None
    loss_reasons: list[tuple[str, int]] = field(default_factory=list)
    funnel: dict[int, int] = field(default_factory=dict)  # stage id → leads whose deal reached it
    currency: str = ""  # the report's main currency: the money measures are computed in it
    bar_percent: float = 0.0

    @property
    def label(self) -> str:
        if self.name is not None:
            return self.name
        if self.key is None:
            return gettext("(not attributed)")
        return str(self.key) or gettext("(none)")

    def revenue_in(self, currency: str) -> Decimal:
        return self.revenue.get(currency, Decimal(0))

    @property
    def main_revenue(self) -> Decimal:
        return self.revenue_in(self.currency)

    @property
    def conversion(self) -> float | None:
        """Share of this group's leads whose deal is won now, in percent."""
        return _percent(self.converted, self.leads)

    @property
    def average_deal(self) -> Decimal | None:
        return _money(self.main_revenue / self.sales) if self.sales else None

    @property
    def cost_per_lead(self) -> Decimal | None:
        return _money(self.cost / self.leads) if self.cost and self.leads else None

    @property
    def cost_per_sale(self) -> Decimal | None:
        return _money(self.cost / self.sales) if self.cost and self.sales else None

    @property
    def romi(self) -> float | None:
        """Return on marketing investment: (revenue − cost) / cost, in percent."""
        return _percent(self.main_revenue - self.cost, self.cost) if self.cost else None

    @property
    def drr(self) -> float | None:
        """ДРР: the share of revenue spent on ads, in percent."""
        return _percent(self.cost, self.main_revenue) if self.cost and self.main_revenue else None

    @property
    def loss_reasons_text(self) -> str:
        return ", ".join(f"{name} ({count})" for name, count in self.loss_reasons)


def _percent(part, whole) -> float | None:
    return round(float(100 * Decimal(part) / Decimal(whole)), 1) if whole else None


def _money(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.01"))


@dataclass
class FunnelStage:
    id: int
    name: str


@dataclass
class SalesReport:
    group_by: str
    attribution: str
    date_from: date
    date_to: date
    rows: list[ReportRow]
    currencies: list[str]
    currency: str = ""
    total: ReportRow | None = None
    pipeline_name: str = ""
    stages: list[FunnelStage] = field(default_factory=list)
    cohorts: list["Cohort"] = field(default_factory=list)  # leads by the month they came in

    @property
    def group_label(self) -> str:
        return str(GROUPINGS[self.group_by])

    @property
    def chart_currency(self) -> str | None:
        return self.currency or None

    @property
    def has_cost(self) -> bool:
        return self.group_by.startswith("utm_")


def _add_total(rows: list[ReportRow], currency: str, cost: Decimal) -> ReportRow:
    total = ReportRow(key="Total", name=gettext("Total"), currency=currency, cost=cost)
    for row in rows:
        for name in ("leads", "deals", "converted", "lost", "sales"):
            setattr(total, name, getattr(total, name) + getattr(row, name))
        for cur, amount in row.revenue.items():
            total.revenue[cur] = total.revenue_in(cur) + amount
        for stage, count in row.funnel.items():
            total.funnel[stage] = total.funnel.get(stage, 0) + count
    return total


def _scoped(queryset, account_id, account_path="account_id"):
    return queryset if account_id is None else queryset.filter(**{account_path: account_id})


def sales_report(*, date_from: date, date_to: date, group_by: str, attribution: str = "last",
                 account_id: int | None = None, pipeline_id: int | None = None) -> SalesReport:
    """The report for a period (ReportPeriodError when it is out of bounds); see the module's definitions."""
    report_period_check(date_from=date_from, date_to=date_to)
    if group_by not in GROUPINGS or attribution not in ATTRIBUTIONS:
        raise ValueError(f"unknown grouping {group_by!r} or attribution {attribution!r}")
    start, end = report_bounds(date_from, date_to)
    lead_path, sale_path = lead_group_path(group_by, attribution), sale_group_path(group_by, attribution)
    leads = _scoped(Lead.objects.filter(created_at__gte=start, created_at__lt=end)
                    .exclude(status=Lead.Status.SPAM), account_id)
    sales = _scoped(Sale.objects.filter(state=Sale.State.WON, won_at__gte=start, won_at__lt=end), account_id)
    rows: dict[object, ReportRow] = {}

    def row(key) -> ReportRow:
        return rows.setdefault(key, ReportRow(key=key))

    cohorts: dict[date, Cohort] = {}
    with transaction.atomic(), connection.cursor() as cursor:
        postgres = connection.vendor == "postgresql"
        if postgres:
            # Tens of thousands of groups over a year: aggregated in memory, not sorted on disk; and
            # hashed, not sorted: the planner overestimates the groups of five columns (campaign ×
            # stage × month × reason…) and would sort a million rows (bench/README.md, report).
            cursor.execute(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'")
            cursor.execute("SET LOCAL enable_sort = off")
        stage_counts = _lead_pass(row, cohorts, leads, lead_path, group_by)
        if postgres:
            cursor.execute("SET LOCAL enable_sort = on")
        _cohort_sales_pass(row, cohorts, lead_path, group_by, account_id, start, end)
        _sales_pass(row, sales, sale_path)
    currencies = sorted({currency for r in rows.values() for currency in r.revenue})
    currency = _main_currency(rows.values(), account_id)
    total_cost = _add_cost(row, group_by, date_from, date_to, currency)
    report = SalesReport(group_by=group_by, attribution=attribution, date_from=date_from, date_to=date_to,
                         rows=list(rows.values()), currencies=currencies, currency=currency)
    _name_managers(report.rows, group_by)
    _funnel(report, stage_counts, pipeline_id)
    report.cohorts = [cohorts[month] for month in sorted(cohorts)]
    for cohort in report.cohorts:
        cohort.revenue = cohort.revenue_by_currency.get(currency, Decimal(0))
    for r in report.rows:
        r.currency = currency
    report.rows.sort(key=lambda r: (-r.main_revenue, -r.sales, -r.leads, -r.cost, r.label))
    report.total = _add_total(report.rows, currency, total_cost)
    top = max((r.main_revenue for r in report.rows), default=0)
    for r in report.rows:
        r.bar_percent = round(float(100 * r.main_revenue / top), 2) if top else 0.0
    return report


def _sales_pass(row, sales, sale_path: str) -> None:
    """Sales of the period and their median days from lead to win, per group; without a lead (the left
    join's NULL) they form the "not attributed" row. The median is the one of the group's biggest currency."""
    medians: dict[object, tuple[int, float]] = {}
    for item in (sales.order_by().values(sale_path, "currency")
                 .annotate(count=Count("id"), amount=Sum("amount"),
                           median=Median(days_between("won_at", "lead__created_at")))):
        key = item[sale_path]
        _add_sales(row(key), item)
        if item["median"] is not None and item["count"] > medians.get(key, (0, None))[0]:
            medians[key] = (item["count"], item["median"])
    for key, (_, median) in medians.items():
        row(key).median_days_to_win = round(median, 1)


def _month(moment) -> date:
    return moment.date() if hasattr(moment, "date") else moment


def _lead_pass(row, cohorts: dict, leads, lead_path: str, group_by: str) -> list:
    """One scan of the period's leads (with their loss, if any) per group, stage, month and loss reason.

    Gives leads, deals, lost and the top loss reasons per group, the funnel's stage counts and the
    cohorts' leads, deals and lost. A lead has at most one DealLoss (its deal's), so the outer join
    never counts a lead twice.
    """
    stage_counts, reasons = [], {}
    grouped = (leads.order_by().values(lead_path, "pipeline_id", "stage_id", "losses__loss_reason",
                                       month=TruncMonth("created_at"))
               .annotate(count=Count("id"), deals=Count("id", filter=Q(amocrm_deal_id__isnull=False))))
    for item in grouped:
        target = row(_key(item[lead_path], group_by))
        target.leads += item["count"]
        target.deals += item["deals"]
        month = _month(item["month"])
        cohort = cohorts.setdefault(month, Cohort(month))
        cohort.leads += item["count"]
        cohort.deals += item["deals"]
        if item["stage_id"] == LOST_STAGE:
            target.lost += item["count"]
            cohort.lost += item["count"]
            if item["losses__loss_reason"] is not None:
                name = item["losses__loss_reason"] or gettext("no reason given")
                per_row = reasons.setdefault(id(target), (target, {}))[1]
                per_row[name] = per_row.get(name, 0) + item["count"]
        stage_counts.append((target, item["pipeline_id"], item["stage_id"], item["count"]))
    for target, counted in reasons.values():
        target.loss_reasons = sorted(counted.items(), key=lambda pair: (-pair[1], pair[0]))[:TOP_LOSS_REASONS]
    return stage_counts


def _cohort_sales_pass(row, cohorts: dict, lead_path: str, group_by: str, account_id, start, end) -> None:
    """Won leads of the period (converted) per group, and the cohorts' won leads and revenue, in one query."""
    won = _scoped(Sale.objects.filter(state=Sale.State.WON, lead__created_at__gte=start, lead__created_at__lt=end)
                  .exclude(lead__status=Lead.Status.SPAM), account_id, "lead__account_id")
    for item in (won.order_by().values("lead__" + lead_path, "currency", month=TruncMonth("lead__created_at"))
                 .annotate(count=Count("lead_id", distinct=True), amount=Sum("amount"))):
        row(_key(item["lead__" + lead_path], group_by)).converted += item["count"]
        cohort = cohorts.setdefault(_month(item["month"]), Cohort(_month(item["month"])))
        cohort.won += item["count"]
        cohort.revenue_by_currency[item["currency"]] = (cohort.revenue_by_currency.get(item["currency"], Decimal(0))
                                                        + (item["amount"] or Decimal(0)))


def _key(value, group_by: str):
    """Empty UTM values are one group "(none)"; a manager-less deal is the "not attributed" group."""
    if group_by == "manager":
        return value
    return value or ""


def _add_sales(target: ReportRow, item: dict) -> None:
    target.sales += item["count"]
    target.revenue[item["currency"]] = target.revenue_in(item["currency"]) + (item["amount"] or Decimal(0))


def _main_currency(rows, account_id: int | None) -> str:
    """The currency with the most revenue; without revenue, the account's (or RUB)."""
    totals: dict[str, Decimal] = {}
    for r in rows:
        for currency, amount in r.revenue.items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
    if totals:
        return max(sorted(totals), key=totals.get)
    accounts = Account.objects.exclude(currency="")
    found = _scoped(accounts, account_id, "pk").values_list("currency", flat=True).first()
    return found or "RUB"


def _add_cost(row, group_by: str, date_from: date, date_to: date, currency: str) -> Decimal:
    """Spend of the period in the report's currency, per group for UTM groupings; returns the total."""
    spend = AdSpend.objects.filter(day__gte=date_from, day__lte=date_to, currency=currency)
    if not group_by.startswith("utm_"):
        return spend.aggregate(cost=Sum("cost"))["cost"] or Decimal(0)
    total = Decimal(0)
    for item in spend.order_by().values(group_by).annotate(cost=Sum("cost")):
        row(item[group_by] or "").cost += item["cost"]
        total += item["cost"]
    return total


def _name_managers(rows: list[ReportRow], group_by: str) -> None:
    if group_by != "manager":
        return
    ids = [r.key for r in rows if r.key is not None]
    names = dict(AmoUser.objects.filter(amocrm_id__in=ids).values_list("amocrm_id", "name"))
    for r in rows:
        if r.key is None:
            r.name = gettext("(no manager)")
        else:
            r.name = names.get(r.key) or gettext("User %(id)s (sync metadata to see the name)") % {"id": r.key}


def _funnel(report: SalesReport, stage_counts: list, pipeline_id: int | None) -> None:
    """Leads whose deal reached each stage of one pipeline, read from the stage each deal is in now.

    A deal in a later stage (or won) has passed the earlier ones. amoCRM does not say where a lost
    deal was lost, so a lost deal counts in the first stage only.
    """
    per_pipeline: dict[int, int] = {}
    for _, pipeline, _, count in stage_counts:
        if pipeline is not None:
            per_pipeline[pipeline] = per_pipeline.get(pipeline, 0) + count
    pipeline_id = pipeline_id or (max(per_pipeline, key=per_pipeline.get) if per_pipeline else None)
    if pipeline_id is None:
        return
    stages = list(Stage.objects.filter(pipeline__amocrm_id=pipeline_id).select_related("pipeline")
                  .order_by("sort", "amocrm_id"))
    seen, ordered = set(), []
    for stage in stages:
        if stage.amocrm_id not in seen and stage.amocrm_id != LOST_STAGE:
            seen.add(stage.amocrm_id)
            ordered.append(stage)
    if not ordered:
        return
    report.pipeline_name = ordered[0].pipeline.name
    report.stages = [FunnelStage(stage.amocrm_id, stage.name) for stage in ordered]
    position = {stage.amocrm_id: index for index, stage in enumerate(ordered)}
    for target, pipeline, stage_id, count in stage_counts:
        if pipeline != pipeline_id or stage_id is None:
            continue
        reached = 0 if stage_id == LOST_STAGE else position.get(stage_id)
        if reached is None:
            continue
        for stage in ordered[:reached + 1]:
            target.funnel[stage.amocrm_id] = target.funnel.get(stage.amocrm_id, 0) + count


@dataclass
class Cohort:
    """Leads that came in one month: how many got a deal, were won or lost, and the revenue they brought."""

    month: date
    leads: int = 0
    deals: int = 0
    won: int = 0
    lost: int = 0
    revenue: Decimal = Decimal(0)  # in the report's currency
    revenue_by_currency: dict[str, Decimal] = field(default_factory=dict)

    @property
    def conversion(self) -> float | None:
        return _percent(self.won, self.leads)
