"""The buttons on an account's page: test, sync, subscribe, reconcile, test lead, pause/resume, rotate, disconnect.

Each button is a POST (the change form's own CSRF token, via `formaction`) to one view that checks
the button's permission again, does the work through a service and reports with a message. A user
without the permission does not see the button. Disconnecting and rotating the webhook key ask for
confirmation first. A private integration's authorization code or long-lived token is pasted on a
page of its own (`credentials_view`).
"""

import secrets
from collections.abc import Callable
from dataclasses import dataclass

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from config.queue import publish
from leads.intake.admission import lead_create
from leads.sources import lead_source_ensure_default
from sales.tasks import reconcile_account

from .. import error_messages, errors, sending, services
from ..models import Account
from .helpers import scrub

PAUSE_PERMISSION = "amocrm.pause_account"


@dataclass(frozen=True)
class Button:
    key: str
    label: str
    permission: str  # "change" (may change the account) or "pause"
    shown: Callable[[Account], bool]
    run: Callable[[Account], str]
    confirm: str = ""


def _connected(account: Account) -> bool:
    return account.can_call_api


def _test_connection(account: Account) -> str:
    info = services.account_test_connection(account=account)
    return gettext("The connection works (amoCRM account %(name)s, id %(id)s).") % {
        "name": info.get("name"), "id": info.get("id")}


def _sync_metadata(account: Account) -> str:
    services.account_sync_metadata(account=account)
    return gettext("Metadata synced: %(pipelines)s pipelines, %(users)s users, %(fields)s deal fields.") % {
        "pipelines": account.pipelines.count(), "users": account.users.count(),
        "fields": account.custom_fields.count()}


def _subscribe_webhook(account: Account) -> str:
    if services.account_subscribe_webhook(account=account):
        return gettext("The webhook is subscribed.")
    account.refresh_from_db()
    raise errors.AmoCRMError(account.webhook_error)


def _reconcile(account: Account) -> str:
    if not publish(reconcile_account, account.pk):
        raise errors.TransientError(gettext("The task queue did not answer; try again in a minute."))
    return gettext("Reconciliation queued: deals changed in amoCRM are read again in the background.")


def _test_lead(account: Account) -> str:
    source = lead_source_ensure_default(account=account)
    stamp = f"{timezone.localtime():%Y-%m-%d %H:%M:%S}"
    # A check number of its own, or a second test within the double-click window would be the first one.
    check = secrets.token_hex(4)
    lead_create(source=source, data={"name": gettext("Test lead %(when)s") % {"when": stamp},
                                     "email": "test-lead@example.com",
                                     "message": gettext("Sent from the admin to try the whole path (check "
                                                        "%(check)s).") % {"check": check}})
    if account.sending_paused:
        return gettext("Test lead created; it waits because sending is paused.")
    return gettext("Test lead created and queued: it shows as Sent on the lead list once it is in amoCRM.")


def _pause(account: Account) -> str:
    sending.account_pause_sending(account=account)
    return gettext("Sending paused: new leads are accepted and wait until you resume.")


def _resume(account: Account) -> str:
    sending.account_resume_sending(account=account)
    return gettext("Sending resumed: the waiting leads are being sent.")


def _rotate(account: Account) -> str:
    if services.account_rotate_webhook_key(account=account):
        return gettext("New webhook URL, subscribed in amoCRM.")
    return gettext("New webhook URL: subscribe it (button) or add it in amoCRM by hand.")


def _disconnect(account: Account) -> str:
    services.account_disconnect(account=account)
    return gettext("Disconnected: the tokens are deleted. Leads wait until you connect again.")


BUTTONS = [
    Button("test_connection", _("Test connection"), "change",
           lambda a: a.state in (Account.State.CONNECTED, Account.State.BLOCKED), _test_connection),
    Button("sync_metadata", _("Sync metadata"), "change", _connected, _sync_metadata),
    Button("subscribe_webhook", _("Subscribe webhook"), "change", _connected, _subscribe_webhook),
    Button("reconcile", _("Reconcile now"), "change", _connected, _reconcile),
    Button("test_lead", _("Send a test lead"), "change", lambda a: a.state != Account.State.NOT_CONNECTED,
           _test_lead),
    Button("pause", _("Pause sending"), "pause", lambda a: not a.sending_paused, _pause),
    Button("resume", _("Resume sending"), "pause", lambda a: a.sending_paused, _resume),
    Button("rotate_webhook_key", _("Rotate webhook key"), "change", lambda a: True, _rotate,
           confirm=_("The old webhook URL stops working at once. Rotate the key?")),
    Button("disconnect", _("Disconnect"), "change", _connected, _disconnect,
           confirm=_("The tokens are deleted and nothing is sent until you connect again. Disconnect?")),
]
BY_KEY = {button.key: button for button in BUTTONS}


def allowed(model_admin, request, account: Account, button: Button) -> bool:
    if button.permission == "pause":
        return request.user.has_perm(PAUSE_PERMISSION)
    return model_admin.has_change_permission(request, account)


def visible(model_admin, request, account: Account) -> list[dict]:
    """The buttons this user may press for this account now, with their URLs, for the change form."""
    buttons = [{"key": b.key, "label": b.label, "url": reverse("admin:amocrm_account_button", args=[account.pk, b.key])}
               for b in BUTTONS if b.shown(account) and allowed(model_admin, request, account, b)]
    if model_admin.has_change_permission(request, account):
        buttons.append({"key": "credentials", "label": _("Paste a code or token"), "link": True,
                        "url": reverse("admin:amocrm_account_credentials", args=[account.pk])})
    return buttons


def button_view(model_admin, request, pk: int, key: str):
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    account = get_object_or_404(Account, pk=pk)
    button = BY_KEY.get(key)
    if button is None or not allowed(model_admin, request, account, button):
        raise PermissionDenied
    change_url = reverse("admin:amocrm_account_change", args=[account.pk])
    if button.confirm and request.POST.get("confirmed") != "yes":
        return TemplateResponse(request, "admin/amocrm/account/confirm_button.html", {
            **model_admin.admin_site.each_context(request), "title": button.label, "opts": model_admin.opts,
            "account": account, "button": button, "question": button.confirm, "change_url": change_url})
    try:
        note = button.run(account)
    except errors.AmoCRMError as exc:
        prefix = gettext("%(account)s: %(action)s failed.") % {"account": account.name, "action": button.label}
        model_admin.message_user(request, error_messages.exception_message(
            prefix, exc, detail=scrub(str(exc), account)), messages.ERROR)
    else:
        model_admin.message_user(request, format_html("{}: {}", account.name, note), messages.SUCCESS)
    return HttpResponseRedirect(change_url)


class CredentialsForm(forms.Form):
    host = forms.CharField(label=_("Account address"), help_text=_("e.g. example.amocrm.ru"))
    code = forms.CharField(label=_("Authorization code"), required=False, widget=forms.PasswordInput,
                           help_text=_("From the private integration's “Keys and access” tab; works once, for 20 "
                                       "minutes."))
    long_lived_token = forms.CharField(label=_("Long-lived token"), required=False,
                                       widget=forms.Textarea(attrs={"rows": 3, "autocomplete": "off"}),
                                       help_text=_("Instead of a code: a long-lived token issued in the same tab."))

    def clean(self):
        cleaned = super().clean()
        if bool(cleaned.get("code")) == bool(cleaned.get("long_lived_token")):
            raise forms.ValidationError(_("Paste either an authorization code or a long-lived token (one of the "
                                          "two)."))
        return cleaned


def credentials_view(model_admin, request, pk: int):
    """Connect with a pasted authorization code or long-lived token (private integrations), as the CLI does."""
    account = get_object_or_404(Account, pk=pk)
    if not model_admin.has_change_permission(request, account):
        raise PermissionDenied
    form = CredentialsForm(request.POST or None, initial={"host": account.host})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = services.account_connect(account=account, host=data["host"], code=data["code"] or None,
                                              long_lived_token=data["long_lived_token"] or None)
        except services.ConnectError as exc:
            form.add_error(None, scrub(str(exc), account))
        else:
            model_admin.message_user(request, gettext("%(account)s: connected.") % {"account": account.name},
                                     messages.SUCCESS)
            for problem in (result.metadata_error, result.webhook_error):
                if problem:
                    model_admin.message_user(request, error_messages.one_line(problem), messages.WARNING)
            return HttpResponseRedirect(reverse("admin:amocrm_account_change", args=[account.pk]))
    return TemplateResponse(request, "admin/amocrm/account/credentials.html", {
        **model_admin.admin_site.each_context(request), "title": _("Connect with a code or token"),
        "opts": model_admin.opts, "account": account, "form": form,
        "change_url": reverse("admin:amocrm_account_change", args=[account.pk])})


def urls(model_admin) -> list:
    view = model_admin.admin_site.admin_view
    return [
        path("<int:pk>/do/<slug:key>/", view(lambda request, pk, key: button_view(model_admin, request, pk, key)),
             name="amocrm_account_button"),
        path("<int:pk>/credentials/", view(lambda request, pk: credentials_view(model_admin, request, pk)),
             name="amocrm_account_credentials"),
    ]
