"""Alert messages in plain words: what broke, since when, what to do, and the admin page that fixes it.

Rendered when a notification is sent, under the channel's language (translation.override), so one
incident reads in Russian in one chat and in English in another.
"""

from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .models import AlertRule, Incident, IncidentEvent

Kind = AlertRule.Kind


@dataclass
class Message:
    subject: str
    text: str
    url: str
    status: str  # opened, reminded, resolved, test


def _when(value: datetime | str | None) -> str:
    if isinstance(value, str):
        value = parse_datetime(value)
    if value is None:
        return ""
    return date_format(timezone.localtime(value), "DATETIME_FORMAT") + f" ({timezone.get_current_timezone_name()})"


def _problem(incident: Incident) -> tuple[str, str]:
    """(what broke, what to do) for the incident's rule, with its numbers."""
    details = incident.details or {}
    kind = incident.rule.kind
    count, minutes, hours = details.get("count", 0), details.get("minutes", 0), details.get("hours", 0)
    if kind == Kind.ACCOUNT_REAUTH:
        return (_("amoCRM no longer accepts this account's connection (the token was revoked or expired). New leads "
                  "wait here and nothing reaches amoCRM."),
                _("Open the account in the admin and click Connect; the waiting leads are sent right after."))
    if kind == Kind.ACCOUNT_BLOCKED:
        return (_("amoCRM blocked this integration (it answered 403 after too many requests). No calls are made "
                  "until the block is lifted."),
                _("Ask amoCRM support to lift the block, then click Test connection on the account."))
    if kind == Kind.RATE_LIMITED:
        return (ngettext("amoCRM refused %(count)d request as too frequent (429) in the last %(minutes)d minutes.",
                         "amoCRM refused %(count)d requests as too frequent (429) in the last %(minutes)d minutes.",
                         count) % {"count": count, "minutes": minutes}
                + " " + _("If this goes on, amoCRM blocks the integration."),
                _("Check the sync log for another integration using the same account, or lower AMOCRM_RATE_LIMIT."))
    if kind == Kind.AMOCRM_UNREACHABLE:
        return (ngettext("Calls to amoCRM have been failing for more than %(minutes)d minute.",
                         "Calls to amoCRM have been failing for more than %(minutes)d minutes.",
                         minutes) % {"minutes": minutes},
                _("See the account's last error in the admin; if amoCRM itself is down, leads wait and are sent "
                  "when it answers again."))
    if kind == Kind.TOKEN_REFRESH_FAILING:
        if details.get("expired_at"):
            what = _("The access token expired at %(when)s and was not refreshed.") % {
                "when": _when(details["expired_at"])}
        else:
            what = ngettext("Refreshing the token failed %(count)d time in the last %(minutes)d minutes.",
                            "Refreshing the token failed %(count)d times in the last %(minutes)d minutes.",
                            count) % {"count": count, "minutes": minutes}
        return (what, _("Check that the worker and beat are running and the sync log's oauth.refresh rows; click "
                        "Refresh token now on the account."))
    if kind == Kind.LONG_LIVED_EXPIRING:
        return (_("The long-lived token expires at %(when)s; after that nothing reaches amoCRM.") % {
                    "when": _when(details.get("expires_at"))},
                _("Issue a new long-lived token in the integration's settings in amoCRM and connect the account "
                  "with it (manage.py amocrm_connect --long-lived-token)."))
    if kind == Kind.WEBHOOK_DISABLED:
        return (_("amoCRM's webhook for this account is disabled or missing, so deal changes and sales do not "
                  "arrive, and subscribing it again failed."),
                _("Click Subscribe webhook on the account; if amoCRM refuses, add the webhook by hand in amoCRM "
                  "(Settings → Integrations → Web hooks) with the URL shown on the account's page."))
    if kind == Kind.WEBHOOK_SILENT:
        return (ngettext("No webhook arrived for %(hours)d hour although deals changed in amoCRM.",
                         "No webhook arrived for %(hours)d hours although deals changed in amoCRM.",
                         hours) % {"hours": hours},
                _("Check the webhook in amoCRM (Settings → Integrations → Web hooks) and click Subscribe webhook "
                  "on the account. Reconciliation catches up on the changed deals meanwhile."))
    if kind == Kind.LEADS_FAILING:
        return (ngettext("%(count)d lead failed to reach amoCRM in the last %(minutes)d minutes.",
                         "%(count)d leads failed to reach amoCRM in the last %(minutes)d minutes.",
                         count) % {"count": count, "minutes": minutes},
                _("Open the failed leads, read their error (often a field mapping or a stage that no longer "
                  "exists), fix the lead source and run Retry push."))
    if kind == Kind.PENDING_LEAD_OLD:
        return (ngettext("%(count)d lead is waiting to be sent to amoCRM; the oldest for more than %(minutes)d "
                         "minutes.",
                         "%(count)d leads are waiting to be sent to amoCRM; the oldest for more than %(minutes)d "
                         "minutes.", count) % {"count": count, "minutes": minutes},
                _("Check that the worker is running and the account's last error; the leads are sent as soon as "
                  "the cause is fixed."))
    if kind == Kind.SOURCE_SILENT:
        return (ngettext("This lead source received no lead for %(hours)d hour.",
                         "This lead source received no lead for %(hours)d hours.", hours) % {"hours": hours},
                _("Check that the form on the site still posts (its page, the embed snippet, the form builder's "
                  "webhook)."))
    if kind == Kind.WEBHOOK_EVENTS_FAILING:
        return (ngettext("%(count)d webhook delivery from amoCRM failed in the last %(minutes)d minutes.",
                         "%(count)d webhook deliveries from amoCRM failed in the last %(minutes)d minutes.",
                         count) % {"count": count, "minutes": minutes},
                _("Open the failed webhook events, read their error and run Reprocess once the cause is fixed."))
    return (str(incident.rule), "")


def describe(incident: Incident) -> tuple[str, str]:
    """(what broke, what to do) for an incident, in the active language: the admin dashboard shows the alerts' words."""
    return _problem(incident)


def render(event: IncidentEvent, *, language: str) -> Message:
    """The message for one incident event, in `language`."""
    incident = event.incident
    url = settings.SITE_URL + incident.admin_path
    with translation.override(language):
        rule = incident.rule.get_kind_display()
        what, todo = _problem(incident)
        if event.kind == IncidentEvent.Kind.RESOLVED:
            subject = _("Fixed: %(rule)s — %(subject)s") % {"rule": rule, "subject": incident.subject}
            lines = [
                subject,
                _("It is fixed since %(when)s (the problem started at %(since)s).") % {
                    "when": _when(incident.resolved_at or event.at), "since": _when(incident.opened_at)},
                _("Details: %(url)s") % {"url": url},
            ]
        else:
            prefix = _("Still broken") if event.kind == IncidentEvent.Kind.REMINDED else _("Problem")
            subject = f"{prefix}: {rule} — {incident.subject}"
            since = incident.details.get("since") or incident.opened_at
            lines = [
                subject,
                _("What broke: %(what)s") % {"what": what},
                _("Since: %(when)s") % {"when": _when(since)},
                _("What to do: %(todo)s") % {"todo": todo},
                _("Fix it here: %(url)s") % {"url": url},
            ]
    return Message(subject=subject, text="\n".join(lines), url=url, status=event.kind)


def render_test(*, language: str) -> Message:
    url = settings.SITE_URL + "/admin/monitoring/alertchannel/"
    with translation.override(language):
        subject = _("Test message from the amoCRM integration")
        text = "\n".join([
            subject,
            _("This channel works: alerts about the amoCRM connection will arrive here."),
            _("Channels: %(url)s") % {"url": url},
        ])
    return Message(subject=subject, text=text, url=url, status="test")
