"""Sales admin: the read-only list with totals for the current filter, the campaign report and its CSV export."""

from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from amocrm.admin import names
from amocrm.error_messages import exception_message
from amocrm.errors import AmoCRMError
from config import formats
from config.admin_filters import recent_values_filter
from config.admin_paging import EstimatedCountPaginator, with_cheap_dates
from config.logging import mask_url_secrets
from leads.models import Lead

from . import report_views, selectors, services
from .models import AdSpend, DealLoss, Sale
from .spend_admin import AdSpendAdminMixin


@admin.register(Sale)
class SaleAdmin(names.NameColumns, ModelAdmin):
    list_display = ["sale_title", "deal", "amount_display", "won_at", "state", "stage_display", "manager_display",
                    "source_lead", "utm_source", "utm_campaign", "attribution", "account"]
    list_filter = ["state", "account", "attribution", names.PipelineFilter, names.StageFilter, names.ManagerFilter,
                   ("won_at", admin.DateFieldListFilter),
                   # Through the sale's lead, one lookup per sale: the newest few thousand sales suffice.
                   recent_values_filter("lead__utm_source", title=_("UTM source"), newest_first="-won_at",
                                        recent_rows=5000),
                   recent_values_filter("lead__utm_campaign", title=_("UTM campaign"), newest_first="-won_at",
                                        recent_rows=5000)]
    search_fields = ["name", "=amocrm_deal_id", "lead__utm_source", "lead__utm_campaign"]
    list_display_links = ["sale_title"]
    list_select_related = ["account", "lead"]
    date_hierarchy = "won_at"
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    actions = ["action_refresh"]
    fields = ["account", "deal", "name", "amount_display", "state", "state_changed_at", "won_at",
              "pipeline_display", "stage_display", "manager_display", "source_lead", "attribution",
              "contact_display", "utm_source", "utm_campaign", "deal_updated_at", "created_at", "updated_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def get_queryset(self, request):
        return with_cheap_dates(names.with_names(super().get_queryset(request)))

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # amoCRM owns sales: a deleted row would come back with the next reconciliation

    # ---- columns

    @admin.display(description=_("sale"), ordering="name")
    def sale_title(self, obj):
        """The visible link to the sale's page (the deal column links to amoCRM)."""
        return obj.name or _("Deal #%(id)s") % {"id": obj.amocrm_deal_id}

    @admin.display(description=_("deal"), ordering="amocrm_deal_id")
    def deal(self, obj):
        return format_html('<a href="{}" target="_blank" rel="noopener">#{}</a> {}', obj.deal_url,
                           obj.amocrm_deal_id, obj.name)

    @admin.display(description=_("amount"), ordering="amount")
    def amount_display(self, obj):
        # On one line ("150 000,00 ₽" wrapped over three lines in a narrow column), as the page's language writes it.
        return format_html('<span style="white-space:nowrap">{}</span>', formats.money(obj.amount, obj.currency))

    @admin.display(description=_("amoCRM contact"))
    def contact_display(self, obj):
        return names.contact_link(obj.account, obj.amocrm_contact_id, obj.lead.name if obj.lead_id else "")

    @admin.display(description=_("source lead"))
    def source_lead(self, obj):
        if obj.lead_id is None:
            return "—"
        url = reverse("admin:leads_lead_change", args=[obj.lead_id]) if self._leads_registered() else None
        label = str(obj.lead)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.display(description=_("UTM source"), ordering="lead__utm_source")
    def utm_source(self, obj):
        return obj.lead.utm_source if obj.lead_id else ""

    @admin.display(description=_("UTM campaign"), ordering="lead__utm_campaign")
    def utm_campaign(self, obj):
        return obj.lead.utm_campaign if obj.lead_id else ""

    def _leads_registered(self) -> bool:
        return self.admin_site.is_registered(Lead)

    # ---- totals for the current filter

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", None) and response.context_data.get("cl")
        if changelist is not None:
            response.context_data["sale_totals"] = selectors.sale_totals(sales=changelist.queryset)
            response.context_data["report_url"] = reverse("admin:sales_sale_report")
        return response

    # ---- actions

    def has_reread_permission(self, request):
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('reread', opts)}")

    @admin.action(description=_("Re-read from amoCRM"), permissions=["reread"])
    def action_refresh(self, request, queryset):
        for sale in queryset.select_related("account"):
            try:
                refreshed = services.sale_reread(sale=sale)
            except AmoCRMError as exc:
                prefix = _("Deal #%(deal)s: re-read failed.") % {"deal": sale.amocrm_deal_id}
                self.message_user(request, exception_message(prefix, exc, detail=mask_url_secrets(str(exc))),
                                  messages.ERROR)
                continue
            state = refreshed.get_state_display().lower() if refreshed else _("not a sale")
            self.message_user(request, _("Deal #%(deal)s: %(state)s.") % {"deal": sale.amocrm_deal_id, "state": state},
                              messages.SUCCESS)

    # ---- the report

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("report/", view(self.report_view), name="sales_sale_report"),
            path("report/csv/", view(self.report_csv_view), name="sales_sale_report_csv"),
            path("report/xlsx/", view(self.report_xlsx_view), name="sales_sale_report_xlsx"),
        ] + super().get_urls()

    def report_view(self, request):
        return report_views.report_view(self, request)

    def report_csv_view(self, request):
        return report_views.report_csv_view(self, request)

    def report_xlsx_view(self, request):
        return report_views.report_xlsx_view(self, request)


@admin.register(AdSpend)
class AdSpendAdmin(AdSpendAdminMixin, ModelAdmin):
    list_display = ["day", "utm_source", "utm_medium", "utm_campaign", "cost_display", "updated_at"]
    list_filter = [("day", admin.DateFieldListFilter), "currency"]
    search_fields = ["utm_source", "utm_campaign"]
    date_hierarchy = "day"
    fields = ["day", "utm_source", "utm_medium", "utm_campaign", "cost", "currency"]

    @admin.display(description=_("cost"), ordering="cost")
    def cost_display(self, obj):
        return format_html('<span style="white-space:nowrap">{}</span>', formats.money(obj.cost, obj.currency))


@admin.register(DealLoss)
class DealLossAdmin(names.NameColumns, ModelAdmin):
    """Lost deals and their reasons, as the reconciliation read them (read-only: amoCRM owns them)."""

    list_display = ["amocrm_deal_id", "loss_reason", "lost_at", "lead", "account"]
    list_filter = ["account"]
    search_fields = ["=amocrm_deal_id", "loss_reason"]
    list_select_related = ["account", "lead"]
    fields = ["account", "amocrm_deal_id", "lead", "pipeline_display", "loss_reason_id", "loss_reason", "lost_at",
              "updated_at"]
    readonly_fields = fields  # and no form field of its own for the bare pipeline id

    def get_queryset(self, request):
        # The pipeline's name (a loss has no stage or manager to name): "Продажи (777)", not the bare id.
        return super().get_queryset(request).annotate(_pipeline_name=names.pipeline_name("account_id", "pipeline_id"))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
