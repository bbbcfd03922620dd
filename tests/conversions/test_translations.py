"""The conversions app and the lead's attribution fields read in Russian."""

from django.utils import translation

from conversions.forms import DownloadForm
from conversions.models import ConversionExport
from leads.models import Lead


def test_the_conversions_admin_and_the_attribution_fields_have_russian_names():
    with translation.override("ru"):
        assert str(ConversionExport._meta.verbose_name_plural) == "выгрузки конверсий"
        assert str(ConversionExport.State.FAILED.label) == "Загрузка отклонена"
        assert str(DownloadForm().fields["date_to"].label) == "Выиграна по (включительно)"
        assert str(Lead._meta.get_field("first_landing_page").verbose_name) == "первое касание: страница входа"
        assert str(Lead._meta.get_field("ym_client_id").verbose_name) == "ClientID Яндекс Метрики"
