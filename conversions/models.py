"""One export record per won sale and ad platform: a sale is never exported to the same platform twice."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ConversionExport(models.Model):
    """A won sale (or a lead that reached a qualified stage) as one row of a platform's offline-conversion
    file, and what became of it.

    Created when the sale goes into a CSV download or an upload; `state` then says whether Yandex
    Metrika's API took it (`uploaded`) or refused the file (`failed`, with the error: the record stays,
    so the sale is not exported again by itself — delete the record to send it again).
    """

    class Platform(models.TextChoices):
        YANDEX = "yandex", _("Yandex Metrika")
        GOOGLE = "google", _("Google Ads")

    class IdType(models.TextChoices):
        CLIENT_ID = "ClientId", _("Metrika ClientID")
        YCLID = "Yclid", _("Yandex click id (yclid)")
        GCLID = "gclid", _("Google click id (gclid)")

    class State(models.TextChoices):
        EXPORTED = "exported", _("Exported to a file")
        UPLOADED = "uploaded", _("Uploaded")
        FAILED = "failed", _("Upload failed")

    class Kind(models.TextChoices):
        SALE = "sale", _("Won sale")
        STAGE = "stage", _("Qualified stage")

    kind = models.CharField(_("kind"), max_length=5, choices=Kind.choices, default=Kind.SALE)
    sale = models.ForeignKey("sales.Sale", on_delete=models.CASCADE, related_name="conversion_exports",
                             verbose_name=_("sale"), null=True, blank=True)
    # SET_NULL: the record of what was sent outlives a deleted lead.
    lead = models.ForeignKey("leads.Lead", on_delete=models.SET_NULL, related_name="conversion_exports",
                             verbose_name=_("lead"), null=True, blank=True,
                             help_text=_("The lead whose ids were sent (a qualified-stage conversion has no sale)."))
    platform = models.CharField(_("platform"), max_length=10, choices=Platform.choices)
    id_type = models.CharField(_("id type"), max_length=10, choices=IdType.choices)
    click_id = models.CharField(_("id sent"), max_length=255)
    goal = models.CharField(_("goal / conversion name"), max_length=255)
    value = models.DecimalField(_("value"), max_digits=14, decimal_places=2)
    currency = models.CharField(_("currency"), max_length=8)
    state = models.CharField(_("state"), max_length=10, choices=State.choices, default=State.EXPORTED)
    upload_id = models.CharField(_("upload id"), max_length=64, blank=True,
                                 help_text=_("The id Yandex Metrika gave the upload that carried this sale."))
    error = models.TextField(_("error"), blank=True)
    exported_at = models.DateTimeField(_("exported at"), default=timezone.now)
    uploaded_at = models.DateTimeField(_("uploaded at"), null=True, blank=True)

    class Meta:
        verbose_name = _("conversion export")
        verbose_name_plural = _("conversion exports")
        ordering = ["-exported_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["sale", "platform"], name="conversions_export_once_per_platform"),
            models.UniqueConstraint(fields=["lead", "platform"], condition=models.Q(kind="stage"),
                                    name="conversions_stage_once_per_platform"),
        ]
        permissions = [("export_conversions", _("Can export conversions to ad platforms"))]

    def __str__(self) -> str:
        return f"{self.get_platform_display()}: {self.sale or self.lead} ({self.get_state_display()})"
