"""amoCRM connection models: accounts, their tokens, cached metadata, the sync log and raw webhook deliveries."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .crypto import EncryptedTextField, redact

TOKEN_EXPIRING_SOON = timedelta(hours=1)
LONG_LIVED_WARNING = timedelta(days=7)


def new_webhook_key() -> str:
    """32 random bytes, URL-safe: the only thing that authenticates amoCRM's unsigned webhooks."""
    return secrets.token_urlsafe(32)


class WebhookState(models.TextChoices):
    """Our webhook subscription as amoCRM's GET /api/v4/webhooks showed it at the last health check."""

    OK = "ok", _("Subscribed")
    MISSING = "missing", _("Missing")
    DISABLED = "disabled", _("Disabled by amoCRM")
    UNKNOWN = "unknown", _("Not checked yet")


class Account(models.Model):
    """One amoCRM or Kommo account and the integration that connects to it.

    Lifecycle: created `not_connected` (client id/secret/redirect URI from the integration
    settings) → `connected` after a code exchange or a long-lived token → `needs_reauth` when
    the refresh token is revoked or a retried call still answers 401 → `blocked` when amoCRM
    answers 403 with its HTML block page. In `needs_reauth`, `blocked` and `disabled` no call
    is made for the account; connecting again resumes everything.
    """

    class State(models.TextChoices):
        NOT_CONNECTED = "not_connected", "Not connected"
        CONNECTED = "connected", "Connected"
        NEEDS_REAUTH = "needs_reauth", "Needs re-authorization"
        BLOCKED = "blocked", "Blocked by amoCRM"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=200, help_text="Your name for this connection.")
    host = models.CharField(
        max_length=255,
        blank=True,
        default="",
        help_text="Account origin, e.g. https://example.amocrm.ru. Filled in on connect; set it "
        "beforehand only to pick the consent page of Kommo (.kommo.com) accounts.",
    )
    client_id = models.CharField("integration ID", max_length=100)
    client_secret = EncryptedTextField("secret key")
    redirect_uri = models.URLField(
        "redirect URI",
        max_length=500,
        help_text="Exactly as in the integration settings in amoCRM (a trailing slash matters).",
    )

    amocrm_account_id = models.BigIntegerField("amoCRM account id", null=True, blank=True, editable=False)
    amocrm_name = models.CharField("amoCRM account name", max_length=255, blank=True, editable=False)
    subdomain = models.CharField(max_length=100, blank=True, editable=False)
    currency = models.CharField(max_length=8, blank=True, editable=False)

    state = models.CharField(max_length=20, choices=State.choices, default=State.NOT_CONNECTED, editable=False)
    connected_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    error_count = models.PositiveIntegerField(default=0, editable=False)

    webhook_key = models.CharField(max_length=64, unique=True, default=new_webhook_key, editable=False)
    webhook_subscribed_at = models.DateTimeField(null=True, blank=True, editable=False)
    webhook_error = models.TextField(blank=True, editable=False)
    # Webhook health (amocrm/webhooks/health.py): what GET /api/v4/webhooks showed of our subscription.
    webhook_state = models.CharField(_("webhook state"), max_length=10, choices=WebhookState.choices,
                                     default=WebhookState.UNKNOWN, editable=False)
    webhook_checked_at = models.DateTimeField(_("webhook checked at"), null=True, blank=True, editable=False)
    webhook_resubscribed_at = models.DateTimeField(
        _("webhook re-subscribed at"), null=True, blank=True, editable=False,
        help_text=_("When the health check last re-created a disabled or missing subscription by itself."))
    deals_changed_seen_at = models.DateTimeField(
        _("deals last seen changed"), null=True, blank=True, editable=False,
        help_text=_("The latest deal change reconciliation saw in amoCRM (compared with the last webhook)."))
    webhook_retry_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text=_("A subscription that met a passing error (429, 5xx, network) is tried again then, by itself."))
    sending_paused_at = models.DateTimeField(
        null=True, blank=True, editable=False,
        help_text=_("Set while sending is paused: leads are still accepted and wait until sending is resumed."))

    default_pipeline_id = models.BigIntegerField(null=True, blank=True)
    default_status_id = models.BigIntegerField(null=True, blank=True)
    default_responsible_user_id = models.BigIntegerField(null=True, blank=True)
    won_stages = models.JSONField(
        default=list,
        blank=True,
        help_text='Won stages as [[pipeline_id, status_id], ...]. Empty: stage 142 ("won") in every pipeline.',
    )
    metadata_synced_at = models.DateTimeField(null=True, blank=True, editable=False)
    reconciled_until = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Deals updated before this moment have been reconciled."
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        permissions = [("pause_account", "Can pause and resume sending")]
        constraints = [
            models.UniqueConstraint(fields=["host"], condition=~models.Q(host=""), name="amocrm_account_unique_host"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.host or 'not connected'})"

    @property
    def can_call_api(self) -> bool:
        return self.state == self.State.CONNECTED

    @property
    def sending_paused(self) -> bool:
        return self.sending_paused_at is not None

    def is_won(self, pipeline_id: int | None, status_id: int | None) -> bool:
        if self.won_stages:
            return [pipeline_id, status_id] in [list(pair) for pair in self.won_stages]
        return status_id == 142

    @property
    def webhook_path(self) -> str:
        return reverse("amocrm-webhook", kwargs={"key": self.webhook_key})

    @property
    def webhook_url(self) -> str:
        return settings.SITE_URL + self.webhook_path

    @property
    def webhook_key_redacted(self) -> str:
        return redact(self.webhook_key)

    @property
    def client_secret_redacted(self) -> str:
        return redact(self.client_secret)

    def deal_url(self, deal_id: int) -> str:
        return f"{self.host}/leads/detail/{deal_id}"

    def health(self) -> str:
        """The badge shown in the admin: the stored state refined by token expiry and recent errors."""
        if self.state != self.State.CONNECTED:
            return self.state
        if self.sending_paused_at:
            return "paused"
        token = getattr(self, "token", None)
        if token is not None and token.expires_soon():
            return "expiring"
        if self.last_error_at and (not self.last_success_at or self.last_error_at > self.last_success_at):
            return "error"
        return "connected"


class Token(models.Model):
    """The account's OAuth pair (or a long-lived token). Refreshed only under a row lock: see amocrm.tokens."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="token")
    access_token = EncryptedTextField()
    refresh_token = EncryptedTextField(blank=True, default="")
    expires_at = models.DateTimeField()
    long_lived = models.BooleanField(default=False)
    refreshed_at = models.DateTimeField(null=True, blank=True)
    refresh_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"token {redact(self.access_token)} for account {self.account_id}"

    def refresh_due(self, *, ahead: timedelta) -> bool:
        """True when the token should be refreshed before use: within `ahead` of expiry, but never
        earlier than the last fifth of its lifetime (short-lived tokens in tests would otherwise be
        refreshed on every call)."""
        if self.long_lived:
            return False
        issued = self.refreshed_at or self.created_at or timezone.now()
        lifetime = self.expires_at - issued
        margin = min(ahead, lifetime / 5) if lifetime > timedelta(0) else ahead
        return self.expires_at <= timezone.now() + margin

    def expires_soon(self) -> bool:
        window = LONG_LIVED_WARNING if self.long_lived else TOKEN_EXPIRING_SOON
        return self.expires_at <= timezone.now() + window


class Pipeline(models.Model):
    """A cached amoCRM pipeline (refreshed by 'Sync metadata')."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="pipelines")
    amocrm_id = models.BigIntegerField()
    name = models.CharField(max_length=255)
    sort = models.IntegerField(default=0)
    is_main = models.BooleanField(default=False)
    is_archive = models.BooleanField(default=False)

    class Meta:
        ordering = ["account", "sort", "amocrm_id"]
        constraints = [models.UniqueConstraint(fields=["account", "amocrm_id"], name="amocrm_pipeline_unique")]

    def __str__(self) -> str:
        return self.name


class Stage(models.Model):
    """A cached pipeline stage ("status" in the API). Type 1 is the unsorted stage; 142 won, 143 lost."""

    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    amocrm_id = models.BigIntegerField()
    name = models.CharField(max_length=255)
    sort = models.IntegerField(default=0)
    color = models.CharField(max_length=20, blank=True)
    type = models.IntegerField(default=0)

    class Meta:
        ordering = ["pipeline", "sort", "amocrm_id"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "amocrm_id"], name="amocrm_stage_unique")]

    def __str__(self) -> str:
        return f"{self.pipeline.name} → {self.name}"


class AmoUser(models.Model):
    """A cached amoCRM user (for 'responsible user' choices)."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="users")
    amocrm_id = models.BigIntegerField()
    name = models.CharField(max_length=255)
    email = models.CharField(max_length=255, blank=True)
    # amoCRM's rights.is_active: an inactive user keeps their deals but gets no new ones (round-robin skips them).
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["account", "name"]
        verbose_name = "amoCRM user"
        constraints = [models.UniqueConstraint(fields=["account", "amocrm_id"], name="amocrm_user_unique")]

    def __str__(self) -> str:
        return self.name


class CustomField(models.Model):
    """A cached deal or contact custom field; `tracking_data` deal fields with UTM_* codes carry the UTMs."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="custom_fields")
    # "leads" or "contacts": amoCRM's field ids are unique per account across entities.
    entity_type = models.CharField(max_length=10, default="leads")
    amocrm_id = models.BigIntegerField()
    name = models.CharField(max_length=255)
    code = models.CharField(max_length=100, blank=True)
    type = models.CharField(max_length=50, blank=True)
    enums = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["account", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "amocrm_id"], name="amocrm_custom_field_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})" if self.code else self.name


class SyncLog(models.Model):
    """One row per outbound amoCRM call or inbound event handled, redacted and truncated."""

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", "Outbound"
        INBOUND = "inbound", "Inbound"

    class Status(models.TextChoices):
        OK = "ok", "OK"
        ERROR = "error", "Error"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, null=True, blank=True, related_name="sync_logs")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    operation = models.CharField(max_length=64)
    direction = models.CharField(max_length=10, choices=Direction.choices, default=Direction.OUTBOUND)
    status = models.CharField(max_length=10, choices=Status.choices)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=500, blank=True)
    http_status = models.PositiveSmallIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    amocrm_request_id = models.CharField("X-Request-Id", max_length=100, blank=True)
    request_body = models.TextField(blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    context = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="amocrm_synclog_account_idx")]

    def __str__(self) -> str:
        return f"{self.operation} {self.status} {self.http_status or ''}".strip()


class WebhookEvent(models.Model):
    """One raw webhook delivery from amoCRM, stored before anything else happens to it."""

    class State(models.TextChoices):
        RECEIVED = "received", "Received"
        PROCESSED = "processed", "Processed"
        IGNORED = "ignored", "Ignored"
        DUPLICATE = "duplicate", "Duplicate"
        FAILED = "failed", "Failed"
        REJECTED = "rejected", "Rejected"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_events")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    remote_ip = models.GenericIPAddressField(null=True, blank=True)
    headers = models.JSONField(default=dict, blank=True)
    content_type = models.CharField(max_length=200, blank=True)
    body = models.BinaryField()
    body_sha256 = models.CharField(max_length=64, db_index=True)
    parsed = models.JSONField(null=True, blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.RECEIVED, db_index=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True)
    # A delivery larger than WEBHOOK_ITEMS_PER_RUN is processed over several task runs: each run
    # handles the next items and records how far it got, so the rest is never dropped.
    items_total = models.PositiveIntegerField(null=True, blank=True, help_text="Items (events) in the delivery.")
    items_done = models.PositiveIntegerField(default=0, help_text="Items handled so far.")
    items_failed = models.PositiveIntegerField(default=0, help_text="Items that could not be processed.")
    item_errors = models.JSONField(
        default=list, blank=True, help_text="What went wrong with each item that could not be processed."
    )

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["account", "body_sha256", "received_at"], name="amocrm_webhook_dedupe_idx")]
        # Deliveries are read-only records, so "change" cannot stand for "may reprocess": operators
        # get this permission without any right to change accounts.
        permissions = [("reprocess_webhookevent", "Can reprocess webhook events")]

    def __str__(self) -> str:
        return f"webhook #{self.pk} {self.state}"

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")
