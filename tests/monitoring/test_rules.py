"""Each alert rule: one message when a problem appears, a reminder after its quiet period, one when it clears."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from amocrm.models import Account, SyncLog, Token, WebhookEvent, WebhookState
from leads.models import Lead, LeadSource
from monitoring import rules, services
from monitoring.models import AlertRule, Incident, IncidentEvent, Notification

from .conftest import send_queued

pytestmark = pytest.mark.account(name="Shop")  # the account name the messages and pages show

Kind = AlertRule.Kind


def _log(account, **fields):
    return SyncLog.objects.create(account=account, operation=fields.pop("operation", "leads.complex"),
                                  status=fields.pop("status", SyncLog.Status.ERROR), **fields)


def _lead(account, *, status, created_at=None):
    source = LeadSource.objects.filter(account=account).first() or LeadSource.objects.create(
        account=account, name="Form")
    return Lead.objects.create(source=source, account=account, phone="+79123456789", status=status,
                               created_at=created_at or timezone.now())


def _event(account, state, *, received_at=None):
    event = WebhookEvent.objects.create(account=account, body=b"x", body_sha256="0" * 64, state=state)
    if received_at is not None:
        WebhookEvent.objects.filter(pk=event.pk).update(received_at=received_at)
    return event


def _quiet_source(account, *, since):
    source = LeadSource.objects.create(account=account, name="Landing")
    LeadSource.objects.filter(pk=source.pk).update(created_at=since)


def _set_account(account, **fields):
    Account.objects.filter(pk=account.pk).update(**fields)


# kind -> (break it, fix it); both take the account and the current time.
CASES = {
    Kind.ACCOUNT_REAUTH: (
        lambda a, now: _set_account(a, state=Account.State.NEEDS_REAUTH, last_error_at=now,
                                    last_error="amoCRM rejected a freshly refreshed token (401 twice)"),
        lambda a, now: _set_account(a, state=Account.State.CONNECTED),
    ),
    Kind.ACCOUNT_BLOCKED: (
        lambda a, now: _set_account(a, state=Account.State.BLOCKED, last_error_at=now),
        lambda a, now: _set_account(a, state=Account.State.CONNECTED),
    ),
    Kind.RATE_LIMITED: (
        lambda a, now: [_log(a, http_status=429) for _ in range(10)],
        lambda a, now: SyncLog.objects.filter(http_status=429).update(created_at=now - timedelta(days=1)),
    ),
    Kind.AMOCRM_UNREACHABLE: (
        lambda a, now: _set_account(a, last_success_at=now - timedelta(minutes=20), last_error_at=now, error_count=3,
                                    last_error="amoCRM did not answer in time (ReadTimeout)."),
        lambda a, now: _set_account(a, last_success_at=now),
    ),
    Kind.TOKEN_REFRESH_FAILING: (
        lambda a, now: [_log(a, operation="oauth.refresh", http_status=503) for _ in range(2)],
        lambda a, now: SyncLog.objects.filter(operation="oauth.refresh").update(created_at=now - timedelta(days=1)),
    ),
    Kind.LONG_LIVED_EXPIRING: (
        lambda a, now: Token.objects.filter(account=a).update(long_lived=True, expires_at=now + timedelta(days=3)),
        lambda a, now: Token.objects.filter(account=a).update(expires_at=now + timedelta(days=365)),
    ),
    Kind.WEBHOOK_DISABLED: (
        lambda a, now: _set_account(a, webhook_state=WebhookState.DISABLED, webhook_checked_at=now),
        lambda a, now: _set_account(a, webhook_state=WebhookState.OK, webhook_checked_at=now),
    ),
    Kind.WEBHOOK_SILENT: (
        lambda a, now: (_event(a, WebhookEvent.State.PROCESSED, received_at=now - timedelta(hours=8)),
                        _set_account(a, deals_changed_seen_at=now - timedelta(hours=1))),
        lambda a, now: _event(a, WebhookEvent.State.PROCESSED, received_at=now),
    ),
    Kind.LEADS_FAILING: (
        lambda a, now: _lead(a, status=Lead.Status.FAILED),
        lambda a, now: Lead.objects.filter(account=a).update(status=Lead.Status.SENT, sent_at=now),
    ),
    Kind.PENDING_LEAD_OLD: (
        lambda a, now: _lead(a, status=Lead.Status.PENDING, created_at=now - timedelta(minutes=40)),
        lambda a, now: Lead.objects.filter(account=a).update(status=Lead.Status.SENT, sent_at=now),
    ),
    Kind.SOURCE_SILENT: (
        lambda a, now: _quiet_source(a, since=now - timedelta(days=2)),
        lambda a, now: _lead(a, status=Lead.Status.SENT),
    ),
    Kind.WEBHOOK_EVENTS_FAILING: (
        lambda a, now: [_event(a, WebhookEvent.State.FAILED) for _ in range(3)],
        lambda a, now: WebhookEvent.objects.update(state=WebhookEvent.State.PROCESSED),
    ),
}


def test_every_rule_of_the_issue_has_a_break_and_fix_case():
    assert set(CASES) == set(Kind) == set(rules.EVALUATORS)


def _emails_with(word: str) -> list:
    return [message for message in mail.outbox if message.subject.startswith(word)]


@pytest.mark.parametrize("kind", list(CASES), ids=str)
def test_each_rule_fires_once_reminds_after_its_quiet_period_and_resolves(kind, account, email_channel,
                                                                          time_machine):
    start = timezone.now().replace(microsecond=0)
    time_machine.move_to(start, tick=False)
    rule = AlertRule.objects.get(kind=kind)
    AlertRule.objects.exclude(pk=rule.pk).update(enabled=False)  # one rule at a time
    rule.enabled, rule.reminder_minutes = True, 10
    rule.save()
    break_it, fix_it = CASES[kind]

    services.alerts_evaluate()
    assert not Incident.objects.exists(), "nothing is wrong yet"

    break_it(account, start)
    services.alerts_evaluate()
    send_queued()
    incident = Incident.objects.get()
    assert incident.rule == rule and incident.is_open
    assert len(mail.outbox) == 1
    opened = mail.outbox[0]
    assert opened.subject.startswith("Problem: ") and opened.to == ["ops@example.com", "boss@example.com"]
    assert "What broke:" in opened.body and "What to do:" in opened.body
    assert "http://testserver/admin/" in opened.body and incident.admin_path in opened.body

    for minutes in (1, 5, 9):  # seen again and again within the quiet period: no second message
        time_machine.move_to(start + timedelta(minutes=minutes), tick=False)
        services.alerts_evaluate()
        send_queued()
    assert len(mail.outbox) == 1
    assert Incident.objects.get().last_seen_at == start + timedelta(minutes=9)

    time_machine.move_to(start + timedelta(minutes=10), tick=False)
    services.alerts_evaluate()
    send_queued()
    assert len(mail.outbox) == 2 and mail.outbox[1].subject.startswith("Still broken: ")

    time_machine.move_to(start + timedelta(minutes=12), tick=False)
    fix_it(account, timezone.now())
    services.alerts_evaluate()
    send_queued()
    assert len(mail.outbox) == 3 and mail.outbox[2].subject.startswith("Fixed: ")
    incident.refresh_from_db()
    assert incident.resolved_at == start + timedelta(minutes=12)
    assert list(incident.events.values_list("kind", flat=True)) == ["opened", "reminded", "resolved"]
    assert Notification.objects.filter(state=Notification.State.SENT).count() == 3

    time_machine.move_to(start + timedelta(minutes=30), tick=False)
    services.alerts_evaluate()
    send_queued()
    assert len(mail.outbox) == 3 and Incident.objects.count() == 1


def test_a_problem_that_comes_back_after_resolving_is_a_new_incident(account, email_channel):
    _set_account(account, state=Account.State.NEEDS_REAUTH)
    services.alerts_evaluate()
    _set_account(account, state=Account.State.CONNECTED)
    services.alerts_evaluate()
    _set_account(account, state=Account.State.NEEDS_REAUTH)
    services.alerts_evaluate()
    send_queued()
    assert Incident.objects.filter(rule__kind=Kind.ACCOUNT_REAUTH).count() == 2
    assert [m.subject.split(":")[0] for m in mail.outbox] == ["Problem", "Fixed", "Problem"]


def test_no_reminder_when_the_rule_says_never(account, email_channel, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    AlertRule.objects.filter(kind=Kind.ACCOUNT_BLOCKED).update(reminder_minutes=0)
    _set_account(account, state=Account.State.BLOCKED)
    services.alerts_evaluate()
    time_machine.shift(timedelta(days=3))
    services.alerts_evaluate()
    assert IncidentEvent.objects.filter(kind=IncidentEvent.Kind.REMINDED).count() == 0


def test_a_switched_off_rule_closes_its_incidents_without_a_message(account, email_channel):
    _set_account(account, state=Account.State.BLOCKED)
    services.alerts_evaluate()
    send_queued()
    AlertRule.objects.filter(kind=Kind.ACCOUNT_BLOCKED).update(enabled=False)
    services.alerts_evaluate()
    send_queued()
    assert Incident.objects.get().resolved_at is not None
    assert len(mail.outbox) == 1


def test_a_failing_rule_evaluation_leaves_its_incidents_open(account, email_channel, monkeypatch):
    _set_account(account, state=Account.State.BLOCKED)
    services.alerts_evaluate()

    def broken(rule, now):
        raise RuntimeError("database hiccup")

    monkeypatch.setitem(rules.EVALUATORS, Kind.ACCOUNT_BLOCKED, broken)
    totals = services.alerts_evaluate()
    assert totals["errors"] == 1
    assert Incident.objects.get().is_open, "a broken query must not look like a fixed problem"


def test_an_expired_token_that_was_not_refreshed_is_a_refresh_failure(account, email_channel):
    Token.objects.filter(account=account).update(expires_at=timezone.now() - timedelta(minutes=5))
    services.alerts_evaluate()
    send_queued()
    incident = Incident.objects.get(rule__kind=Kind.TOKEN_REFRESH_FAILING)
    assert "expired_at" in incident.details
    assert "was not refreshed" in mail.outbox[0].body


def test_pending_leads_of_an_account_that_needs_reauthorization_send_one_message_not_two(account, email_channel):
    _set_account(account, state=Account.State.NEEDS_REAUTH)
    _lead(account, status=Lead.Status.PENDING, created_at=timezone.now() - timedelta(hours=2))
    services.alerts_evaluate()
    assert list(Incident.objects.values_list("rule__kind", flat=True)) == [Kind.ACCOUNT_REAUTH]


def test_a_lead_that_failed_long_after_it_arrived_counts_by_its_failed_amocrm_call(account, email_channel):
    lead = _lead(account, status=Lead.Status.FAILED, created_at=timezone.now() - timedelta(days=2))
    services.alerts_evaluate()
    assert not Incident.objects.exists(), "its failure is not dated yet: no sync-log row"
    lead.sync_logs.add(_log(account, http_status=400))
    services.alerts_evaluate()
    assert Incident.objects.get().details["count"] == 1


def test_silent_source_watches_only_the_chosen_sources(account, email_channel):
    old = timezone.now() - timedelta(days=2)
    quiet = LeadSource.objects.create(account=account, name="Quiet")
    other = LeadSource.objects.create(account=account, name="Other")
    LeadSource.objects.update(created_at=old)
    rule = AlertRule.objects.get(kind=Kind.SOURCE_SILENT)
    assert not rule.enabled, "off by default"
    rule.enabled = True
    rule.save()
    rule.sources.set([quiet])
    services.alerts_evaluate()
    assert list(Incident.objects.values_list("subject_key", flat=True)) == [f"source:{quiet.pk}"]
    assert other.pk != quiet.pk


def test_one_refused_call_followed_by_quiet_is_not_an_outage(account, email_channel):
    rule, now = AlertRule.objects.get(kind=Kind.AMOCRM_UNREACHABLE), timezone.now()
    _set_account(account, last_success_at=now - timedelta(minutes=40), last_error_at=now - timedelta(minutes=39),
                 error_count=1, last_error="amoCRM rejected this lead: status_id does not exist")
    assert rules.amocrm_unreachable(rule, now) == []
    _set_account(account, error_count=rules.OUTAGE_MIN_FAILED_CALLS)
    assert [finding.account_id for finding in rules.amocrm_unreachable(rule, now)] == [account.pk]


def test_webhook_silence_needs_a_deal_change_after_the_last_delivery_and_hours_of_quiet(account, email_channel):
    rule, now = AlertRule.objects.get(kind=Kind.WEBHOOK_SILENT), timezone.now()
    _event(account, WebhookEvent.State.PROCESSED, received_at=now - timedelta(hours=8))
    _set_account(account, deals_changed_seen_at=now - timedelta(hours=9))
    assert rules.webhook_silent(rule, now) == [], "the change was delivered"
    _set_account(account, deals_changed_seen_at=now - timedelta(minutes=3))
    assert rules.webhook_silent(rule, now) == [], "its delivery may still be on the way"
    WebhookEvent.objects.all().delete()
    two_hours_ago = now - timedelta(hours=2)
    _set_account(account, deals_changed_seen_at=now - timedelta(hours=1), webhook_subscribed_at=two_hours_ago,
                 connected_at=two_hours_ago)
    assert rules.webhook_silent(rule, now) == [], "subscribed two hours ago: not six hours of quiet yet"
    _set_account(account, webhook_subscribed_at=now - timedelta(hours=7))
    [finding] = rules.webhook_silent(rule, now)
    assert finding.details["hours"] == 6 and finding.account_id == account.pk


def test_the_webhook_state_missing_fires_like_disabled_and_an_unchecked_one_does_not(account, email_channel):
    rule, now = AlertRule.objects.get(kind=Kind.WEBHOOK_DISABLED), timezone.now()
    assert rules.webhook_disabled(rule, now) == [], "not checked yet"
    _set_account(account, webhook_state=WebhookState.MISSING, webhook_checked_at=now)
    assert [f.details["webhook_state"] for f in rules.webhook_disabled(rule, now)] == ["missing"]


def test_beat_evaluates_the_rules_every_alerts_evaluate_seconds(settings):
    from config.celery import app

    entry = app.conf.beat_schedule["monitoring-evaluate-alerts"]
    assert entry["task"] == "monitoring.tasks.evaluate_alerts"
    assert entry["schedule"] == timedelta(seconds=settings.ALERTS_EVALUATE_SECONDS) == timedelta(seconds=60)
