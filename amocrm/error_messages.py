"""Stored errors in plain words: what happened, what happens next, what the operator can do.

Errors are stored as technical text (an exception's message, amoCRM's answer) on accounts, leads,
webhook subscriptions and the sync log. Pages show the plain-words explanation chosen here, in the
operator's language, and fold the technical text below it (`<details>`), secrets already cut.
"""

import re
from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from . import errors


@dataclass(frozen=True)
class Explanation:
    kind: str
    what: str
    next: str
    todo: str


# kind: (what happened, what happens next, what the operator can do)
MESSAGES = {
    "rate_limited": (
        _("amoCRM asked us to slow down: too many requests at once."),
        _("Sending pauses for a few seconds and then retries by itself."),
        _("Nothing, unless it keeps happening: then check other integrations that use the same amoCRM account.")),
    "timeout": (
        _("amoCRM did not answer in time."),
        _("The request is retried automatically, with growing pauses."),
        _("Nothing, unless it lasts: then check amoCRM's status page.")),
    "network": (
        _("amoCRM could not be reached: a network error."),
        _("The request is retried automatically, with growing pauses."),
        _("Nothing, unless it lasts: then check this server's internet connection and amoCRM's status page.")),
    "server_error": (
        _("amoCRM had a temporary failure on its side."),
        _("The request is retried automatically, with growing pauses."),
        _("Nothing, unless it lasts for hours: then check amoCRM's status page.")),
    "reauth": (
        _("amoCRM no longer accepts this integration's access: it was revoked or has expired."),
        _("Nothing is sent to amoCRM for this account; new leads wait and are not lost."),
        _("Open the account and press “Connect” to authorize it again.")),
    "invalid_client": (
        _("amoCRM does not recognise the integration."),
        _("Nothing is sent to amoCRM for this account until it is connected."),
        _("Compare the integration ID, secret key and redirect URI with the integration's settings in amoCRM, "
          "then connect again.")),
    "invalid_grant": (
        _("The authorization code is expired or was already used."),
        _("The account stays as it was."),
        _("Codes work once, for 20 minutes: get a new one in amoCRM and connect again.")),
    "denied": (
        _("Access was not allowed on amoCRM's consent page."),
        _("The account stays not connected."),
        _("Press “Connect” again and allow access.")),
    "blocked": (
        _("amoCRM blocked this account."),
        _("Every call for this account stops; new leads wait and are not lost."),
        _("Contact amoCRM support to lift the block, then connect again.")),
    "unavailable": (
        _("The account is not connected, or sending is paused."),
        _("Leads wait; nothing is sent to amoCRM for this account."),
        _("Connect the account, or resume sending, on the account page.")),
    "validation": (
        _("amoCRM refused the data of this request."),
        _("This request is not repeated by itself: it would be refused again."),
        _("Check the lead source's field mapping and deal name template, then use “Retry push”.")),
    "not_found": (
        _("amoCRM does not have what was asked for: it was probably deleted there."),
        _("This request is not repeated."),
        _("Check the deal in amoCRM; if it was deleted on purpose, nothing needs doing.")),
    "unbuildable": (
        _("This lead's values could not be turned into an amoCRM deal."),
        _("The lead is not sent again by itself."),
        _("Check the lead source's deal name template and field mapping, then use “Retry push”.")),
    "note": (
        _("The deal is in amoCRM, but its note could not be added."),
        _("The note is not added again by itself; the values are kept here."),
        _("Nothing is lost: copy the values from this page into the deal if you need them.")),
    "gave_up": (
        _("Sending failed again and again, so it was stopped."),
        _("The lead is not sent again by itself."),
        _("When the cause below is fixed, use “Retry push”.")),
    "webhook": (
        _("amoCRM refused the webhook subscription."),
        _("Won deals arrive only with the hourly reconciliation until the webhook works."),
        _("Press “Subscribe webhook” on the account page, or add the webhook by hand in amoCRM.")),
    "refused": (
        _("amoCRM refused the request."),
        _("This request is not repeated by itself: it would be refused again."),
        _("Read the technical detail below; if it is unclear, send it to your administrator.")),
    "unknown": (
        _("Something went wrong."),
        _("Temporary problems are retried automatically."),
        _("If it keeps happening, send the technical detail below to your administrator.")),
}

# The first pattern that matches the stored text decides its kind (mostly English, from the code; texts stored
# through gettext are in the worker's language, so their Russian wording is listed too).
PATTERNS = [
    ("gave_up", r"^Gave up after"),
    ("webhook", r"webhook subscription|подписку на вебхук"),
    ("denied", r"^OAuth: .*access denied"),
    ("rate_limited", r"\b429\b|Too Many Requests|no limiter slot|rate limit"),
    ("timeout", r"did not answer in time|timed? ?out|Timeout"),
    ("network", r"Network error|ConnectionError|Max retries exceeded|Connection (refused|reset|aborted)"),
    ("server_error", r"answered (5\d\d|408|425)\b"),
    ("blocked", r"blocked this account|block page"),
    ("invalid_client", r"does not recognise the integration|invalid_client"),
    ("invalid_grant", r"authorization code is expired|invalid_grant"),
    ("unavailable", r"No calls are made for this account|has no token|not connected|paused"),
    ("reauth", r"\b401\b|Unauthorized|refresh token|revoked|re-?authori[sz]"),
    ("validation", r"rejected (this lead|the batch|the request)|validation"),
    ("not_found", r"answered 404"),
    # The push stores these in the worker's language: the Russian wording is matched too.
    ("note", r"its note|The note was refused|примечание к ней"),
    ("unbuildable", r"could not be turned into an amoCRM|Finding or building this lead's contact|"
                    r"не удалось собрать|Поиск или сборка контакта"),
    ("refused", r"answered 4\d\d|refused"),
]
COMPILED = [(kind, re.compile(pattern, re.IGNORECASE)) for kind, pattern in PATTERNS]

EXCEPTION_KINDS = [
    (errors.RateLimited, "rate_limited"),
    (errors.TransientError, "server_error"),
    (errors.AccountBlocked, "blocked"),
    (errors.InvalidClient, "invalid_client"),
    (errors.InvalidGrant, "invalid_grant"),
    (errors.AuthError, "reauth"),
    (errors.AccountUnavailable, "unavailable"),
    (errors.ValidationFailed, "validation"),
    (errors.NotFound, "not_found"),
    (errors.PermanentError, "refused"),
]


def kind_of(text: str, *, http_status: int | None = None) -> str:
    """The kind of a stored error text (`http_status` of the sync log row helps when the text is short)."""
    for kind, pattern in COMPILED:
        if pattern.search(text or ""):
            return kind
    if http_status == 429:
        return "rate_limited"
    if http_status and http_status >= 500:
        return "server_error"
    if http_status == 401:
        return "reauth"
    return "unknown"


def kind_of_exception(exc: BaseException) -> str:
    for cls, kind in EXCEPTION_KINDS:
        if isinstance(exc, cls):
            # A network failure or a timeout is a TransientError too: its text says which.
            return kind_of(str(exc)) if kind == "server_error" else kind
    return kind_of(str(exc))


def explain(text: str, *, http_status: int | None = None, kind: str | None = None) -> Explanation:
    kind = kind or kind_of(text, http_status=http_status)
    what, next_, todo = MESSAGES[kind]
    return Explanation(kind, str(what), str(next_), str(todo))


def explain_exception(exc: BaseException) -> Explanation:
    return explain(str(exc), kind=kind_of_exception(exc))


def one_line(text: str, *, http_status: int | None = None) -> str:
    """The plain-words message as one sentence pair, for messages after an action and list columns."""
    explanation = explain(text, http_status=http_status)
    return f"{explanation.what} {explanation.todo}"


def exception_line(exc: BaseException) -> str:
    explanation = explain_exception(exc)
    return f"{explanation.what} {explanation.todo}"


def exception_message(prefix: str, exc: BaseException, *, detail: str | None = None):
    """HTML for a message after an action: the prefix, the plain words, the technical text (`detail`,
    scrubbed of secrets by the caller, or the exception's text) folded."""
    return format_html('{} {} <details style="display:inline"><summary>{}</summary>{}</details>', prefix,
                       exception_line(exc), _("Technical detail"), str(exc) if detail is None else detail)


def render(text: str, *, http_status: int | None = None, note: str = "", kind: str | None = None):
    """HTML: what happened, what happens next, what to do; the technical text folded below. "—" for none.

    `text` must already be scrubbed of secrets (amocrm.admin.helpers.scrub).
    """
    if not text:
        return "—"
    explanation = explain(text, http_status=http_status, kind=kind)
    return format_html(
        '<div class="error-explained"><strong>{}</strong>{}<br>{}<br>{}'
        '<details><summary>{}</summary><pre style="white-space:pre-wrap;max-width:70em">{}</pre></details></div>',
        explanation.what,
        format_html(' <em style="color:#1e7e34">{}</em>', note) if note else "",
        explanation.next, explanation.todo, _("Technical detail"), text,
    )
