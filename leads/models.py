"""Lead sources (a form or site) and leads (the outbox row that a task pushes to amoCRM)."""

import hashlib
import secrets
import uuid

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from amocrm.models import Account, SyncLog

DEFAULT_DEAL_NAME = "Заявка с сайта: {name}"
# The manager's task when the source leaves its text empty; translated when the task is built.
DEFAULT_TASK_TEXT = _("Call {name} back: {phone} {email} (website lead from “{source}”)")


def new_public_key() -> str:
    return secrets.token_urlsafe(16)


def new_hook_secret() -> str:
    """The secret in a source's form-builder hook URL (/api/leads/hook/<secret>/): 192 random bits."""
    return secrets.token_urlsafe(24)


def hook_secret_digest(secret: str) -> str:
    """What the hook looks a source up by: the secret's SHA-256, so the lookup's timing says nothing about it."""
    return hashlib.sha256(secret.encode()).hexdigest()


class HookPreset(models.TextChoices):
    """The form builders whose field names the hook knows (leads/intake/hook_fields.py)."""

    AUTO = "auto", _("Any (all known form builders)")
    TILDA = "tilda", _("Tilda")
    CF7 = "cf7", _("WordPress: Contact Form 7")
    ELEMENTOR = "elementor", _("WordPress: Elementor")
    WPFORMS = "wpforms", _("WordPress: WPForms")
    NONE = "none", _("None (our field names and the aliases only)")


class LeadSource(models.Model):
    """A website form: where its leads go in amoCRM and how they are shaped."""

    class Mode(models.TextChoices):
        DEAL = "deal", _("Deal with contact (leads/complex)")
        UNSORTED = "unsorted", _("Incoming lead (unsorted)")

    class DedupPolicy(models.TextChoices):
        NEW_DEAL = "new", _("Always a new deal")
        ATTACH = "attach", _("Attach to the person's open deal")

    class ResponsibleMode(models.TextChoices):
        FIXED = "fixed", _("Fixed user")
        ROUND_ROBIN = "round_robin", _("Round-robin over chosen users")

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE,
                                related_name="lead_sources")
    name = models.CharField(_("name"), max_length=200)
    public_key = models.CharField(_("public key"), max_length=64, unique=True, default=new_public_key, editable=False,
                                  help_text=_("The `source` value the website form sends."))
    is_active = models.BooleanField(_("active"), default=True)
    is_default = models.BooleanField(_("default"), default=False, editable=False)
    mode = models.CharField(_("mode"), max_length=10, choices=Mode.choices, default=Mode.DEAL)
    pipeline_id = models.BigIntegerField(_("pipeline id"), null=True, blank=True,
                                         help_text=_("Empty: the account's main pipeline."))
    status_id = models.BigIntegerField(_("stage id"), null=True, blank=True,
                                       help_text=_("Empty: the pipeline's first stage."))
    responsible_user_id = models.BigIntegerField(_("responsible user id"), null=True, blank=True)
    tags = models.JSONField(_("tags"), default=list, blank=True,
                            help_text=_('Tags for every deal, e.g. ["site", "landing"].'))
    deal_name_template = models.CharField(
        _("deal name template"),
        max_length=255, default=DEFAULT_DEAL_NAME,
        help_text=_("Placeholders: {name}, {phone}, {email}, {source}, {utm_source}, {utm_campaign}."),
    )
    field_mapping = models.JSONField(
        _("field mapping"),
        default=dict, blank=True,
        help_text=_('Form field → amoCRM deal custom field id, e.g. {"city": 123456}.'),
    )
    allowed_origins = models.JSONField(
        _("allowed origins"),
        default=list, blank=True,
        help_text=_('Origins allowed to post from a browser (CORS), e.g. ["https://example.com"].'),
    )
    success_url = models.URLField(_("success url"), max_length=2000, blank=True,
                                  help_text=_("Where a plain HTML form post is redirected (303) after submit."))
    form_id = models.CharField(_("form id"), max_length=100, blank=True,
                               help_text=_("Form id reported to amoCRM in unsorted mode."))
    error_url = models.URLField(
        _("error URL"), max_length=2000, blank=True,
        help_text=_("Where a plain HTML form post that cannot be accepted is redirected (303). Empty: a short page "
                    "lists what to fix."))
    # The form-builder hook: the secret is shown to whoever may change the source (the hook URL is
    # useless without it), so it is stored as it is; the digest is what requests are looked up by.
    hook_secret = models.CharField(_("hook secret"), max_length=64, unique=True, default=new_hook_secret,
                                   editable=False)
    hook_secret_digest = models.CharField(_("hook secret digest"), max_length=64, unique=True, editable=False)
    hook_preset = models.CharField(
        _("form builder"), max_length=12, choices=HookPreset.choices, default=HookPreset.AUTO,
        help_text=_("Which form builder posts to the hook URL: its field names are understood without aliases."))
    hook_aliases = models.JSONField(
        _("field aliases"), default=dict, blank=True,
        help_text=_('The sender\'s field name → ours, e.g. {"Ваше имя": "name", "Город": "city"}. Ours: name, '
                    'phone, email, message, utm_…, page_url, referrer; any other name goes to the extra fields.'))
    # Routing (leads/push/routing.py, leads/push/dedup.py, leads/push/followups.py).
    contact_field_mapping = models.JSONField(
        _("contact field mapping"), default=dict, blank=True,
        help_text=_('Form field → amoCRM contact custom field id, e.g. {"position": 123457}. '
                    'Set on contacts the push creates.'))
    dedup_policy = models.CharField(_("repeat enquiries"), max_length=10, choices=DedupPolicy.choices,
                                    default=DedupPolicy.NEW_DEAL)
    dedup_days = models.PositiveIntegerField(
        _("open deal age, days"), default=30,
        help_text=_("With “attach”: only an open deal created within this many days takes the enquiry."))
    responsible_mode = models.CharField(_("responsible manager"), max_length=12, choices=ResponsibleMode.choices,
                                        default=ResponsibleMode.FIXED)
    responsible_user_ids = models.JSONField(
        _("round-robin users"), default=list, blank=True,
        help_text=_("amoCRM user ids taking new deals in turn; users inactive in amoCRM are skipped."))
    # The round-robin's position: taken under the row's lock, so every worker and host shares one turn.
    responsible_turn = models.PositiveBigIntegerField(_("responsible turn"), default=0, editable=False)
    task_enabled = models.BooleanField(_("task for the manager"), default=False,
                                       help_text=_("Create an amoCRM task on each new deal."))
    task_text = models.CharField(
        _("task text"), max_length=500, blank=True,
        help_text=_("Placeholders: {name}, {phone}, {email}, {company}, {price}, {source}, {message}. "
                    "Empty: a standard text in the project's language (LANGUAGE_CODE)."))
    task_due_minutes = models.PositiveIntegerField(_("task due in, minutes"), default=60)
    task_working_hours = models.CharField(
        _("working hours"), max_length=11, blank=True,
        help_text=_("Optional, e.g. 09:00-18:00: a deal pushed outside them (or on a weekend) gets its task due "
                    "N minutes after the next working day starts. Times in TIME_ZONE."))
    task_type_id = models.PositiveIntegerField(_("task type"), default=1,
                                               help_text=_("amoCRM task type id: 1 call, 2 meeting, or a custom type."))
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("lead source")
        verbose_name_plural = _("lead sources")
        ordering = ["account", "name"]
        constraints = [
            # The default source is created on every connect; this makes a racing second one fail, not exist.
            models.UniqueConstraint(fields=["account"], condition=models.Q(is_default=True),
                                    name="leads_source_one_default_per_account"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        digest = hook_secret_digest(self.hook_secret)
        if self.hook_secret_digest != digest:
            self.hook_secret_digest = digest
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "hook_secret_digest"}
        super().save(*args, **kwargs)

    def rotate_hook_secret(self) -> None:
        """A new hook secret: the old hook URL stops working at once (within the source cache's seconds elsewhere)."""
        self.hook_secret = new_hook_secret()
        self.save(update_fields=["hook_secret", "updated_at"])


class Lead(models.Model):
    """One accepted form submission. The row is the outbox: a task pushes `pending` leads to amoCRM.

    Lifecycle: pending → sending (claimed by a push, on a lease it renews) → sent; or failed (permanent
    amoCRM error or a lead its push could not build, retryable from the admin); spam (honeypot) is never
    pushed. A crash while `sending` is recovered once the lease runs out: the sweeper queues a push,
    which adopts whatever the first attempt created in amoCRM.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENDING = "sending", _("Sending")
        SENT = "sent", _("Sent")
        FAILED = "failed", _("Failed")
        SPAM = "spam", _("Spam")

    id = models.UUIDField(_("ID"), primary_key=True, default=uuid.uuid4, editable=False)
    source = models.ForeignKey(LeadSource, verbose_name=_("source"), on_delete=models.PROTECT, related_name="leads")
    # Indexed through leads_lead_deal_idx, whose first column it is.
    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="leads",
                                db_index=False)

    name = models.CharField(pgettext_lazy("person", "name"), max_length=255, blank=True)
    phone_raw = models.CharField(_("phone raw"), max_length=64, blank=True)
    phone = models.CharField(_("phone"), max_length=20, blank=True, help_text=_("E.164"))
    email = models.EmailField(_("email"), max_length=254, blank=True)
    message = models.TextField(_("message"), max_length=5000, blank=True)
    price = models.DecimalField(_("budget"), max_digits=14, decimal_places=2, null=True, blank=True)
    company = models.CharField(_("company"), max_length=255, blank=True)
    utm_source = models.CharField(_("UTM source"), max_length=255, blank=True)
    utm_medium = models.CharField(_("UTM medium"), max_length=255, blank=True)
    utm_campaign = models.CharField(_("UTM campaign"), max_length=255, blank=True)
    utm_term = models.CharField(_("UTM term"), max_length=255, blank=True)
    utm_content = models.CharField(_("UTM content"), max_length=255, blank=True)
    referrer = models.CharField(_("referrer"), max_length=2000, blank=True)
    page_url = models.CharField(_("page URL"), max_length=2000, blank=True)
    fields = models.JSONField(_("fields"), default=dict, blank=True)
    # Attribution (leads/attribution.py): ad click ids and analytics client ids, and the visitor's first touch
    # as the tracker kept it (the UTM fields above are the last touch).
    gclid = models.CharField(_("Google click id (gclid)"), max_length=255, blank=True)
    gbraid = models.CharField(_("Google click id (gbraid)"), max_length=255, blank=True)
    wbraid = models.CharField(_("Google click id (wbraid)"), max_length=255, blank=True)
    yclid = models.CharField(_("Yandex click id (yclid)"), max_length=255, blank=True)
    fbclid = models.CharField(_("Facebook click id (fbclid)"), max_length=255, blank=True)
    msclkid = models.CharField(_("Microsoft click id (msclkid)"), max_length=255, blank=True)
    vk_clickid = models.CharField(_("VK click id (rb_clickid)"), max_length=255, blank=True)
    ym_client_id = models.CharField(_("Yandex Metrika ClientID"), max_length=255, blank=True)
    ga_client_id = models.CharField(_("Google Analytics client id"), max_length=255, blank=True)
    roistat_visit = models.CharField(_("Roistat visit"), max_length=255, blank=True)
    first_utm_source = models.CharField(_("first touch utm_source"), max_length=255, blank=True)
    first_utm_medium = models.CharField(_("first touch utm_medium"), max_length=255, blank=True)
    first_utm_campaign = models.CharField(_("first touch utm_campaign"), max_length=255, blank=True)
    first_utm_term = models.CharField(_("first touch utm_term"), max_length=255, blank=True)
    first_utm_content = models.CharField(_("first touch utm_content"), max_length=255, blank=True)
    first_referrer = models.CharField(_("first touch referrer"), max_length=2000, blank=True)
    first_landing_page = models.CharField(_("first touch landing page"), max_length=2000, blank=True)
    first_touch_at = models.DateTimeField(_("first touch at"), null=True, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    user_agent = models.CharField(_("user agent"), max_length=500, blank=True)
    idempotency_key = models.CharField(_("idempotency key"), max_length=255, blank=True)
    fingerprint = models.CharField(_("fingerprint"), max_length=64, blank=True,
                                   help_text=_("Hash of source + phone/email + message, to collapse double clicks."))
    submission_hash = models.CharField(
        _("submission hash"),
        max_length=64, blank=True,
        help_text=_("With an idempotency key: hash of the validated submission, which a repeat of the key must match."))

    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    lease_expires_at = models.DateTimeField(
        _("lease expires at"),
        null=True, blank=True,
        help_text=_("While sending: the push that claimed the lead renews this as it works; once it has passed, "
                    "that push is presumed dead and the lead is taken back."))
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True,
                                           help_text=_("Not pushed again before this moment (backoff after an error)."))
    write_attempted_at = models.DateTimeField(
        _("write attempted at"),
        null=True, blank=True,
        help_text=_("A write that may have created this lead's deal was sent then, and its answer never came: the "
                    "next push looks for the deal by the lead's marker tag and adopts it instead of creating another."),
    )
    note_pending = models.BooleanField(_("note pending"), default=False,
                                       help_text=_("The deal exists; its note is still to be added."))
    task_pending = models.BooleanField(_("task pending"), default=False,
                                       help_text=_("The deal exists; the manager's task is still to be created."))
    attached_to_deal = models.BooleanField(
        _("attached to an open deal"), default=False,
        help_text=_("The person had an open deal: this enquiry became a note on it (the deal id) "
                    "instead of a new deal."))
    created_at = models.DateTimeField(_("created at"), default=timezone.now, db_index=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    amocrm_deal_id = models.BigIntegerField(_("amoCRM deal id"), null=True, blank=True)
    amocrm_contact_id = models.BigIntegerField(_("amoCRM contact id"), null=True, blank=True)
    amocrm_unsorted_uid = models.CharField(_("amoCRM incoming lead uid"), max_length=100, blank=True)
    # Mirrored from amoCRM webhooks: where the deal is now.
    pipeline_id = models.BigIntegerField(_("pipeline id"), null=True, blank=True)
    stage_id = models.BigIntegerField(_("stage id"), null=True, blank=True)
    responsible_user_id = models.BigIntegerField(_("responsible user id"), null=True, blank=True)
    stage_changed_at = models.DateTimeField(_("stage changed at"), null=True, blank=True)

    sync_logs = models.ManyToManyField(SyncLog, verbose_name=_("sync logs"), blank=True, related_name="leads")

    class Meta:
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
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
                         condition=(models.Q(status__in=["pending", "sending"]) | models.Q(note_pending=True)
                                    | models.Q(task_pending=True))),
            models.Index(fields=["account", "amocrm_deal_id"], name="leads_lead_deal_idx"),
            models.Index(fields=["account", "amocrm_contact_id"], name="leads_lead_contact_idx",
                         condition=models.Q(amocrm_contact_id__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.name or self.phone or self.email} ({self.get_status_display()})"


class ContactMatch(models.Model):
    """What we learned from earlier pushes: this normalized phone/email is amoCRM contact N."""

    class Kind(models.TextChoices):
        PHONE = "phone", _("Phone")
        EMAIL = "email", _("Email")

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE,
                                related_name="contact_matches")
    kind = models.CharField(_("kind"), max_length=5, choices=Kind.choices)
    value = models.CharField(_("value"), max_length=254)
    contact_id = models.BigIntegerField(_("contact id"))
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("contact match")
        verbose_name_plural = _("contact matches")
        constraints = [models.UniqueConstraint(fields=["account", "kind", "value"], name="leads_contact_match_unique")]

    def __str__(self) -> str:
        return f"{self.kind} {self.value} → {self.contact_id}"
