"""Alerting: channels that reach people, rules with their thresholds, and incidents with their history."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from amocrm.crypto import EncryptedTextField, redact


class AlertChannel(models.Model):
    """Where alert messages go: an email list, a Telegram chat or a generic JSON webhook.

    The bot token and the webhook URL (which often carries a secret, as Slack's do) are encrypted at
    rest and never shown or logged in clear. `last_success_at` / `last_error` show whether the
    channel works: a failing channel is visible in the admin and on /metrics, and never stops others.
    """

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        TELEGRAM = "telegram", _("Telegram")
        WEBHOOK = "webhook", _("Webhook (JSON POST)")

    class Language(models.TextChoices):
        RU = "ru", _("Russian")
        EN = "en", _("English")

    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    enabled = models.BooleanField(_("enabled"), default=True)
    language = models.CharField(_("language"), max_length=2, choices=Language.choices, default=Language.RU,
                                help_text=_("The language of the messages sent through this channel."))
    email_recipients = models.TextField(
        _("email recipients"), blank=True,
        help_text=_("Email only: addresses, one per line or comma-separated. Sent with EMAIL_URL's server."))
    telegram_bot_token = EncryptedTextField(
        _("Telegram bot token"), blank=True,
        help_text=_("Telegram only: the token @BotFather gave the bot. Stored encrypted, never shown again."))
    telegram_chat_id = models.CharField(
        _("Telegram chat id"), max_length=100, blank=True,
        help_text=_("Telegram only: the chat, group or channel the bot writes to, e.g. -1001234567890 or @channel."))
    webhook_url = EncryptedTextField(
        _("webhook URL"), blank=True,
        help_text=_("Webhook only: the URL that receives a JSON POST (Slack, Mattermost, anything). "
                    "Stored encrypted, never shown again."))

    last_success_at = models.DateTimeField(_("last success"), null=True, blank=True, editable=False)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("alert channel")
        verbose_name_plural = _("alert channels")
        permissions = [("test_alertchannel", _("Can send a test message through alert channels"))]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    @property
    def recipients(self) -> list[str]:
        return [part.strip() for part in self.email_recipients.replace(",", "\n").splitlines() if part.strip()]

    @property
    def telegram_bot_token_redacted(self) -> str:
        return redact(self.telegram_bot_token)

    @property
    def webhook_url_redacted(self) -> str:
        return redact(self.webhook_url)

    @property
    def failing(self) -> bool:
        return bool(self.last_error_at and (not self.last_success_at or self.last_error_at > self.last_success_at))


class AlertRule(models.Model):
    """One rule per kind (created by a data migration), its threshold editable in the admin.

    `threshold` and `window_minutes` mean what the kind's description says (a count, minutes, hours
    or days); `reminder_minutes` is the quiet period after which an incident still open is sent
    again (0: never).
    """

    class Kind(models.TextChoices):
        ACCOUNT_REAUTH = "account_reauth", _("Account needs re-authorization")
        ACCOUNT_BLOCKED = "account_blocked", _("amoCRM blocked the integration (403)")
        RATE_LIMITED = "rate_limited", _("amoCRM rate-limits repeatedly (429)")
        AMOCRM_UNREACHABLE = "amocrm_unreachable", _("amoCRM calls keep failing")
        TOKEN_REFRESH_FAILING = "token_refresh_failing", _("Token refresh failing")
        LONG_LIVED_EXPIRING = "long_lived_expiring", _("Long-lived token expiring")
        WEBHOOK_DISABLED = "webhook_disabled", _("Webhook disabled or missing in amoCRM")
        WEBHOOK_SILENT = "webhook_silent", _("No webhooks while deals change")
        LEADS_FAILING = "leads_failing", _("Leads failing")
        PENDING_LEAD_OLD = "pending_lead_old", _("Leads waiting too long")
        SOURCE_SILENT = "source_silent", _("Lead source silent")
        WEBHOOK_EVENTS_FAILING = "webhook_events_failing", _("Webhook events failing")

    kind = models.CharField(_("rule"), max_length=30, choices=Kind.choices, unique=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    threshold = models.PositiveIntegerField(_("threshold"), default=1)
    window_minutes = models.PositiveIntegerField(
        _("window, minutes"), default=60,
        help_text=_("For rules that count events: the period they are counted over."))
    reminder_minutes = models.PositiveIntegerField(
        _("remind after, minutes"), default=240,
        help_text=_("An incident still open after this quiet period is sent again. 0: never remind."))
    sources = models.ManyToManyField(
        "leads.LeadSource", blank=True, related_name="+", verbose_name=_("lead sources"),
        help_text=_("Lead source silent only: the sources to watch (empty: every active source)."))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind"]
        verbose_name = _("alert rule")
        verbose_name_plural = _("alert rules")

    def __str__(self) -> str:
        return str(self.get_kind_display())


class Incident(models.Model):
    """One problem of one subject (an account, a lead source) found by one rule, from opened to resolved.

    Lifecycle: opened (a message to every channel) → still seen at every evaluation (`last_seen_at`;
    a reminder after the rule's quiet period since `last_notified_at`) → resolved when the rule no
    longer finds it (a "resolved" message). At most one open incident per rule and subject (a
    database constraint), so a problem seen a thousand times is one message, not a thousand.
    """

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="incidents", verbose_name=_("rule"))
    subject_key = models.CharField(_("subject key"), max_length=100, help_text="account:3, source:12")
    subject = models.CharField(_("subject"), max_length=300)
    account = models.ForeignKey("amocrm.Account", on_delete=models.SET_NULL, null=True, blank=True,
                                related_name="+", verbose_name=_("account"))
    details = models.JSONField(_("details"), default=dict, blank=True, help_text=_("The numbers the messages show."))
    admin_path = models.CharField(_("admin page"), max_length=300, blank=True,
                                  help_text=_("The admin page that fixes it."))
    opened_at = models.DateTimeField(_("opened"), default=timezone.now, db_index=True)
    last_seen_at = models.DateTimeField(_("last seen"), default=timezone.now)
    last_notified_at = models.DateTimeField(_("last notified"), null=True, blank=True)
    resolved_at = models.DateTimeField(_("resolved"), null=True, blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        constraints = [
            models.UniqueConstraint(fields=["rule", "subject_key"], condition=models.Q(resolved_at__isnull=True),
                                    name="monitoring_incident_one_open"),
        ]

    def __str__(self) -> str:
        return f"{self.rule}: {self.subject}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None


class IncidentEvent(models.Model):
    """A step in an incident's history: opened, reminded or resolved; each sends one message per channel."""

    class Kind(models.TextChoices):
        OPENED = "opened", _("Opened")
        REMINDED = "reminded", _("Reminder")
        RESOLVED = "resolved", _("Resolved")

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("event"), max_length=10, choices=Kind.choices)
    at = models.DateTimeField(_("at"), default=timezone.now)
    summary = models.TextField(_("what was seen"), blank=True)

    class Meta:
        ordering = ["at", "id"]
        verbose_name = _("incident event")
        verbose_name_plural = _("incident events")

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.at:%Y-%m-%d %H:%M}"


class Notification(models.Model):
    """One message of one incident event through one channel: queued → sent, or failed after its retries."""

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")

    event = models.ForeignKey(IncidentEvent, on_delete=models.CASCADE, related_name="notifications")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="notifications",
                                verbose_name=_("channel"))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.QUEUED)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(
        _("next attempt"), null=True, blank=True,
        help_text=_("While queued: not sent before this moment (backoff after a failure, or an attempt in progress)."))
    error = models.TextField(_("error"), blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [
            models.UniqueConstraint(fields=["event", "channel"], name="monitoring_notification_once"),
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="monitoring_notification_state")]

    def __str__(self) -> str:
        return f"{self.channel} {self.state}"
