"""Admin for amoCRM accounts: the status badge and health, the Connect button and the maintenance actions."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin, StackedInline

from .. import error_messages, errors, oauth, sending, services, tokens
from ..crypto import redact
from ..models import Account, Token
from . import account_buttons
from .account_form import AccountForm
from .helpers import BADGES, badge, scrub


class StateFilter(admin.SimpleListFilter):
    title = _("status")
    parameter_name = "health"

    def lookups(self, request, model_admin):
        return [(k, v[1]) for k, v in BADGES.items()]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        if value in Account.State.values:
            return queryset.filter(state=value)
        ids = [a.pk for a in queryset.select_related("token") if a.health() == value]
        return queryset.filter(pk__in=ids)


class TokenInline(StackedInline):
    model = Token
    verbose_name = verbose_name_plural = _("Token")
    can_delete = False
    extra = 0
    max_num = 0
    fields = ["access_token_redacted", "refresh_token_redacted", "expires_at", "long_lived", "refreshed_at",
              "refresh_count"]
    readonly_fields = fields

    @admin.display(description=_("access token"))
    def access_token_redacted(self, obj):
        return redact(obj.access_token)

    @admin.display(description=_("refresh token"))
    def refresh_token_redacted(self, obj):
        return redact(obj.refresh_token) or "—"


@admin.register(Account)
class AccountAdmin(ModelAdmin):
    form = AccountForm
    list_display = ["name", "status_badge", "amocrm_name", "host", "token_expiry", "last_success_at",
                    "last_error_short"]
    list_filter = [StateFilter]
    search_fields = ["name", "host", "amocrm_name", "subdomain"]
    list_select_related = ["token"]
    inlines = [TokenInline]
    # Every action talks to amoCRM or changes the connection: only for users who may change accounts.
    actions = ["action_connect", "action_test_connection", "action_refresh_token", "action_sync_metadata",
               "action_subscribe_webhook", "action_rotate_webhook_key", "action_disconnect", "action_pause_sending",
               "action_resume_sending"]
    readonly_fields = ["status_badge", "connect_button", "redirect_uri_hint", "webhook_url_display",
                       "webhook_url_hidden", "webhook_status", "webhook_status_restricted", "client_secret_stored",
                       "amocrm_account_id", "amocrm_name", "subdomain", "currency", "connected_at",
                       "last_success_at", "last_error_at", "last_error_display", "last_error_restricted",
                       "error_count", "metadata_synced_at", "reconciled_until", "token_status"]
    fieldsets = [
        (None, {"fields": ["name", "status_badge", "token_status", "connect_button"]}),
        (_("Integration (from amoCRM → Settings → Integrations)"), {
            "fields": ["client_id", "client_secret", "redirect_uri", "redirect_uri_hint", "host"],
        }),
        (_("Webhook"), {"fields": ["webhook_url_display", "webhook_status"]}),
        (_("amoCRM account"), {"fields": ["amocrm_account_id", "amocrm_name", "subdomain", "currency",
                                       "metadata_synced_at"]}),
        (_("Defaults for leads and sales"), {"fields": ["default_pipeline_id", "default_status_id",
                                                     "default_responsible_user_id", "won_stages"]}),
        (_("Health"), {"fields": ["connected_at", "last_success_at", "last_error_at", "last_error_display",
                               "error_count", "reconciled_until"]}),
    ]
    # What a user who may only view the account gets instead (None: nothing). Without change
    # permission Django renders every field read-only straight from the model value, so the
    # client secret field itself must never be on that page.
    VIEW_ONLY_FIELDS = {
        "client_secret": "client_secret_stored",
        "connect_button": None,
        "webhook_url_display": "webhook_url_hidden",
        "webhook_status": "webhook_status_restricted",
        "last_error_display": "last_error_restricted",
    }

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or self.has_change_permission(request, obj):
            return fieldsets
        swapped = []
        for title, options in fieldsets:
            fields = [self.VIEW_ONLY_FIELDS.get(name, name) for name in options["fields"]]
            swapped.append((title, {**options, "fields": [name for name in fields if name]}))
        return swapped

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        secret = form.base_fields.get("client_secret")
        if secret is not None:
            # Never render the secret back into the page; blank on edit keeps the stored one.
            secret.widget = forms.PasswordInput(render_value=False)
            if obj is not None:
                secret.required = False
                secret.help_text = _("Stored (%(last4)s). Leave blank to keep it.") % {
                    "last4": obj.client_secret_redacted}
        return form

    def save_model(self, request, obj, form, change):
        if change and not form.cleaned_data.get("client_secret"):
            obj.client_secret = Account.objects.get(pk=obj.pk).client_secret
        super().save_model(request, obj, form, change)

    # ---- columns

    @admin.display(description=_("status"))
    def status_badge(self, obj):
        return badge(obj.health()) if obj.pk else "—"

    @admin.display(description=_("token expires"), ordering="token__expires_at")
    def token_expiry(self, obj):
        token = getattr(obj, "token", None)
        if token is None:
            return "—"
        suffix = gettext(" (long-lived)") if token.long_lived else ""
        return f"{timezone.localtime(token.expires_at):%Y-%m-%d %H:%M}{suffix}"

    @admin.display(description=_("last error"))
    def last_error_short(self, obj):
        if not obj.last_error:
            return "—"
        if self._error_resolved(obj):
            return _("Resolved: a later call succeeded.")
        return error_messages.explain(obj.last_error).what

    @admin.display(description=_("last error"))
    def last_error_display(self, obj):
        return self._last_error(obj, hide_webhook_key=False)

    @admin.display(description=_("last error"))
    def last_error_restricted(self, obj):
        return self._last_error(obj, hide_webhook_key=True)

    @staticmethod
    def _error_resolved(obj) -> bool:
        return bool(obj.last_error_at and obj.last_success_at and obj.last_success_at > obj.last_error_at)

    def _last_error(self, obj, *, hide_webhook_key: bool):
        note = ""
        if self._error_resolved(obj):
            note = _("Resolved: a later call succeeded at %(when)s.") % {
                "when": f"{timezone.localtime(obj.last_success_at):%Y-%m-%d %H:%M}"}
        return error_messages.render(scrub(obj.last_error, obj, hide_webhook_key=hide_webhook_key),
                                     note=note)

    @admin.display(description=_("secret key"))
    def client_secret_stored(self, obj):
        return obj.client_secret_redacted or "—"

    @admin.display(description=_("token"))
    def token_status(self, obj):
        token = getattr(obj, "token", None) if obj and obj.pk else None
        if token is None:
            return _("No token: connect the account.")
        expires = f"{timezone.localtime(token.expires_at):%Y-%m-%d %H:%M}"
        if not token.long_lived:
            return _("Expires %(when)s; refreshed automatically before that.") % {"when": expires}
        if token.expires_soon():
            return format_html('<strong style="color:#c0392b">{}</strong>', _(
                "The long-lived token expires on %(when)s: issue a new one in amoCRM and connect the account with "
                "it again.") % {"when": expires})
        return _("Long-lived, expires %(when)s (not refreshed; the admin warns 7 days before).") % {"when": expires}

    @admin.display(description=_("connect"))
    def connect_button(self, obj):
        if not obj or not obj.pk:
            return _("Save the account first, then connect it.")
        url = reverse("admin:amocrm_account_connect", args=[obj.pk])
        label = _("Reconnect") if obj.state != Account.State.NOT_CONNECTED else _("Connect to amoCRM")
        return format_html('<a class="button" href="{}">{}</a>', url, label)

    @admin.display(description=_("redirect URI to enter in amoCRM"))
    def redirect_uri_hint(self, obj):
        return settings.SITE_URL + reverse("amocrm-oauth-callback")

    @admin.display(description=_("webhook URL"))
    def webhook_url_display(self, obj):
        if not obj or not obj.pk:
            return "—"
        return format_html("<code>{}</code>", obj.webhook_url)

    @admin.display(description=_("webhook URL"))
    def webhook_url_hidden(self, obj):
        # The URL carries the key that authenticates amoCRM's deliveries.
        return _("Shown only to users who may change the account.")

    @admin.display(description=_("webhook subscription"))
    def webhook_status(self, obj):
        return self._webhook_status(obj, hide_webhook_key=False)

    @admin.display(description=_("webhook subscription"))
    def webhook_status_restricted(self, obj):
        return self._webhook_status(obj, hide_webhook_key=True)

    def _webhook_status(self, obj, *, hide_webhook_key: bool):
        if not obj or not obj.pk:
            return "—"
        if obj.webhook_state in ("disabled", "missing"):  # the webhook health check's latest finding wins
            return format_html('<span style="color:#c0392b">{} ({})</span>', obj.get_webhook_state_display(),
                               f"{timezone.localtime(obj.webhook_checked_at):%Y-%m-%d %H:%M}")
        if obj.webhook_subscribed_at:
            subscribed = f"{timezone.localtime(obj.webhook_subscribed_at):%Y-%m-%d %H:%M}"
            return _("Subscribed %(when)s") % {"when": subscribed}
        if obj.webhook_error:
            retry = ""
            if obj.webhook_retry_at:
                retry = _("Will retry at %(when)s.") % {
                    "when": f"{timezone.localtime(obj.webhook_retry_at):%Y-%m-%d %H:%M:%S}"}
            return error_messages.render(scrub(obj.webhook_error, obj, hide_webhook_key=hide_webhook_key),
                                         note=retry, kind="webhook")
        return _("Not subscribed")

    # ---- the connect view

    def get_urls(self):
        return [
            path("<int:pk>/connect/", self.admin_site.admin_view(self.connect_view), name="amocrm_account_connect"),
            *account_buttons.urls(self),
        ] + super().get_urls()

    def change_view(self, request, object_id, form_url="", extra_context=None):
        account = self.get_object(request, object_id)
        if account is not None:
            extra_context = {**(extra_context or {}),
                             "account_buttons": account_buttons.visible(self, request, account)}
        return super().change_view(request, object_id, form_url, extra_context)

    def connect_view(self, request, pk: int):
        account = get_object_or_404(Account, pk=pk)
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        return HttpResponseRedirect(oauth.consent_url(account=account, user_id=request.user.pk))

    # ---- actions: each calls a service and reports with message_user

    def _each(self, request, queryset, label, func):
        """Run `func` on each account; `label` (translatable) names the action in a failure message."""
        for account in queryset:
            try:
                note = func(account)
            except errors.AmoCRMError as exc:
                prefix = _("%(account)s: %(action)s failed.") % {"account": account.name, "action": label}
                text = error_messages.exception_message(prefix, exc, detail=scrub(str(exc), account))
                self.message_user(request, text, messages.ERROR)
                continue
            self.message_user(request, f"{account.name}: {note}", messages.SUCCESS)

    @admin.action(description=_("Connect (opens amoCRM's consent page)"), permissions=["change"])
    def action_connect(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one account to connect."), messages.WARNING)
            return None
        return HttpResponseRedirect(reverse("admin:amocrm_account_connect", args=[queryset.get().pk]))

    @admin.action(description=_("Test connection"), permissions=["change"])
    def action_test_connection(self, request, queryset):
        def run(account):
            info = services.account_test_connection(account=account)
            return gettext("connection works (amoCRM account %(name)s, id %(id)s).") % {
                "name": info.get("name"), "id": info.get("id")}

        self._each(request, queryset, pgettext_lazy("admin action", "test connection"), run)

    @admin.action(description=_("Refresh token now"), permissions=["change"])
    def action_refresh_token(self, request, queryset):
        def run(account):
            token = tokens.account_refresh_token(account_id=account.pk, force=True)
            if token.long_lived:
                return gettext("long-lived tokens are not refreshed.")
            return gettext("token refreshed, valid until %(when)s.") % {
                "when": f"{timezone.localtime(token.expires_at):%Y-%m-%d %H:%M}"}

        self._each(request, queryset, pgettext_lazy("admin action", "refresh token"), run)

    @admin.action(description=_("Sync metadata (pipelines, users, fields)"), permissions=["change"])
    def action_sync_metadata(self, request, queryset):
        def run(account):
            services.account_sync_metadata(account=account)
            return gettext("metadata synced: %(pipelines)s pipelines, %(users)s users, %(fields)s deal fields.") % {
                "pipelines": account.pipelines.count(), "users": account.users.count(),
                "fields": account.custom_fields.count()}

        self._each(request, queryset, pgettext_lazy("admin action", "sync metadata"), run)

    @admin.action(description=_("Subscribe webhook"), permissions=["change"])
    def action_subscribe_webhook(self, request, queryset):
        for account in queryset:
            if services.account_subscribe_webhook(account=account):
                self.message_user(request, gettext("%(account)s: webhook subscribed (%(url)s).") % {
                    "account": account.name, "url": account.webhook_url}, messages.SUCCESS)
            else:
                account.refresh_from_db()
                text = error_messages.one_line(scrub(account.webhook_error, account))
                self.message_user(request, f"{account.name}: {text}", messages.WARNING)

    @admin.action(description=_("Rotate webhook key"), permissions=["change"])
    def action_rotate_webhook_key(self, request, queryset):
        for account in queryset:
            subscribed = services.account_rotate_webhook_key(account=account)
            account.refresh_from_db()
            if subscribed:
                text = gettext("%(account)s: new webhook URL and subscribed it.") % {"account": account.name}
            else:
                text = gettext("%(account)s: new webhook URL — add it in amoCRM by hand: %(url)s.") % {
                    "account": account.name, "url": account.webhook_url}
            self.message_user(request, text, messages.SUCCESS if subscribed else messages.WARNING)

    @admin.action(description=_("Disconnect"), permissions=["change"])
    def action_disconnect(self, request, queryset):
        for account in queryset:
            services.account_disconnect(account=account)
            self.message_user(request, gettext("%(account)s: disconnected (tokens deleted).") % {
                "account": account.name}, messages.SUCCESS)

    def has_pause_permission(self, request):
        return request.user.has_perm(account_buttons.PAUSE_PERMISSION)

    @admin.action(description=_("Pause sending (leads are still accepted and wait)"), permissions=["pause"])
    def action_pause_sending(self, request, queryset):
        paused = sum(sending.account_pause_sending(account=account) for account in queryset)
        self.message_user(request, _("Sending paused for %(count)d account(s): new leads wait until resumed.") % {
            "count": paused}, messages.SUCCESS)

    @admin.action(description=_("Resume sending"), permissions=["pause"])
    def action_resume_sending(self, request, queryset):
        resumed = sum(sending.account_resume_sending(account=account) for account in queryset)
        self.message_user(request, _("Sending resumed for %(count)d account(s): the waiting leads are being sent.")
                          % {"count": resumed}, messages.SUCCESS)
