"""The admin's download form: which file (platform and id type) and which days won."""

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ConversionExport

Platform, IdType = ConversionExport.Platform, ConversionExport.IdType
# A choice → (platform, id type).
FILES = {
    "yandex-clientid": (Platform.YANDEX, IdType.CLIENT_ID),
    "yandex-yclid": (Platform.YANDEX, IdType.YCLID),
    "google": (Platform.GOOGLE, IdType.GCLID),
}


class DownloadForm(forms.Form):
    file = forms.ChoiceField(label=_("File"), choices=[
        ("yandex-clientid", _("Yandex Metrika, by ClientID")),
        ("yandex-yclid", _("Yandex Metrika, by yclid")),
        ("google", _("Google Ads, by gclid")),
    ])
    date_from = forms.DateField(label=_("Won from"), required=False, widget=forms.DateInput(attrs={"type": "date"}),
                                help_text=_("Empty: every sale not sent yet."))
    date_to = forms.DateField(label=_("Won to (included)"), required=False,
                              widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self):
        cleaned = super().clean()
        date_from, date_to = cleaned.get("date_from"), cleaned.get("date_to")
        if date_from and date_to and date_from > date_to:
            raise forms.ValidationError(_("“Won from” is after “Won to”: swap the dates."))
        return cleaned

    def platform_and_id_type(self) -> tuple[str, str]:
        return FILES[self.cleaned_data["file"]]
