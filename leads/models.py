"""Lead sources (a form or site) and leads (the outbox row that a task pushes to amoCRM)."""

import secrets
import uuid

from django.db import models
from django.utils import timezone

from amocrm.models import Account, SyncLog

DEFAULT_DEAL_NAME = "Заявка с сайта: {name}"


def new_public_key() -> str:
    return secrets.token_urlsafe(16)


class LeadSource(models.Model):
    """A website form: where its leads go in amoCRM and how they are shaped."""

    class Mode(models.TextChoices):
        DEAL = "deal", "Deal with contact (leads/complex)"
        UNSORTED = "unsorted", "Incoming lead (unsorted)"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="lead_sources")
    name = models.CharField(max_length=200)
    public_key = models.CharField(max_length=64, unique=True, default=new_public_key, editable=False,
                                  help_text="The `source` value the website form sends.")
    is_active = models.BooleanField(default=True)
    is_default = models.BooleanField(default=False, editable=False)
    mode = models.CharField(max_length=10, choices=Mode.choices, default=Mode.DEAL)
    pipeline_id = models.BigIntegerField(null=True, blank=True, help_text="Empty: the account's main pipeline.")
    status_id = models.BigIntegerField("stage id", null=True, blank=True,
                                       help_text="Empty: the pipeline's first stage.")
    responsible_user_id = models.BigIntegerField(null=True, blank=True)
    tags = models.JSONField(default=list, blank=True, help_text='Tags for every deal, e.g. ["site", "landing"].')
    deal_name_template = models.CharField(
        max_length=255, default=DEFAULT_DEAL_NAME,
        help_text="Placeholders: {name}, {phone}, {email}, {source}, {utm_source}, {utm_campaign}.",
    )
    field_mapping = models.JSONField(
        default=dict, blank=True,
        help_text='Form field → amoCRM deal custom field id, e.g. {"city": 123456}.',
    )
    allowed_origins = models.JSONField(
        default=list, blank=True,
        help_text='Origins allowed to post from a browser (CORS), e.g. ["https://example.com"].',
    )
    success_url = models.URLField(max_length=2000, blank=True,
                                  help_text="Where a plain HTML form post is redirected (303) after submit.")
    form_id = models.CharField(max_length=100, blank=True, help_text="Form id reported to amoCRM in unsorted mode.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "name"]
        constraints = [
            # The default source is created on every connect; this makes a racing second one fail, not exist.
            models.UniqueConstraint(fields=["account"], condition=models.Q(is_default=True),
                                    name="leads_source_one_default_per_account"),
        ]

    def __str__(self) -> str:
        return self.name


class Lead(models.Model):
    """One accepted form submission. The row is the outbox: a task pushes `pending` leads to amoCRM.

    Lifecycle: pending → sending (claimed by a push, on a lease it renews) → sent; or failed (permanent
    amoCRM error or a lead its push could not build, retryable from the admin); spam (honeypot) is never
    pushed. A crash while `sending` is recovered once the lease runs out: the sweeper queues a push,
    which adopts whatever the first attempt created in amoCRM.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"
        SPAM = "spam", "Spam"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(LeadSource, on_delete=models.PROTECT, related_name="leads")
    # Indexed through leads_lead_deal_idx, whose first column it is.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="leads", db_index=False)

    name = models.CharField(max_length=255, blank=True)
    phone_raw = models.CharField(max_length=64, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164")
    email = models.EmailField(max_length=254, blank=True)
    message = models.TextField(max_length=5000, blank=True)
    utm_source = models.CharField(max_length=255, blank=True)
    utm_medium = models.CharField(max_length=255, blank=True)
    utm_campaign = models.CharField(max_length=255, blank=True)
    utm_term = models.CharField(max_length=255, blank=True)
    utm_content = models.CharField(max_length=255, blank=True)
    referrer = models.CharField(max_length=2000, blank=True)
    page_url = models.CharField(max_length=2000, blank=True)
    # First touch: where the visitor first came from (the tracker keeps it across page views).
    first_utm_source = models.CharField(max_length=255, blank=True)
    first_utm_medium = models.CharField(max_length=255, blank=True)
    first_utm_campaign = models.CharField(max_length=255, blank=True)
    first_utm_term = models.CharField(max_length=255, blank=True)
    first_utm_content = models.CharField(max_length=255, blank=True)
    first_referrer = models.CharField(max_length=2000, blank=True)
    first_landing_page = models.CharField(max_length=2000, blank=True)
    first_touch_at = models.DateTimeField(null=True, blank=True)
    fields = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    idempotency_key = models.CharField(max_length=255, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True,
                                   help_text="Hash of source + phone/email + message, to collapse double clicks.")
    submission_hash = models.CharField(
        max_length=64, blank=True,
        help_text="With an idempotency key: hash of the validated submission, which a repeat of the key must match.")

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(
        null=True, blank=True,
        help_text="While sending: the push that claimed the lead renews this as it works; once it has passed, "
                  "that push is presumed dead and the lead is taken back.")
    next_attempt_at = models.DateTimeField(null=True, blank=True,
                                           help_text="Not pushed again before this moment (backoff after an error).")
    write_attempted_at = models.DateTimeField(
        null=True, blank=True,
        help_text="A write that may have created this lead's deal was sent then, and its answer never came: the "
                  "next push looks for the deal by the lead's marker tag and adopts it instead of creating another.",
    )
    note_pending = models.BooleanField(default=False, help_text="The deal exists; its note is still to be added.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    amocrm_deal_id = models.BigIntegerField(null=True, blank=True)
    amocrm_contact_id = models.BigIntegerField(null=True, blank=True)
    amocrm_unsorted_uid = models.CharField(max_length=100, blank=True)
    # Mirrored from amoCRM webhooks: where the deal is now.
    pipeline_id = models.BigIntegerField(null=True, blank=True)
    stage_id = models.BigIntegerField(null=True, blank=True)
    responsible_user_id = models.BigIntegerField(null=True, blank=True)
    stage_changed_at = models.DateTimeField(null=True, blank=True)

    sync_logs = models.ManyToManyField(SyncLog, blank=True, related_name="leads")

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["source", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                                    name="leads_lead_unique_idempotency_key"),
        ]
        # Every index is paid for by each intake INSERT, so only the ones a query needs. The outbox
        # index holds only the leads that still need work, which keeps it small and the claim, the
        # notes pass and the sweeper fast however many sent leads pile up.
        indexes = [
            models.Index(fields=["account", "created_at"], name="leads_lead_outstanding_idx",
                         condition=models.Q(status__in=["pending", "sending"]) | models.Q(note_pending=True)),
            models.Index(fields=["account", "amocrm_deal_id"], name="leads_lead_deal_idx"),
            models.Index(fields=["account", "amocrm_contact_id"], name="leads_lead_contact_idx",
                         condition=models.Q(amocrm_contact_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.phone or self.email} ({self.status})"


class ContactMatch(models.Model):
    """What we learned from earlier pushes: this normalized phone/email is amoCRM contact N."""

    class Kind(models.TextChoices):
        PHONE = "phone", "Phone"
        EMAIL = "email", "Email"

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contact_matches")
    kind = models.CharField(max_length=5, choices=Kind.choices)
    value = models.CharField(max_length=254)
    contact_id = models.BigIntegerField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "kind", "value"], name="leads_contact_match_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value} → {self.contact_id}"
