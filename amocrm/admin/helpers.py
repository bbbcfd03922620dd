"""What the amoCRM admin pages share: status badges, pretty JSON, secrets cut short, read-only admins."""

import json

from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from config.logging import mask_url_secrets

from ..crypto import redact
from ..models import Account, Token

# Shorter "secrets" are not replaced inside texts: replacing every "ab" would garble the message.
SCRUB_MIN_LENGTH = 8


def scrub(text: str, account: Account | None = None, *, hide_webhook_key: bool = True) -> str:
    """The text with the account's client secret and tokens (and the webhook key) cut to their last four characters.

    Error texts come from amoCRM answers and exceptions: whatever they quote, a page never shows a secret.
    """
    if not text:
        return text
    secrets = []
    if account is not None:
        secrets.append(account.client_secret)
        try:
            token = account.token  # one query at most; none in lists (list_select_related)
        except Token.DoesNotExist:
            token = None
        if token is not None:
            secrets += [token.access_token, token.refresh_token]
        if hide_webhook_key:
            secrets.append(account.webhook_key)
    for secret in secrets:
        if secret and len(secret) >= SCRUB_MIN_LENGTH:
            text = text.replace(secret, redact(secret))
    return mask_url_secrets(text) if hide_webhook_key else text


BADGES = {
    "connected": ("#1e7e34", _("Connected")),
    "expiring": ("#b8860b", _("Token expiring soon")),
    "needs_reauth": ("#c0392b", _("Needs re-authorization")),
    "blocked": ("#8e0000", _("Blocked by amoCRM")),
    "error": ("#d35400", _("Error")),
    "not_connected": ("#6c757d", _("Not connected")),
    "disabled": ("#343a40", _("Disabled")),
    "paused": ("#6f42c1", _("Sending paused")),
}


def badge(key: str):
    color, label = BADGES.get(key, ("#6c757d", key))
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;white-space:nowrap">{}</span>',
        color, label,
    )


def pretty_json(value):
    """Escaped, indented JSON (format_html escapes; never mark_safe on data), webhook keys cut short."""
    if value in (None, "", {}, []):
        return "—"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html('<pre style="white-space:pre-wrap;max-width:70em">{}</pre>', scrub(value))
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
    return format_html('<pre style="white-space:pre-wrap;max-width:70em">{}</pre>', scrub(text))


class ReadOnlyAdmin(ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
