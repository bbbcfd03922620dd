"""amoCRM connection models: accounts, their tokens, cached metadata, the sync log and raw webhook deliveries."""

import secrets
from datetime import timedelta

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, pgettext_lazy
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
        NOT_CONNECTED = "not_connected", _("Not connected")
        CONNECTED = "connected", _("Connected")
        NEEDS_REAUTH = "needs_reauth", _("Needs re-authorization")
        BLOCKED = "blocked", _("Blocked by amoCRM")
        DISABLED = "disabled", _("Disabled")

    name = models.CharField(_("name"), max_length=200, help_text=_("Your name for this connection."))
    host = models.CharField(
        _("host"),
        max_length=255,
        blank=True,
        default="",
        help_text=_("Account origin, e.g. https://example.amocrm.ru. Filled in on connect; set it "
          "beforehand only to pick the consent page of Kommo (.kommo.com) accounts."),
    )
    client_id = models.CharField(_("integration ID"), max_length=100)
    client_secret = EncryptedTextField(_("secret key"))
    redirect_uri = models.URLField(
        _("redirect URI"),
        max_length=500,
        help_text=_("Exactly as in the integration settings in amoCRM (a trailing slash matters)."),
    )

    amocrm_account_id = models.BigIntegerField(_("amoCRM account id"), null=True, blank=True, editable=False)
    amocrm_name = models.CharField(_("amoCRM account name"), max_length=255, blank=True, editable=False)
    subdomain = models.CharField(_("subdomain"), max_length=100, blank=True, editable=False)
    currency = models.CharField(_("currency"), max_length=8, blank=True, editable=False)

    state = models.CharField(_("state"), max_length=20, choices=State.choices, default=State.NOT_CONNECTED,
                             editable=False)
    connected_at = models.DateTimeField(_("connected at"), null=True, blank=True, editable=False)
    last_success_at = models.DateTimeField(_("last success at"), null=True, blank=True, editable=False)
    last_error_at = models.DateTimeField(_("last error at"), null=True, blank=True, editable=False)
    last_error = models.TextField(_("last error"), blank=True, editable=False)
    error_count = models.PositiveIntegerField(_("error count"), default=0, editable=False)

    webhook_key = models.CharField(_("webhook key"), max_length=64, unique=True, default=new_webhook_key,
                                   editable=False)
    webhook_subscribed_at = models.DateTimeField(_("webhook subscribed at"), null=True, blank=True, editable=False)
    webhook_error = models.TextField(_("webhook error"), blank=True, editable=False)
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
        _("webhook retry at"),
        null=True, blank=True, editable=False,
        help_text=_("A subscription that met a passing error (429, 5xx, network) is tried again then, by itself."))
    sending_paused_at = models.DateTimeField(
        _("sending paused at"),
        null=True, blank=True, editable=False,
        help_text=_("Set while sending is paused: leads are still accepted and wait until sending is resumed."))

    default_pipeline_id = models.BigIntegerField(_("default pipeline id"), null=True, blank=True)
    default_status_id = models.BigIntegerField(_("default stage id"), null=True, blank=True)
    default_responsible_user_id = models.BigIntegerField(_("default responsible user id"), null=True, blank=True)
    won_stages = models.JSONField(
        _("won stages"),
        default=list,
        blank=True,
        help_text=_('Won stages as [[pipeline_id, status_id], ...]. Empty: stage 142 ("won") in every pipeline.'),
    )
    metadata_synced_at = models.DateTimeField(_("metadata synced at"), null=True, blank=True, editable=False)
    reconciled_until = models.DateTimeField(
        _("reconciled until"),
        null=True, blank=True, editable=False, help_text=_("Deals updated before this moment have been reconciled.")
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("account")
        verbose_name_plural = _("accounts")
        ordering = ["name"]
        # Operators may pause and resume sending without the right to change the connection (README "Roles").
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

    account = models.OneToOneField(Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="token")
    access_token = EncryptedTextField(_("access token"))
    refresh_token = EncryptedTextField(_("refresh token"), blank=True, default="")
    expires_at = models.DateTimeField(_("expires at"))
    long_lived = models.BooleanField(_("long-lived"), default=False)
    refreshed_at = models.DateTimeField(_("refreshed at"), null=True, blank=True)
    refresh_count = models.PositiveIntegerField(_("refresh count"), default=0)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    def __str__(self) -> str:
        return gettext("token %(token)s for account %(account)s") % {"token": redact(self.access_token),
                                                                    "account": self.account_id}

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

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="pipelines")
    amocrm_id = models.BigIntegerField(_("amoCRM id"))
    name = models.CharField(_("name"), max_length=255)
    sort = models.IntegerField(_("sort"), default=0)
    is_main = models.BooleanField(_("main"), default=False)
    is_archive = models.BooleanField(_("archived"), default=False)

    class Meta:
        verbose_name = _("pipeline")
        verbose_name_plural = _("pipelines")
        ordering = ["account", "sort", "amocrm_id"]
        constraints = [models.UniqueConstraint(fields=["account", "amocrm_id"], name="amocrm_pipeline_unique")]

    def __str__(self) -> str:
        return self.name


class Stage(models.Model):
    """A cached pipeline stage ("status" in the API). Type 1 is the unsorted stage; 142 won, 143 lost."""

    pipeline = models.ForeignKey(Pipeline, verbose_name=_("pipeline"), on_delete=models.CASCADE, related_name="stages")
    amocrm_id = models.BigIntegerField(_("amoCRM id"))
    name = models.CharField(_("name"), max_length=255)
    sort = models.IntegerField(_("sort"), default=0)
    color = models.CharField(_("color"), max_length=20, blank=True)
    type = models.IntegerField(_("type"), default=0)

    class Meta:
        verbose_name = _("stage")
        verbose_name_plural = _("stages")
        ordering = ["pipeline", "sort", "amocrm_id"]
        constraints = [models.UniqueConstraint(fields=["pipeline", "amocrm_id"], name="amocrm_stage_unique")]

    def __str__(self) -> str:
        return f"{self.pipeline.name} → {self.name}"


class AmoUser(models.Model):
    """A cached amoCRM user (for 'responsible user' choices)."""

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="users")
    amocrm_id = models.BigIntegerField(_("amoCRM id"))
    name = models.CharField(pgettext_lazy("person", "name"), max_length=255)
    email = models.CharField(_("email"), max_length=255, blank=True)
    # amoCRM's rights.is_active: an inactive user keeps their deals but gets no new ones (round-robin skips them).
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["account", "name"]
        verbose_name = _("amoCRM user")
        verbose_name_plural = _("amoCRM users")
        constraints = [models.UniqueConstraint(fields=["account", "amocrm_id"], name="amocrm_user_unique")]

    def __str__(self) -> str:
        return self.name


class CustomField(models.Model):
    """A cached deal or contact custom field; `tracking_data` deal fields with UTM_* codes carry the UTMs."""

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE,
                                related_name="custom_fields")
    # "leads" or "contacts": amoCRM's field ids are unique per account across entities.
    entity_type = models.CharField(_("entity type"), max_length=10, default="leads")
    amocrm_id = models.BigIntegerField(_("amoCRM id"))
    name = models.CharField(_("name"), max_length=255)
    code = models.CharField(_("code"), max_length=100, blank=True)
    type = models.CharField(_("type"), max_length=50, blank=True)
    enums = models.JSONField(_("enums"), default=list, blank=True)

    class Meta:
        verbose_name = _("custom field")
        verbose_name_plural = _("custom fields")
        ordering = ["account", "name"]
        constraints = [models.UniqueConstraint(fields=["account", "amocrm_id"], name="amocrm_custom_field_unique")]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})" if self.code else self.name


class SyncLog(models.Model):
    """One row per outbound amoCRM call or inbound event handled, redacted and truncated."""

    class Direction(models.TextChoices):
        OUTBOUND = "outbound", _("Outbound")
        INBOUND = "inbound", _("Inbound")

    class Status(models.TextChoices):
        OK = "ok", _("OK")
        ERROR = "error", _("Error")

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE, null=True, blank=True,
                                related_name="sync_logs")
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    operation = models.CharField(_("operation"), max_length=64)
    direction = models.CharField(_("direction"), max_length=10, choices=Direction.choices, default=Direction.OUTBOUND)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices)
    method = models.CharField(_("method"), max_length=10, blank=True)
    path = models.CharField(_("path"), max_length=500, blank=True)
    http_status = models.PositiveSmallIntegerField(_("HTTP status"), null=True, blank=True)
    duration_ms = models.PositiveIntegerField(_("duration, ms"), null=True, blank=True)
    amocrm_request_id = models.CharField(_("X-Request-Id"), max_length=100, blank=True)
    request_body = models.TextField(_("request body"), blank=True)
    response_body = models.TextField(_("response body"), blank=True)
    error = models.TextField(_("error"), blank=True)
    context = models.JSONField(_("context"), default=dict, blank=True)

    class Meta:
        verbose_name = _("sync log")
        verbose_name_plural = _("sync logs")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["account", "-created_at"], name="amocrm_synclog_account_idx")]

    def __str__(self) -> str:
        return gettext("%(operation)s: %(status)s") % {
            "operation": self.operation, "status": self.get_status_display()} + (
            f" ({self.http_status})" if self.http_status else "")


class WebhookEvent(models.Model):
    """One raw webhook delivery from amoCRM, stored before anything else happens to it."""

    class State(models.TextChoices):
        RECEIVED = "received", _("Received")
        PROCESSED = "processed", _("Processed")
        IGNORED = "ignored", _("Ignored")
        DUPLICATE = "duplicate", _("Duplicate")
        FAILED = "failed", _("Failed")
        REJECTED = "rejected", _("Rejected")

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE,
                                related_name="webhook_events")
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    remote_ip = models.GenericIPAddressField(_("sender IP address"), null=True, blank=True)
    headers = models.JSONField(_("headers"), default=dict, blank=True)
    content_type = models.CharField(_("content type"), max_length=200, blank=True)
    body = models.BinaryField(_("body"))
    body_sha256 = models.CharField(_("body SHA-256"), max_length=64, db_index=True)
    parsed = models.JSONField(_("parsed"), null=True, blank=True)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.RECEIVED, db_index=True)
    error = models.TextField(_("error"), blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)
    # A delivery larger than WEBHOOK_ITEMS_PER_RUN is processed over several task runs: each run
    # handles the next items and records how far it got, so the rest is never dropped.
    items_total = models.PositiveIntegerField(_("items total"), null=True, blank=True,
                                              help_text=_("Items (events) in the delivery."))
    items_done = models.PositiveIntegerField(_("items done"), default=0, help_text=_("Items handled so far."))
    items_failed = models.PositiveIntegerField(_("items failed"), default=0,
                                               help_text=_("Items that could not be processed."))
    item_errors = models.JSONField(
        _("item errors"),
        default=list, blank=True, help_text=_("What went wrong with each item that could not be processed.")
    )

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-id"]
        indexes = [models.Index(fields=["account", "body_sha256", "received_at"], name="amocrm_webhook_dedupe_idx")]
        # Deliveries are read-only records, so "change" cannot stand for "may reprocess": operators
        # get this permission without any right to change accounts.
        permissions = [("reprocess_webhookevent", "Can reprocess webhook events")]

    def __str__(self) -> str:
        return gettext("webhook delivery #%(id)s (%(state)s)") % {"id": self.pk, "state": self.get_state_display()}

    @property
    def body_text(self) -> str:
        return bytes(self.body).decode("utf-8", errors="replace")
