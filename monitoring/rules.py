"""The alert rules: each finds the subjects (accounts, lead sources) that have its problem now.

An evaluator reads only what the other apps already record — account state and health fields,
tokens, the sync log, leads, webhook deliveries — with queries bounded by an index or a time window,
so a run every minute stays cheap at millions of rows. It returns findings; opening, reminding and
resolving incidents is services.alerts_evaluate's job.

The webhook rules read what the webhook health check (amocrm/webhooks/health.py: `webhook_state`,
`webhook_checked_at`) and reconciliation (`deals_changed_seen_at`) record on the account.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Count, Min
from django.urls import reverse

from amocrm.models import Account, SyncLog, Token, WebhookEvent, WebhookState
from leads.models import Lead, LeadSource

from .models import AlertRule

Kind = AlertRule.Kind
# States of accounts that make no calls on purpose or by an operator's choice.
QUIET_STATES = (Account.State.DISABLED, Account.State.NOT_CONNECTED)
# States that have their own rule: other rules do not pile a second message onto the same cause.
BROKEN_STATES = (Account.State.NEEDS_REAUTH, Account.State.BLOCKED)


@dataclass
class Finding:
    """One subject that has the rule's problem now. `details` holds the numbers the message shows."""

    subject_key: str
    subject: str
    admin_path: str
    account_id: int | None = None
    since: datetime | None = None
    details: dict = field(default_factory=dict)


def _account_finding(account: Account, **kwargs) -> Finding:
    return Finding(
        subject_key=f"account:{account.pk}", subject=account.name, account_id=account.pk,
        admin_path=reverse("admin:amocrm_account_change", args=[account.pk]), **kwargs,
    )


def _accounts_by_id(ids) -> dict[int, Account]:
    return {account.pk: account for account in Account.objects.filter(pk__in=list(ids))}


def _counted(rows, accounts: dict[int, Account], *, admin_path: Callable[[Account], str] | None = None,
             threshold: int, minutes: int) -> list[Finding]:
    findings = []
    for row in rows:
        account = accounts.get(row["account"])
        if account is None or row["n"] < threshold or account.state in QUIET_STATES:
            continue
        finding = _account_finding(account, since=row["first"], details={"count": row["n"], "minutes": minutes})
        if admin_path:
            finding.admin_path = admin_path(account)
        findings.append(finding)
    return findings


def account_reauth(rule: AlertRule, now: datetime) -> list[Finding]:
    """The refresh token was revoked or a retried call still got 401: nothing reaches amoCRM until Connect."""
    return [_account_finding(account, since=account.last_error_at)
            for account in Account.objects.filter(state=Account.State.NEEDS_REAUTH)]


def account_blocked(rule: AlertRule, now: datetime) -> list[Finding]:
    """amoCRM answered 403 with its block page: every call stops until its support lifts the block."""
    return [_account_finding(account, since=account.last_error_at)
            for account in Account.objects.filter(state=Account.State.BLOCKED)]


def rate_limited(rule: AlertRule, now: datetime) -> list[Finding]:
    """At least `threshold` answers 429 within `window_minutes` (sync log, by its created_at index)."""
    rows = (SyncLog.objects.filter(created_at__gte=now - timedelta(minutes=rule.window_minutes), http_status=429)
            .exclude(account=None).values("account").annotate(n=Count("id"), first=Min("created_at")))
    rows = list(rows)
    return _counted(rows, _accounts_by_id(row["account"] for row in rows), threshold=rule.threshold,
                    minutes=rule.window_minutes)


# Failed calls in a row (no success between them) that make an outage; one refused request is not one.
OUTAGE_MIN_FAILED_CALLS = 3


def amocrm_unreachable(rule: AlertRule, now: datetime) -> list[Finding]:
    """A connected account's calls have failed for `threshold` minutes: nothing succeeded since, several failed.

    A single failure followed by quiet (a lead amoCRM rejected, then no calls) is not an outage:
    it takes OUTAGE_MIN_FAILED_CALLS failed calls in a row (the account's error_count, reset by a success).
    """
    cutoff = now - timedelta(minutes=rule.threshold)
    findings = []
    for account in Account.objects.filter(state=Account.State.CONNECTED, last_error_at__isnull=False,
                                          error_count__gte=OUTAGE_MIN_FAILED_CALLS):
        last_good = account.last_success_at or account.connected_at
        if last_good is not None and account.last_error_at > last_good and last_good <= cutoff:
            findings.append(_account_finding(account, since=last_good,
                                             details={"minutes": rule.threshold}))
    return findings


def token_refresh_failing(rule: AlertRule, now: datetime) -> list[Finding]:
    """`threshold` failed refreshes within `window_minutes`, or a connected account's token already expired."""
    rows = list(SyncLog.objects.filter(created_at__gte=now - timedelta(minutes=rule.window_minutes),
                                       operation="oauth.refresh", status=SyncLog.Status.ERROR)
                .exclude(account=None).values("account").annotate(n=Count("id"), first=Min("created_at")))
    expired = {token.account_id: token.expires_at for token in Token.objects.filter(
        long_lived=False, account__state=Account.State.CONNECTED, expires_at__lte=now)}
    accounts = _accounts_by_id({row["account"] for row in rows} | set(expired))
    findings = {finding.subject_key: finding for finding in _counted(
        rows, accounts, threshold=rule.threshold, minutes=rule.window_minutes)}
    for account_id, expires_at in expired.items():
        account = accounts[account_id]
        finding = findings.setdefault(f"account:{account_id}", _account_finding(account, since=expires_at))
        finding.details["expired_at"] = expires_at.isoformat()
    return [finding for finding in findings.values() if accounts[finding.account_id].state not in BROKEN_STATES]


def long_lived_expiring(rule: AlertRule, now: datetime) -> list[Finding]:
    """A long-lived token (never refreshed) expires within `threshold` days."""
    tokens = Token.objects.filter(long_lived=True, expires_at__lte=now + timedelta(days=rule.threshold),
                                  account__state=Account.State.CONNECTED).select_related("account")
    return [_account_finding(token.account, since=token.expires_at - timedelta(days=rule.threshold),
                             details={"expires_at": token.expires_at.isoformat(), "days": rule.threshold})
            for token in tokens]


def webhook_disabled(rule: AlertRule, now: datetime) -> list[Finding]:
    """The periodic webhook check found our subscription disabled or missing in amoCRM, and re-creating it failed."""
    broken = Account.objects.filter(state=Account.State.CONNECTED,
                                    webhook_state__in=[WebhookState.DISABLED, WebhookState.MISSING])
    return [_account_finding(account, since=account.webhook_checked_at,
                             details={"webhook_state": account.webhook_state})
            for account in broken]


# A deal change this recent may have its delivery still on the way: not yet a sign of a silent webhook.
DELIVERY_GRACE = timedelta(minutes=10)


def webhook_silent(rule: AlertRule, now: datetime) -> list[Finding]:
    """No webhook for `threshold` hours although reconciliation saw a deal change in amoCRM after the last one."""
    cutoff = now - timedelta(hours=rule.threshold)
    findings = []
    for account in Account.objects.filter(state=Account.State.CONNECTED, deals_changed_seen_at__isnull=False,
                                          deals_changed_seen_at__lte=now - DELIVERY_GRACE):
        changed_at = account.deals_changed_seen_at
        # Quiet since the last delivery, or since the subscription when none arrived yet.
        last = last_webhook_at(account.pk, now=now) or account.webhook_subscribed_at or account.connected_at
        if last is None or (last <= cutoff and changed_at > last):
            findings.append(_account_finding(account, since=last, details={
                "hours": rule.threshold, "changed_at": changed_at.isoformat()}))
    return findings


def last_webhook_at(account_id: int, *, now: datetime, lookback: timedelta = timedelta(days=31)) -> datetime | None:
    """The latest delivery of the account within the retention period: a backwards walk of the received_at index."""
    return (WebhookEvent.objects.filter(account_id=account_id, received_at__gte=now - lookback)
            .order_by("-received_at").values_list("received_at", flat=True).first())


def failed_leads_since(since: datetime) -> dict[int, int]:
    """Failed leads per account whose failure falls after `since`.

    A lead records no failure time, so a failure is dated by the lead's failed amoCRM call in the sync
    log (found through the sync log's created_at index) or, for a lead that failed before any call
    (its deal could not be built), by its creation.
    """
    failed: dict[int, set] = {}
    via_log = (SyncLog.objects.filter(created_at__gte=since, status=SyncLog.Status.ERROR,
                                      leads__status=Lead.Status.FAILED)
               .values_list("leads__account_id", "leads__id").distinct())
    recent = (Lead.objects.filter(created_at__gte=since, status=Lead.Status.FAILED)
              .values_list("account_id", "id"))
    for account_id, lead_id in [*via_log, *recent]:
        failed.setdefault(account_id, set()).add(lead_id)
    return {account_id: len(ids) for account_id, ids in failed.items()}


def leads_failing(rule: AlertRule, now: datetime) -> list[Finding]:
    """At least `threshold` leads failed within `window_minutes`."""
    counts = failed_leads_since(now - timedelta(minutes=rule.window_minutes))
    accounts = _accounts_by_id(counts)
    findings = []
    for account_id, count in counts.items():
        account = accounts.get(account_id)
        if account is None or count < rule.threshold:
            continue
        path = reverse("admin:leads_lead_changelist") + f"?status__exact=failed&account__id__exact={account_id}"
        findings.append(_account_finding(account, details={"count": count, "minutes": rule.window_minutes}))
        findings[-1].admin_path = path
    return findings


def pending_by_account() -> dict[int, dict]:
    """Outstanding (pending or sending) leads per account: count and oldest, from the partial outbox index."""
    rows = (Lead.objects.filter(status__in=[Lead.Status.PENDING, Lead.Status.SENDING])
            .values("account").annotate(n=Count("pk"), oldest=Min("created_at")).order_by())
    return {row["account"]: {"count": row["n"], "oldest": row["oldest"]} for row in rows}


def pending_lead_old(rule: AlertRule, now: datetime) -> list[Finding]:
    """The oldest lead still waiting for amoCRM is older than `threshold` minutes."""
    cutoff = now - timedelta(minutes=rule.threshold)
    pending = {account_id: row for account_id, row in pending_by_account().items() if row["oldest"] <= cutoff}
    findings = []
    for account in Account.objects.filter(pk__in=list(pending)).exclude(state__in=BROKEN_STATES):
        row = pending[account.pk]
        finding = _account_finding(account, since=row["oldest"], details={
            "count": row["count"], "minutes": rule.threshold})
        finding.admin_path = (reverse("admin:leads_lead_changelist")
                              + f"?status__exact=pending&account__id__exact={account.pk}")
        findings.append(finding)
    return findings


def source_silent(rule: AlertRule, now: datetime) -> list[Finding]:
    """An active lead source (the chosen ones, or all) received no lead for `threshold` hours."""
    cutoff = now - timedelta(hours=rule.threshold)
    sources = LeadSource.objects.filter(is_active=True, created_at__lte=cutoff).exclude(
        account__state=Account.State.DISABLED)
    chosen = list(rule.sources.values_list("pk", flat=True))
    if chosen:
        sources = sources.filter(pk__in=chosen)
    sources = list(sources)
    # One range scan of the created_at index over the window, not a search through each source's history.
    heard = set(Lead.objects.filter(created_at__gt=cutoff, source__in=sources).values_list("source", flat=True)
                .distinct())
    return [Finding(subject_key=f"source:{source.pk}", subject=source.name, account_id=source.account_id,
                    admin_path=reverse("admin:leads_leadsource_change", args=[source.pk]),
                    details={"hours": rule.threshold})
            for source in sources if source.pk not in heard]


def webhook_events_failing(rule: AlertRule, now: datetime) -> list[Finding]:
    """At least `threshold` webhook deliveries failed within `window_minutes`."""
    rows = list(WebhookEvent.objects.filter(received_at__gte=now - timedelta(minutes=rule.window_minutes),
                                            state=WebhookEvent.State.FAILED)
                .values("account").annotate(n=Count("id"), first=Min("received_at")).order_by())
    return _counted(
        rows, _accounts_by_id(row["account"] for row in rows), threshold=rule.threshold, minutes=rule.window_minutes,
        admin_path=lambda account: (reverse("admin:amocrm_webhookevent_changelist")
                                    + f"?state__exact=failed&account__id__exact={account.pk}"),
    )


EVALUATORS: dict[str, Callable[[AlertRule, datetime], list[Finding]]] = {
    Kind.ACCOUNT_REAUTH: account_reauth,
    Kind.ACCOUNT_BLOCKED: account_blocked,
    Kind.RATE_LIMITED: rate_limited,
    Kind.AMOCRM_UNREACHABLE: amocrm_unreachable,
    Kind.TOKEN_REFRESH_FAILING: token_refresh_failing,
    Kind.LONG_LIVED_EXPIRING: long_lived_expiring,
    Kind.WEBHOOK_DISABLED: webhook_disabled,
    Kind.WEBHOOK_SILENT: webhook_silent,
    Kind.LEADS_FAILING: leads_failing,
    Kind.PENDING_LEAD_OLD: pending_lead_old,
    Kind.SOURCE_SILENT: source_silent,
    Kind.WEBHOOK_EVENTS_FAILING: webhook_events_failing,
}
