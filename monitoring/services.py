"""Alerting services: evaluate the rules into incidents, queue their messages, send one message per channel.

The evaluation (a beat task, every ALERTS_EVALUATE_SECONDS) only reads and writes the database:
it opens an incident the first time a rule finds a subject, reminds after the rule's quiet period,
resolves it when the rule no longer finds it, and queues one Notification per enabled channel for
each of those steps. Sending is a task of its own per notification (`notification_send`), so a slow
or failing channel never delays the evaluation, another channel, or a request.
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from config.locks import try_lock
from config.queue import enqueue_on_commit
from config.retry import backoff_seconds

from . import metrics
from .channels import ChannelError, send
from .messages import render, render_test
from .models import AlertChannel, AlertRule, Incident, IncidentEvent, Notification
from .rules import EVALUATORS, Finding

logger = logging.getLogger(__name__)

# A claimed notification is someone's for this long; after that a sweep may send it again.
SEND_LEASE = timedelta(minutes=2)
# Attempts before a notification is given up as failed (about an hour of backoff in all).
MAX_ATTEMPTS = 8
RETRY_BASE_SECONDS = 15
RETRY_CAP_SECONDS = 900


def _notify(event: IncidentEvent) -> list[Notification]:
    """One queued notification per enabled channel, each sent by its own task after the commit."""
    notifications = [Notification.objects.create(event=event, channel=channel)
                     for channel in AlertChannel.objects.filter(enabled=True)]
    for notification in notifications:
        enqueue_on_commit(_send_task(), notification.pk)
    if notifications:
        Incident.objects.filter(pk=event.incident_id).update(last_notified_at=event.at)
    return notifications


def _send_task():
    from .tasks import send_notification  # the task module imports this one

    return send_notification


def _details(finding: Finding) -> dict:
    return {**finding.details, "since": finding.since.isoformat() if finding.since else None}


def _open(rule: AlertRule, finding: Finding, now: datetime) -> Incident | None:
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                rule=rule, subject_key=finding.subject_key, subject=finding.subject[:300],
                account_id=finding.account_id, details=_details(finding), admin_path=finding.admin_path,
                opened_at=now, last_seen_at=now)
    except IntegrityError:
        return None  # a concurrent evaluation opened it first (one open incident per rule and subject)
    event = IncidentEvent.objects.create(incident=incident, kind=IncidentEvent.Kind.OPENED, at=now)
    _notify(event)
    return incident


def _seen(rule: AlertRule, incident: Incident, finding: Finding, now: datetime) -> None:
    incident.last_seen_at = now
    incident.details = _details(finding)
    incident.subject = finding.subject[:300]
    incident.save(update_fields=["last_seen_at", "details", "subject"])
    quiet_since = incident.last_notified_at or incident.opened_at
    if rule.reminder_minutes and now - quiet_since >= timedelta(minutes=rule.reminder_minutes):
        event = IncidentEvent.objects.create(incident=incident, kind=IncidentEvent.Kind.REMINDED, at=now)
        if not _notify(event):  # no channel: the quiet period still starts again
            Incident.objects.filter(pk=incident.pk).update(last_notified_at=now)


def _resolve(incident: Incident, now: datetime, *, notify: bool = True, summary: str = "") -> None:
    if not Incident.objects.filter(pk=incident.pk, resolved_at__isnull=True).update(resolved_at=now):
        return
    incident.resolved_at = now
    event = IncidentEvent.objects.create(incident=incident, kind=IncidentEvent.Kind.RESOLVED, at=now,
                                         summary=summary)
    if notify:
        _notify(event)


def rule_evaluate(*, rule: AlertRule, now: datetime) -> dict[str, int]:
    """Apply one rule's findings to its incidents: open, remind, resolve. Returns the counts of each."""
    counts = {"opened": 0, "seen": 0, "resolved": 0}
    findings = EVALUATORS[rule.kind](rule, now)
    open_incidents = {incident.subject_key: incident
                      for incident in rule.incidents.filter(resolved_at__isnull=True)}
    for finding in findings:
        with transaction.atomic():
            incident = open_incidents.pop(finding.subject_key, None)
            if incident is None:
                counts["opened"] += _open(rule, finding, now) is not None
            else:
                _seen(rule, incident, finding, now)
                counts["seen"] += 1
    for incident in open_incidents.values():
        with transaction.atomic():
            _resolve(incident, now)
            counts["resolved"] += 1
    return counts


def alerts_evaluate(*, now: datetime | None = None) -> dict[str, int]:
    """Evaluate every rule once (one evaluation at a time across all workers); returns totals.

    A rule whose evaluation fails is skipped (logged, counted on /metrics) and its incidents are
    left as they are: a broken query must not look like a fixed problem. A switched-off rule's open
    incidents are closed without a message.
    """
    now = now or timezone.now()
    totals = {"opened": 0, "seen": 0, "resolved": 0, "errors": 0}
    with try_lock("monitoring.alerts_evaluate", fallback_seconds=300) as locked:
        if not locked:
            return totals
        for rule in AlertRule.objects.all():
            if not rule.enabled:
                for incident in rule.incidents.filter(resolved_at__isnull=True):
                    _resolve(incident, now, notify=False, summary=_("The rule was switched off."))
                continue
            try:
                counts = rule_evaluate(rule=rule, now=now)
            except Exception:
                logger.exception("alert rule evaluation failed", extra={"rule": rule.kind})
                totals["errors"] += 1
                continue
            for key, value in counts.items():
                totals[key] += value
        notifications_sweep(now=now)
    metrics.alert_evaluation("error" if totals["errors"] else "ok")
    return totals


def notifications_sweep(*, now: datetime | None = None) -> int:
    """Queue again the notifications whose task was lost (broker down, worker killed); returns how many."""
    now = now or timezone.now()
    lost = list(Notification.objects.filter(state=Notification.State.QUEUED)
                .filter(Q(next_attempt_at__isnull=True, created_at__lte=now - SEND_LEASE)
                        | Q(next_attempt_at__lte=now - SEND_LEASE))
                .values_list("pk", flat=True)[:500])
    for pk in lost:
        enqueue_on_commit(_send_task(), pk)
    return len(lost)


def _claim(notification_id: int, now: datetime) -> Notification | None:
    """Take the notification for one attempt (a conditional UPDATE), so a sweep and a retry never both send it."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now + timedelta(seconds=5))
    claimed = (Notification.objects.filter(due, pk=notification_id, state=Notification.State.QUEUED)
               .update(next_attempt_at=now + SEND_LEASE, attempts=F("attempts") + 1))
    if not claimed:
        return None
    return Notification.objects.select_related("channel", "event__incident__rule").get(pk=notification_id)


def _channel_result(channel: AlertChannel, *, error: str = "", now: datetime) -> None:
    if error:
        AlertChannel.objects.filter(pk=channel.pk).update(last_error=error[:2000], last_error_at=now)
    else:
        AlertChannel.objects.filter(pk=channel.pk).update(last_success_at=now)
    metrics.alert_notification(channel.kind, "failed" if error else "sent")


def notification_send(*, notification_id: int) -> float | None:
    """Send one notification once. Returns None when done (sent, failed, or not ours), else seconds until a retry.

    A failure is recorded on the channel (`last_error`, shown in the admin) and on the notification;
    after MAX_ATTEMPTS it is given up as failed.
    """
    now = timezone.now()
    notification = _claim(notification_id, now)
    if notification is None:
        return None
    channel = notification.channel
    try:
        if not channel.enabled:
            raise ChannelError(_("The channel was switched off before the message was sent."))
        send(channel, render(notification.event, language=channel.language))
    except ChannelError as exc:
        _channel_result(channel, error=str(exc), now=now)
        if not channel.enabled or notification.attempts >= MAX_ATTEMPTS:
            Notification.objects.filter(pk=notification.pk).update(state=Notification.State.FAILED, error=str(exc))
            return None
        delay = backoff_seconds(notification.attempts, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS)
        Notification.objects.filter(pk=notification.pk).update(
            error=str(exc), next_attempt_at=now + timedelta(seconds=delay))
        return delay
    Notification.objects.filter(pk=notification.pk).update(state=Notification.State.SENT, sent_at=now, error="")
    _channel_result(channel, now=now)
    return None


def channel_send_test(*, channel_id: int) -> str:
    """Send a test message through the channel now (from a task); records success or error on the channel."""
    now = timezone.now()
    channel = AlertChannel.objects.get(pk=channel_id)
    try:
        send(channel, render_test(language=channel.language))
    except ChannelError as exc:
        _channel_result(channel, error=str(exc), now=now)
        return "failed"
    _channel_result(channel, now=now)
    return "sent"
