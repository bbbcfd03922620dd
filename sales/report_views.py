"""The admin's sales report pages: the form (period presets, grouping, attribution), the page, CSV and cohorts."""

from datetime import date, timedelta

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy

from amocrm.models import Account, Pipeline

from . import report as reports
from . import report_output, selectors

PRESETS = {
    "today": gettext_lazy("Today"),
    "7d": gettext_lazy("Last 7 days"),
    "30d": gettext_lazy("Last 30 days"),
    "this_month": gettext_lazy("This month"),
    "last_month": gettext_lazy("Last month"),
    "quarter": gettext_lazy("This quarter"),
    "year": gettext_lazy("This year"),
    "custom": gettext_lazy("Custom period"),
}
DEFAULT_PRESET = "30d"


def preset_period(preset: str, today: date) -> tuple[date, date]:
    """The first and last day a preset covers, today included."""
    if preset == "today":
        return today, today
    if preset in ("7d", "30d"):
        return today - timedelta(days=int(preset[:-1]) - 1), today
    if preset == "this_month":
        return today.replace(day=1), today
    if preset == "last_month":
        last = today.replace(day=1) - timedelta(days=1)
        return last.replace(day=1), last
    if preset == "quarter":
        return today.replace(month=(today.month - 1) // 3 * 3 + 1, day=1), today
    if preset == "year":
        return today.replace(month=1, day=1), today
    raise ValueError(preset)


class SalesReportForm(forms.Form):
    period = forms.ChoiceField(label=gettext_lazy("Period"), choices=list(PRESETS.items()), required=False)
    date_from = forms.DateField(label=gettext_lazy("From"), required=False,
                                widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=gettext_lazy("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    group_by = forms.ChoiceField(label=gettext_lazy("Group by"), choices=list(reports.GROUPINGS.items()))
    attribution = forms.ChoiceField(label=gettext_lazy("Attribution"), choices=list(reports.ATTRIBUTIONS.items()),
                                    initial="last", required=False)
    account = forms.ModelChoiceField(label=gettext_lazy("Account"), queryset=Account.objects.all(), required=False,
                                     empty_label=gettext_lazy("All accounts"))
    pipeline = forms.TypedChoiceField(label=gettext_lazy("Funnel of pipeline"), coerce=int, required=False,
                                      empty_value=None)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # By name (the cached pipelines); empty: the pipeline most of the period's leads are in.
        self.fields["pipeline"].choices = [("", gettext("The one with the most leads"))] + [
            (amocrm_id, name) for amocrm_id, name in
            Pipeline.objects.order_by("account", "sort", "amocrm_id").values_list("amocrm_id", "name")]

    def clean(self):
        data = super().clean()
        preset = data.get("period") or ("custom" if data.get("date_from") or data.get("date_to") else DEFAULT_PRESET)
        data["period"] = preset
        data["attribution"] = data.get("attribution") or "last"
        if preset != "custom":
            data["date_from"], data["date_to"] = preset_period(preset, timezone.localdate())
        elif not data.get("date_from") or not data.get("date_to"):
            raise forms.ValidationError(gettext("Choose both dates of a custom period, or a preset period."))
        if not self.errors:
            try:
                selectors.report_period_check(date_from=data["date_from"], date_to=data["date_to"])
            except selectors.ReportPeriodError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data

    def error_text(self) -> str:
        """Every error in plain words, one per line (for the downloads' 400 answer)."""
        lines = []
        for name, errors in self.errors.items():
            label = self.fields[name].label if name in self.fields else ""
            lines += [f"{label}: {message}" if label else message for message in errors]
        return "\n".join(lines)

    @classmethod
    def from_request(cls, request) -> "SalesReportForm":
        given = {key: value for key, value in request.GET.items() if value}
        # The period the report covers when none is chosen, also as the selected option: else the select
        # shows its first option ("Today") above a 30-day report.
        given.setdefault("period", "custom" if given.get("date_from") or given.get("date_to") else DEFAULT_PRESET)
        return cls({"group_by": "utm_campaign", **given})


def build_report(form: SalesReportForm) -> reports.SalesReport:
    data = form.cleaned_data
    return reports.sales_report(date_from=data["date_from"], date_to=data["date_to"], group_by=data["group_by"],
                                attribution=data["attribution"],
                                account_id=data["account"].pk if data["account"] else None,
                                pipeline_id=data.get("pipeline"))


def _checked(model_admin, request) -> None:
    if not model_admin.has_view_permission(request):
        raise PermissionDenied


def report_view(model_admin, request):
    """The report page: form, one chart per measure, the table, the funnel and the lead cohorts."""
    _checked(model_admin, request)
    form = SalesReportForm.from_request(request)
    report = build_report(form) if form.is_valid() else None
    query = request.GET.urlencode()
    context = {
        **model_admin.admin_site.each_context(request),
        "title": gettext("Sales by campaign"),
        "opts": model_admin.model._meta,
        "form": form,
        "report": report,
        "headers": report_output.headers(report) if report else [],
        "table": report_output.table(report) if report else [],
        "charts": report_output.charts(report) if report else [],
        "chart": (report_output.chart(report, "revenue") if report else None),
        "funnel": _funnel_table(report) if report else [],
        "cohorts": [{"cohort": cohort, "revenue": report_output.display_value("revenue", cohort.revenue)}
                    for cohort in report.cohorts] if report else [],
        "csv_url": reverse("admin:sales_sale_report_csv") + ("?" + query if query else ""),
        "xlsx_url": reverse("admin:sales_sale_report_xlsx") + ("?" + query if query else ""),
    }
    return TemplateResponse(request, "admin/sales/report.html", context)


def _funnel_table(report: reports.SalesReport) -> list[dict]:
    """Per group: leads reaching each stage, with the share of the previous stage they reached."""
    lines = []
    for row in report_output.report_lines(report):
        cells, previous = [], row.leads
        for stage in report.stages:
            count = row.funnel.get(stage.id, 0)
            cells.append({"count": count, "step": reports._percent(count, previous)})
            previous = count
        lines.append({"label": row.label, "leads": row.leads, "cells": cells, "won": row.converted,
                      "lost": row.lost, "reasons": row.loss_reasons_text})
    return lines


XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _download(model_admin, request, extension: str):
    _checked(model_admin, request)
    form = SalesReportForm.from_request(request)
    if not form.is_valid():
        return HttpResponse(form.error_text(), status=400, content_type="text/plain; charset=utf-8")
    report = build_report(form)
    filename = f"sales-by-{report.group_by}-{report.date_from}-{report.date_to}.{extension}"
    if extension == "csv":
        response = HttpResponse(report_output.report_csv(report), content_type="text/csv; charset=utf-8")
    else:
        response = HttpResponse(report_output.report_xlsx(report), content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def report_csv_view(model_admin, request):
    """The report as a CSV Excel opens as a table in the user's language (`;` and decimal comma in Russian)."""
    return _download(model_admin, request, "csv")


def report_xlsx_view(model_admin, request):
    """The report as an Excel workbook."""
    return _download(model_admin, request, "xlsx")
