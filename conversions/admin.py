"""Admin: every sale sent to an ad platform with its upload state, and the CSV download (its own permission)."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from .forms import DownloadForm
from .models import ConversionExport
from .services import export_conversions


@admin.register(ConversionExport)
class ConversionExportAdmin(ModelAdmin):
    list_display = ["exported_at", "platform", "kind", "sale_link", "id_type", "click_id", "value", "currency", "state",
                    "upload_id", "short_error"]
    list_filter = ["platform", "kind", "state", "id_type", ("exported_at", admin.DateFieldListFilter)]
    search_fields = ["click_id", "sale__name", "sale__amocrm_deal_id", "upload_id"]
    list_select_related = ["sale", "lead"]
    date_hierarchy = "exported_at"

    def has_add_permission(self, request):
        return False  # records are written by exports only

    def has_change_permission(self, request, obj=None):
        return False  # what was sent stays as it was sent; delete a record to send its sale again

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.model._meta.app_label}.export_conversions")

    @admin.display(description=_("sale or lead"), ordering="sale__won_at")
    def sale_link(self, obj):
        if obj.sale_id:
            return format_html('<a href="{}">{} #{}</a>', reverse("admin:sales_sale_change", args=[obj.sale_id]),
                               obj.sale.name or gettext("deal"), obj.sale.amocrm_deal_id)
        if obj.lead_id:  # a qualified stage: the lead, by its person's name
            return format_html('<a href="{}">{}</a>', reverse("admin:leads_lead_change", args=[obj.lead_id]),
                               obj.lead.name or obj.lead.phone or obj.lead.email or obj.lead_id)
        return "—"

    @admin.display(description=_("error"))
    def short_error(self, obj):
        return obj.error[:200]

    def get_urls(self):
        return [
            path("download/", self.admin_site.admin_view(self.download_view), name="conversions_download"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_export": self.has_export_permission(request)}
        return super().changelist_view(request, extra_context)

    def download_view(self, request):
        """GET: the form. POST: the CSV of every due sale, which records them as sent (so never twice)."""
        if not self.has_export_permission(request):
            raise PermissionDenied
        form = DownloadForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            platform, id_type = form.platform_and_id_type()
            export = export_conversions(platform, id_type, date_from=form.cleaned_data["date_from"],
                                        date_to=form.cleaned_data["date_to"])
            if not export.records:  # an empty file helps nobody: say why instead
                self.message_user(request, gettext("No sale is due for this file: every won sale whose lead has "
                                                   "this id was sent already, or none was won in these days."),
                                  messages.WARNING)
                return HttpResponseRedirect(request.get_full_path())
            response = HttpResponse(export.content, content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
            return response
        context = {**self.admin_site.each_context(request), "title": gettext("Download conversions"),
                   "opts": self.model._meta, "form": form}
        return TemplateResponse(request, "admin/conversions/download.html", context)
