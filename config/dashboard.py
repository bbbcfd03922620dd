"""The admin's home page: each amoCRM account's state and numbers, and the problems that need a person.

unfold calls `dashboard_callback` (UNFOLD["DASHBOARD_CALLBACK"]) when it renders the index; the page is
templates/admin/index.html. Built for a million leads: every query is bounded by an index — today's leads and
the month's sales by their time indexes, outstanding leads by the partial outbox index, failed leads of the
last week and the latest push and webhook by backwards walks of the sync log's and the deliveries' time
indexes (monitoring.rules, monitoring.selectors). No count runs over a whole table.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from django.db.models import Count, Sum
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from amocrm.models import Account, Token
from leads.models import Lead
from monitoring.messages import describe
from monitoring.models import Incident
from monitoring.rules import failed_leads_since, last_webhook_at, pending_by_account
from monitoring.selectors import last_push_at
from sales.models import Sale

# Failed leads are counted over this window: a lead records no failure time and a count over every lead
# ever failed would read the whole table (monitoring.rules.failed_leads_since dates them by the sync log).
FAILED_WINDOW = timedelta(days=7)

# The account's health (Account.health()) as the dashboard labels it, with unfold's label colour.
HEALTH = {
    "connected": (gettext_lazy("Connected"), "success"),
    "expiring": (gettext_lazy("Token expires soon"), "warning"),
    "error": (gettext_lazy("Last call failed"), "danger"),
    "not_connected": (gettext_lazy("Not connected"), "info"),
    "needs_reauth": (gettext_lazy("Needs re-authorization"), "danger"),
    "blocked": (gettext_lazy("Blocked by amoCRM"), "danger"),
    "paused": (gettext_lazy("Sending paused"), "warning"),
    "disabled": (gettext_lazy("Disabled"), "warning"),
}


@dataclass
class Problem:
    """Something a person has to do: what is wrong, what to do, and the admin page where it is done."""

    subject: str
    what: str
    todo: str
    url: str


@dataclass
class AccountSummary:
    account: Account
    url: str
    health: str
    health_label: str
    health_variant: str
    leads_today: int = 0
    leads_today_url: str = ""
    pending: int = 0
    pending_url: str = ""
    oldest_pending_at: datetime | None = None
    failed: int = 0
    failed_url: str = ""
    last_push_at: datetime | None = None
    last_webhook_at: datetime | None = None
    sales: int = 0
    revenue: list[tuple[Decimal, str]] = field(default_factory=list)  # (amount, currency) per currency
    sales_url: str = ""


def dashboard_callback(request, context: dict) -> dict:
    """unfold's hook: adds `accounts`, `problems` and the period starts to the index page's context."""
    if request.user.has_perm("amocrm.view_account"):
        context.update(dashboard(now=timezone.now()))
    return context


def dashboard(*, now: datetime) -> dict:
    """Every account's summary and the problems that need a person, for the admin's home page."""
    today = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    month = today.replace(day=1)
    accounts = list(Account.objects.order_by("name", "pk"))
    tokens = {token.account_id: token for token in Token.objects.filter(account__in=accounts)}
    for account in accounts:
        if account.pk in tokens:
            account.token = tokens[account.pk]  # health() reads it; no query per account
    summaries = [_summary(account, now=now) for account in accounts]
    _add_lead_numbers(summaries, today=today, now=now)
    _add_sales(summaries, month=month)
    return {
        "accounts": summaries,
        "problems": problems(summaries),
        "today": today,
        "month": month,
        "failed_days": FAILED_WINDOW.days,
    }


def _summary(account: Account, *, now: datetime) -> AccountSummary:
    health = account.health()
    label, variant = HEALTH.get(health, (health, "info"))
    return AccountSummary(
        account=account, url=reverse("admin:amocrm_account_change", args=[account.pk]),
        health=health, health_label=str(label), health_variant=variant,
        last_push_at=last_push_at(account.pk, now=now), last_webhook_at=last_webhook_at(account.pk, now=now),
    )


def _lead_list(**filters) -> str:
    return f"{reverse('admin:leads_lead_changelist')}?{urlencode(filters)}"


def _add_lead_numbers(summaries: list[AccountSummary], *, today: datetime, now: datetime) -> None:
    today_counts = dict(Lead.objects.filter(created_at__gte=today).values("account")
                        .annotate(n=Count("pk")).order_by().values_list("account", "n"))
    pending = pending_by_account()
    failed = failed_leads_since(now - FAILED_WINDOW)
    for summary in summaries:
        pk = summary.account.pk
        summary.leads_today = today_counts.get(pk, 0)
        summary.leads_today_url = _lead_list(account__id__exact=pk, created_at__gte=today.date().isoformat())
        summary.pending = pending.get(pk, {}).get("count", 0)
        summary.oldest_pending_at = pending.get(pk, {}).get("oldest")
        summary.pending_url = _lead_list(account__id__exact=pk, status__exact=Lead.Status.PENDING)
        summary.failed = failed.get(pk, 0)
        summary.failed_url = _lead_list(account__id__exact=pk, status__exact=Lead.Status.FAILED)


def _add_sales(summaries: list[AccountSummary], *, month: datetime) -> None:
    rows = (Sale.objects.filter(state=Sale.State.WON, won_at__gte=month)
            .values("account", "currency").annotate(n=Count("pk"), total=Sum("amount")).order_by("account", "currency"))
    by_account: dict[int, list[dict]] = {}
    for row in rows:
        by_account.setdefault(row["account"], []).append(row)
    for summary in summaries:
        account = summary.account
        for row in by_account.get(account.pk, []):
            summary.sales += row["n"]
            summary.revenue.append((row["total"], row["currency"] or account.currency))
        summary.sales_url = (f"{reverse('admin:sales_sale_changelist')}?"
                             + urlencode({"account__id__exact": account.pk, "state__exact": Sale.State.WON,
                                          "won_at__gte": month.date().isoformat()}))


def _account_problem(summary: AccountSummary) -> Problem | None:
    """The account's own state, when it stops leads from reaching amoCRM or is about to."""
    name = summary.account.name
    health = summary.health
    if health == "not_connected":
        return Problem(name, _("This account is not connected to amoCRM yet: leads wait here."),
                       _("Open the account and click Connect."), summary.url)
    if health == "needs_reauth":
        return Problem(name, _("amoCRM no longer accepts this account's connection: leads wait here."),
                       _("Open the account and click Connect; the waiting leads are sent right after."), summary.url)
    if health == "blocked":
        return Problem(name, _("amoCRM blocked this integration after too many requests."),
                       _("Ask amoCRM support to lift the block, then click Test connection on the account."),
                       summary.url)
    if health == "error":
        return Problem(name, _("The last call to amoCRM failed; leads are retried automatically."),
                       _("Open the account to read what happened; if it keeps failing, follow the advice there."),
                       summary.url)
    if health == "paused":
        return Problem(name, _("Sending to amoCRM is paused: new leads are accepted and wait here."),
                       _("Resume sending on the account page when you are ready."), summary.url)
    if health == "expiring":
        return Problem(name, _("The access token expires soon."),
                       _("Open the account and click Connect to renew the authorization."), summary.url)
    return None


def problems(summaries: list[AccountSummary]) -> list[Problem]:
    """What needs a person: accounts that cannot send, failed leads, and the open alert incidents."""
    found = []
    for summary in summaries:
        account_problem = _account_problem(summary)
        if account_problem:
            found.append(account_problem)
        if summary.failed:
            found.append(Problem(
                summary.account.name,
                ngettext("%(count)d lead failed to reach amoCRM in the last %(days)d days.",
                         "%(count)d leads failed to reach amoCRM in the last %(days)d days.",
                         summary.failed) % {"count": summary.failed, "days": FAILED_WINDOW.days},
                _("Open the failed leads, read their error, fix the lead source and retry them."),
                summary.failed_url))
    listed = {problem.url for problem in found}
    incidents = Incident.objects.filter(resolved_at__isnull=True).select_related("rule").order_by("-opened_at")[:50]
    for incident in incidents:
        if incident.admin_path in listed:  # the account's state already says it, with the same page to fix it
            continue
        what, todo = describe(incident)
        found.append(Problem(f"{incident.rule.get_kind_display()} — {incident.subject}", what, todo,
                             incident.admin_path or reverse("admin:monitoring_incident_change", args=[incident.pk])))
    return found
