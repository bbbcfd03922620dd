"""Sales: amoCRM deals that reached a won stage, one row per account and deal, linked to the lead that brought them."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from amocrm.models import Account


class Sale(models.Model):
    """A deal that was won in amoCRM, confirmed through the API (webhooks are unsigned).

    Lifecycle: `won` when the API shows the deal in a won stage → `reverted` when it leaves the
    won stage (the row is kept, with the amount it was won for) → `won` again when it returns;
    `deleted` when the deal is deleted in amoCRM (a restore re-reads it). Every write comes from
    the deal as the API returned it, and only when that deal is not older than `deal_updated_at`,
    so deliveries arriving late or out of order never roll a sale back.
    """

    class State(models.TextChoices):
        WON = "won", _("Won")
        REVERTED = "reverted", _("Reverted")
        DELETED = "deleted", _("Deleted")

    class Attribution(models.TextChoices):
        DEAL = "deal", _("Our lead created the deal")
        CONTACT = "contact", _("A lead of the same contact")
        NONE = "none", _("Not attributed")

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE, related_name="sales")
    amocrm_deal_id = models.BigIntegerField(_("amoCRM deal id"))
    lead = models.ForeignKey("leads.Lead", verbose_name=_("lead"), on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="sales",
                             help_text=_("The lead this sale is attributed to (its UTMs and source)."))
    attribution = models.CharField(_("attribution"), max_length=10, choices=Attribution.choices,
                                   default=Attribution.NONE)
    amocrm_contact_id = models.BigIntegerField(_("main contact id"), null=True, blank=True)

    name = models.CharField(_("name"), max_length=255, blank=True)
    amount = models.DecimalField(_("amount"), max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(_("currency"), max_length=8, blank=True)
    pipeline_id = models.BigIntegerField(_("pipeline id"), null=True, blank=True)
    stage_id = models.BigIntegerField(_("stage id"), null=True, blank=True)
    responsible_user_id = models.BigIntegerField(_("responsible user id"), null=True, blank=True)
    won_at = models.DateTimeField(_("won at"), db_index=True,
                                  help_text=_("When the deal was closed as won (amoCRM closed_at)."))
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.WON, db_index=True)
    state_changed_at = models.DateTimeField(_("state changed at"), default=timezone.now)
    deal_updated_at = models.DateTimeField(
        _("deal updated at"),
        null=True, blank=True,
        help_text=_("amoCRM updated_at of the deal this row reflects; older information is not applied."),
    )

    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("sale")
        verbose_name_plural = _("sales")
        ordering = ["-won_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "amocrm_deal_id"], name="sales_sale_unique_deal"),
        ]
        indexes = [models.Index(fields=["state", "won_at"], name="sales_sale_state_won_idx")]
        # Sales are read-only (amoCRM owns them): re-reading a deal through the API is its own permission.
        permissions = [("reread_sale", "Can re-read sales from amoCRM")]

    def __str__(self) -> str:
        # The state's label, not its code: this is the title of the sale's admin page and of its link elsewhere.
        return f"{self.name or _('deal')} #{self.amocrm_deal_id} ({self.get_state_display()})"

    @property
    def deal_url(self) -> str:
        return self.account.deal_url(self.amocrm_deal_id)


class AdSpend(models.Model):
    """What one day of one campaign cost (entered in the admin or imported from CSV); one row per day × UTMs."""

    day = models.DateField(_("day"))
    utm_source = models.CharField(_("UTM source"), max_length=255, blank=True)
    utm_medium = models.CharField(_("UTM medium"), max_length=255, blank=True)
    utm_campaign = models.CharField(_("UTM campaign"), max_length=255, blank=True)
    cost = models.DecimalField(_("cost"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=8, default="RUB")
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        ordering = ["-day", "utm_source", "utm_medium", "utm_campaign"]
        verbose_name = _("ad spend")
        verbose_name_plural = _("ad spend")
        constraints = [
            # The import's upsert key: a second import of the same day and campaign replaces the cost.
            models.UniqueConstraint(fields=["day", "utm_source", "utm_medium", "utm_campaign"],
                                    name="sales_adspend_unique_day_campaign"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.utm_source}/{self.utm_medium}/{self.utm_campaign}: {self.cost} {self.currency}"


class DealLoss(models.Model):
    """A deal closed as lost (stage 143) and amoCRM's loss reason for it, read by the reconciliation."""

    account = models.ForeignKey(Account, verbose_name=_("account"), on_delete=models.CASCADE,
                                related_name="deal_losses")
    amocrm_deal_id = models.BigIntegerField(_("amoCRM deal id"))
    lead = models.ForeignKey("leads.Lead", verbose_name=_("lead"), on_delete=models.SET_NULL, null=True, blank=True,
                             related_name="losses")
    pipeline_id = models.BigIntegerField(_("pipeline id"), null=True, blank=True)
    loss_reason_id = models.BigIntegerField(_("loss reason id"), null=True, blank=True)
    loss_reason = models.CharField(_("loss reason"), max_length=255, blank=True)
    lost_at = models.DateTimeField(_("lost at"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("lost deal")
        verbose_name_plural = _("lost deals")
        constraints = [
            models.UniqueConstraint(fields=["account", "amocrm_deal_id"], name="sales_dealloss_unique_deal"),
        ]

    def __str__(self) -> str:
        return f"#{self.amocrm_deal_id}: {self.loss_reason or '—'}"
