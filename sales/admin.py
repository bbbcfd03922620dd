"""Sales admin: the read-only list with totals for the current filter, the campaign report and its CSV export."""

import csv
from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import ModelAdmin

from amocrm.admin import names
from amocrm.error_messages import exception_message
from amocrm.errors import AmoCRMError
from amocrm.models import Account
from config.admin_filters import recent_values_filter
from config.admin_paging import EstimatedCountPaginator, with_cheap_dates
from config.logging import mask_url_secrets
from leads.models import Lead

from . import selectors, services
from .models import Sale

REPORT_DEFAULT_DAYS = 30
# Spreadsheets run a cell starting with one of these as a formula; UTM values come from visitors.
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class SalesReportForm(forms.Form):
    date_from = forms.DateField(label="From", widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(label="Group by", choices=[(key, value[2]) for key, value in
                                                            selectors.GROUPINGS.items()])
    account = forms.ModelChoiceField(queryset=Account.objects.all(), required=False, empty_label="All accounts")

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to"):
            try:
                selectors.report_period_check(date_from=data["date_from"], date_to=data["date_to"])
            except selectors.ReportPeriodError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data

    def error_text(self) -> str:
        """Every error in plain words, one per line (for the CSV export's 400 answer)."""
        lines = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            lines += [f"{label}: {message}" if label else message for message in errors]
        return "\n".join(lines)

    @classmethod
    def from_request(cls, request) -> "SalesReportForm":
        today = timezone.localdate()
        defaults = {"date_from": today - timedelta(days=REPORT_DEFAULT_DAYS - 1), "date_to": today,
                    "group_by": "utm_campaign"}
        given = {key: value for key, value in request.GET.items() if value}
        return cls({**{key: str(value) for key, value in defaults.items()}, **given})


CHART_ROW_HEIGHT = 28
CHART_LABEL_WIDTH = 300
CHART_BAR_WIDTH = 560


def _table(report: selectors.SalesReport) -> list[dict]:
    """Rows with their revenue cells in the report's currency order, formatted for the page."""
    return [{"row": row, "revenue": [selectors.format_amount(row.revenue_in(c)) for c in report.currencies]}
            for row in [*report.rows, report.total]]


def _chart(report: selectors.SalesReport) -> dict | None:
    """Geometry of the inline SVG bar chart (no script, no CDN): one bar per group, in the main currency."""
    currency = report.chart_currency
    if currency is None:
        return None
    bars = [{"y": index * CHART_ROW_HEIGHT, "label": row.label,
             "width": round(row.bar_percent * CHART_BAR_WIDTH / 100, 1),
             "value": selectors.format_amount(row.revenue_in(currency))}
            for index, row in enumerate(report.rows)]
    for bar in bars:
        bar["value_x"] = CHART_LABEL_WIDTH + bar["width"] + 8
    return {"currency": currency, "bars": bars, "height": len(bars) * CHART_ROW_HEIGHT,
            "label_width": CHART_LABEL_WIDTH, "width": CHART_LABEL_WIDTH + CHART_BAR_WIDTH + 140}


def _csv_cell(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(CSV_FORMULA_PREFIXES) else text


@admin.register(Sale)
class SaleAdmin(ModelAdmin):
    list_display = ["deal", "amount_display", "won_at", "state", "stage_display", "manager_display", "source_lead",
                    "utm_source", "utm_campaign", "attribution", "account"]
    list_filter = ["state", "account", "attribution", names.PipelineFilter, names.StageFilter, names.ManagerFilter,
                   ("won_at", admin.DateFieldListFilter),
                   # Through the sale's lead, one lookup per sale: the newest few thousand sales suffice.
                   recent_values_filter("lead__utm_source", title=_("UTM source"), newest_first="-won_at",
                                        recent_rows=5000),
                   recent_values_filter("lead__utm_campaign", title=_("UTM campaign"), newest_first="-won_at",
                                        recent_rows=5000)]
    search_fields = ["name", "=amocrm_deal_id", "lead__utm_source", "lead__utm_campaign"]
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

    @admin.display(description="deal", ordering="amocrm_deal_id")
    def deal(self, obj):
        return format_html('<a href="{}" target="_blank" rel="noopener">#{}</a> {}', obj.deal_url,
                           obj.amocrm_deal_id, obj.name)

    @admin.display(description="amount", ordering="amount")
    def amount_display(self, obj):
        return selectors.format_amount(obj.amount, obj.currency)

    @admin.display(description=_("amoCRM contact"))
    def contact_display(self, obj):
        return names.contact_link(obj.account, obj.amocrm_contact_id, obj.lead.name if obj.lead_id else "")

    @admin.display(description=_("pipeline"), ordering="_pipeline_name")
    def pipeline_display(self, obj):
        return names.shown(obj._pipeline_name, obj.pipeline_id)

    @admin.display(description=_("stage"), ordering="_stage_name")
    def stage_display(self, obj):
        return names.shown(obj._stage_name, obj.stage_id)

    @admin.display(description=_("manager"), ordering="_user_name")
    def manager_display(self, obj):
        return names.shown(obj._user_name, obj.responsible_user_id)

    @admin.display(description="source lead")
    def source_lead(self, obj):
        if obj.lead_id is None:
            return "—"
        url = reverse("admin:leads_lead_change", args=[obj.lead_id]) if self._leads_registered() else None
        label = str(obj.lead)
        return format_html('<a href="{}">{}</a>', url, label) if url else label

    @admin.display(description="UTM source", ordering="lead__utm_source")
    def utm_source(self, obj):
        return obj.lead.utm_source if obj.lead_id else ""

    @admin.display(description="UTM campaign", ordering="lead__utm_campaign")
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

    @admin.action(description="Re-read from amoCRM", permissions=["reread"])
    def action_refresh(self, request, queryset):
        for sale in queryset.select_related("account"):
            try:
                refreshed = services.sale_reread(sale=sale)
            except AmoCRMError as exc:
                prefix = _("Deal #%(deal)s: re-read failed.") % {"deal": sale.amocrm_deal_id}
                self.message_user(request, exception_message(prefix, exc, detail=mask_url_secrets(str(exc))),
                                  messages.ERROR)
                continue
            state = refreshed.get_state_display().lower() if refreshed else "not a sale"
            self.message_user(request, f"Deal #{sale.amocrm_deal_id}: {state}.", messages.SUCCESS)

    # ---- the report

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("report/", view(self.report_view), name="sales_sale_report"),
            path("report/csv/", view(self.report_csv_view), name="sales_sale_report_csv"),
        ] + super().get_urls()

    def _report(self, request):
        form = SalesReportForm.from_request(request)
        if not form.is_valid():
            return form, None
        data = form.cleaned_data
        report = selectors.sales_report(date_from=data["date_from"], date_to=data["date_to"],
                                        group_by=data["group_by"],
                                        account_id=data["account"].pk if data["account"] else None)
        return form, report

    def report_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, report = self._report(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Sales by campaign",
            "opts": self.model._meta,
            "form": form,
            "report": report,
            "table": _table(report) if report else [],
            "chart": _chart(report) if report else None,
            "csv_url": reverse("admin:sales_sale_report_csv") + "?" + request.GET.urlencode(),
        }
        return TemplateResponse(request, "admin/sales/report.html", context)

    def report_csv_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form, report = self._report(request)
        if report is None:
            return HttpResponse(form.error_text(), status=400, content_type="text/plain; charset=utf-8")
        filename = f"sales-by-{report.group_by}-{report.date_from}-{report.date_to}.csv"
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        writer = csv.writer(response)
        writer.writerow([report.group_label, "leads", "converted leads", "conversion %", "sales",
                         *(f"revenue {currency}" for currency in report.currencies)])
        for row in [*report.rows, report.total]:
            writer.writerow([_csv_cell(row.label), row.leads, row.converted,
                             "" if row.conversion is None else row.conversion, row.sales,
                             *(row.revenue_in(currency) for currency in report.currencies)])
        return response
