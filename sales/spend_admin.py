"""The ad spend admin's CSV upload page (the same import as `manage.py import_ad_spend`), for AdSpendAdmin."""

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext, gettext_lazy

from .spend import COLUMNS, SpendImportError, spend_import

MAX_UPLOAD_BYTES = 5 * 1024 * 1024


class SpendUploadForm(forms.Form):
    file = forms.FileField(label=gettext_lazy("CSV file"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Formatted per request, in the user's language (a lazy string formatted at import would not be).
        self.fields["file"].help_text = gettext(
            "Columns: %(columns)s. Separated by commas or semicolons; a day and campaign imported again "
            "replaces its cost.") % {"columns": ", ".join(COLUMNS)}


class AdSpendAdminMixin:
    """Adds "Upload CSV" to a ModelAdmin of AdSpend; uploading needs both the add and the change permission."""

    change_list_template = "admin/sales/adspend/change_list.html"

    def get_urls(self):
        return [path("upload/", self.admin_site.admin_view(self.upload_view), name="sales_adspend_upload"),
                *super().get_urls()]

    def has_upload_permission(self, request) -> bool:
        return self.has_add_permission(request) and self.has_change_permission(request)

    def changelist_view(self, request, extra_context=None):
        extra = {"can_upload": self.has_upload_permission(request), **(extra_context or {})}
        return super().changelist_view(request, extra)

    def upload_view(self, request):
        if not self.has_upload_permission(request):
            raise PermissionDenied
        form = SpendUploadForm(request.POST or None, request.FILES or None)
        errors: list[str] = []
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > MAX_UPLOAD_BYTES:
                errors = [gettext("The file is larger than 5 MB: split it by month and upload each part.")]
            else:
                try:
                    result = spend_import(upload.read())
                except SpendImportError as exc:
                    errors = [gettext("Nothing was imported; fix these lines and upload again."), *exc.errors[:20]]
                else:
                    self.message_user(request, gettext(
                        "Imported %(rows)s rows (%(created)s new, %(updated)s updated) for %(days)s days.")
                        % {"rows": result.rows, "created": result.created, "updated": result.updated,
                           "days": len(result.days)}, messages.SUCCESS)
                    return redirect(reverse("admin:sales_adspend_changelist"))
        context = {**self.admin_site.each_context(request), "title": gettext("Upload ad spend"),
                   "opts": self.model._meta, "form": form, "import_errors": errors}
        return TemplateResponse(request, "admin/sales/adspend/upload.html", context)
