"""Admin for alerting: channels (with a test message), rules and their thresholds, incidents with their history."""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.db import transaction
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext
from unfold.admin import ModelAdmin, TabularInline

from config.queue import publish

from .models import AlertChannel, AlertRule, Incident, IncidentEvent, Notification
from .tasks import send_test_message

Kind = AlertRule.Kind
# What `threshold` means for each rule (shown next to it in the admin).
THRESHOLD_MEANING = {
    Kind.ACCOUNT_REAUTH: _("not used"),
    Kind.ACCOUNT_BLOCKED: _("not used"),
    Kind.RATE_LIMITED: _("429 answers within the window"),
    Kind.AMOCRM_UNREACHABLE: _("minutes without a successful call"),
    Kind.TOKEN_REFRESH_FAILING: _("failed refreshes within the window"),
    Kind.LONG_LIVED_EXPIRING: _("days before the token expires"),
    Kind.WEBHOOK_DISABLED: _("not used"),
    Kind.WEBHOOK_SILENT: _("hours without a webhook"),
    Kind.LEADS_FAILING: _("failed leads within the window"),
    Kind.PENDING_LEAD_OLD: _("minutes the oldest waiting lead has waited"),
    Kind.SOURCE_SILENT: _("hours without a lead"),
    Kind.WEBHOOK_EVENTS_FAILING: _("failed webhook deliveries within the window"),
}
OK_COLOR, FAIL_COLOR, NONE_COLOR = "#1e7e34", "#c0392b", "#6c757d"


def _badge(color: str, label) -> str:
    return format_html(
        '<span style="background:{};color:#fff;padding:2px 8px;border-radius:10px;white-space:nowrap">{}</span>',
        color, label)


class AlertChannelForm(forms.ModelForm):
    """Secrets are write-only: the inputs start empty, and an empty input keeps the stored value."""

    telegram_bot_token = forms.CharField(
        label=_("Telegram bot token"), required=False, widget=forms.PasswordInput(render_value=False),
        help_text=_("Telegram only. Leave empty to keep the stored token."))
    webhook_url = forms.CharField(
        label=capfirst(_("webhook URL")), required=False, widget=forms.PasswordInput(render_value=False),
        help_text=_("Webhook only: the URL that receives a JSON POST. Leave empty to keep the stored URL."))

    class Meta:
        model = AlertChannel
        fields = ["name", "kind", "enabled", "language", "email_recipients", "telegram_bot_token",
                  "telegram_chat_id", "webhook_url"]

    def _secret(self, name: str) -> str:
        value = (self.cleaned_data.get(name) or "").strip()
        return value or (getattr(self.instance, name) if self.instance.pk else "")

    def clean(self):
        cleaned = super().clean()
        kind = cleaned.get("kind")
        token, url = self._secret("telegram_bot_token"), self._secret("webhook_url")
        if kind == AlertChannel.Kind.EMAIL:
            recipients = [part.strip() for part in (cleaned.get("email_recipients") or "").replace(",", "\n")
                          .splitlines() if part.strip()]
            if not recipients:
                self.add_error("email_recipients", _("Add at least one email address."))
            for address in recipients:
                try:
                    forms.EmailField().clean(address)
                except forms.ValidationError:
                    self.add_error("email_recipients", _("“%(address)s” is not an email address.") % {
                        "address": address})
        elif kind == AlertChannel.Kind.TELEGRAM:
            if not token:
                self.add_error("telegram_bot_token", _("Enter the bot token from @BotFather."))
            if not cleaned.get("telegram_chat_id"):
                self.add_error("telegram_chat_id", _("Enter the chat id the bot writes to."))
        elif kind == AlertChannel.Kind.WEBHOOK:
            if not url:
                self.add_error("webhook_url", _("Enter the URL that receives the messages."))
            elif not url.startswith(("https://", "http://")):
                self.add_error("webhook_url", _("The webhook URL must start with https:// (or http://)."))
        cleaned["telegram_bot_token"], cleaned["webhook_url"] = token, url
        return cleaned


@admin.register(AlertChannel)
class AlertChannelAdmin(ModelAdmin):
    form = AlertChannelForm
    list_display = ["name", "kind", "enabled", "language", "state_badge", "last_success_at", "last_error_at",
                    "last_error"]
    list_filter = ["kind", "enabled", "language"]
    readonly_fields = ["stored_secret", "last_success_at", "last_error_at", "last_error"]
    actions = ["send_test"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "language"]}),
        (_("Email"), {"fields": ["email_recipients"]}),
        (_("Telegram"), {"fields": ["telegram_bot_token", "telegram_chat_id"]}),
        (_("Webhook"), {"fields": ["webhook_url"]}),
        (_("Health"), {"fields": ["stored_secret", "last_success_at", "last_error_at", "last_error"]}),
    ]

    @admin.display(description=_("state"))
    def state_badge(self, obj: AlertChannel):
        if obj.failing:
            return _badge(FAIL_COLOR, _("failing"))
        if obj.last_success_at:
            return _badge(OK_COLOR, _("works"))
        return _badge(NONE_COLOR, _("not used yet"))

    @admin.display(description=_("stored secret"))
    def stored_secret(self, obj: AlertChannel):
        if obj.kind == AlertChannel.Kind.TELEGRAM:
            return obj.telegram_bot_token_redacted or "—"
        if obj.kind == AlertChannel.Kind.WEBHOOK:
            return obj.webhook_url_redacted or "—"
        return "—"

    def has_test_permission(self, request) -> bool:
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('test', opts)}")

    @admin.action(description=_("Send a test message"), permissions=["test"])
    def send_test(self, request, queryset):
        channels = list(queryset.values_list("pk", flat=True))
        for pk in channels:
            transaction.on_commit(lambda pk=pk: publish(send_test_message, pk))
        self.message_user(request, _(
            "Test message queued for %(count)d channel(s). In a minute, the channel's last success or last error "
            "shows whether it arrived.") % {"count": len(channels)}, messages.SUCCESS)


@admin.register(AlertRule)
class AlertRuleAdmin(ModelAdmin):
    list_display = ["kind", "enabled", "threshold", "threshold_meaning", "window_minutes", "reminder_minutes",
                    "open_incidents"]
    list_editable = ["enabled", "threshold", "window_minutes", "reminder_minutes"]
    readonly_fields = ["kind", "threshold_meaning"]
    fields = ["kind", "enabled", "threshold", "threshold_meaning", "window_minutes", "reminder_minutes", "sources"]
    filter_horizontal = ["sources"]

    @admin.display(description=_("threshold means"))
    def threshold_meaning(self, obj: AlertRule):
        return THRESHOLD_MEANING.get(obj.kind, "")

    def get_queryset(self, request):
        # The open incidents of every rule in the list's one query, not a count per row.
        return super().get_queryset(request).annotate(
            _open_incidents=Count("incidents", filter=Q(incidents__resolved_at__isnull=True)))

    @admin.display(description=_("open incidents"))
    def open_incidents(self, obj: AlertRule):
        count = obj._open_incidents
        if not count:
            return "0"
        url = reverse("admin:monitoring_incident_changelist") + f"?rule__id__exact={obj.pk}&open=yes"
        return format_html('<a href="{}">{}</a>', url, count)

    def has_add_permission(self, request) -> bool:
        return False  # one row per kind, created by the migration

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class OpenFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "open"

    def lookups(self, request, model_admin):
        return [("yes", _("Open")), ("no", _("Resolved"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


class IncidentEventInline(TabularInline):
    model = IncidentEvent
    fields = ["kind", "at", "summary", "messages"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    @admin.display(description=_("messages"))
    def messages(self, obj: IncidentEvent):
        notifications = obj.notifications.select_related("channel")
        if not notifications:
            return _("no channel")
        return format_html_join(
            "", "<div>{}: {}{}</div>",
            ((n.channel.name, n.get_state_display(), f" — {n.error}" if n.error else "") for n in notifications))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(ModelAdmin):
    list_display = ["rule", "subject", "state_badge", "opened_at", "last_seen_at", "last_notified_at",
                    "resolved_at", "fix_link"]
    list_filter = [OpenFilter, "rule", "opened_at"]
    list_select_related = ["rule"]
    search_fields = ["subject"]
    date_hierarchy = "opened_at"
    fields = ["rule", "subject", "state_badge", "opened_at", "last_seen_at", "last_notified_at", "resolved_at",
              "fix_link", "details"]
    readonly_fields = fields
    inlines = [IncidentEventInline]

    @admin.display(description=_("state"))
    def state_badge(self, obj: Incident):
        return _badge(FAIL_COLOR, _("open")) if obj.is_open else _badge(OK_COLOR, _("resolved"))

    @admin.display(description=_("where to fix it"))
    def fix_link(self, obj: Incident):
        if not obj.admin_path:
            return "—"
        return format_html('<a href="{}">{}</a>', obj.admin_path, pgettext("link", "open the page"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(ModelAdmin):
    list_display = ["created_at", "channel", "event", "state", "attempts", "sent_at", "error"]
    list_filter = ["state", "channel"]
    list_select_related = ["channel", "event__incident__rule"]
    readonly_fields = ["event", "channel", "state", "attempts", "next_attempt_at", "error", "created_at", "sent_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
