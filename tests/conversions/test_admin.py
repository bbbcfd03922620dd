"""The conversions admin: the download (its own permission) gives the platform's CSV and records the sales;
the list shows each sale sent with its state."""

import html

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from conversions.models import ConversionExport
from tests.fixtures.loader import load_fixture

pytestmark = pytest.mark.django_db
DOWNLOAD = reverse("admin:conversions_download")
LIST = reverse("admin:conversions_conversionexport_changelist")


@pytest.fixture
def viewer(client, django_user_model):
    """Staff who may view the records but not export."""
    user = django_user_model.objects.create_user("viewer", "v@example.com", "pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_conversionexport"))
    client.force_login(user)
    return client


def test_the_download_gives_the_exact_csv_once_and_then_says_nothing_is_due(staff, sales):
    response = staff.post(DOWNLOAD, {"file": "yandex-clientid", "date_from": "2026-05-01", "date_to": "2026-05-31"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="conversions-yandex-clientid-')
    assert response.content == load_fixture("conversions/yandex_clientid.csv")

    again = staff.post(DOWNLOAD, {"file": "yandex-clientid"})
    assert again.status_code == 302
    assert [str(m) for m in get_messages(again.wsgi_request)] == [
        "No sale is due for this file: every won sale whose lead has this id was sent already, or none was won "
        "in these days."]


def test_the_list_shows_each_sale_sent_by_name_with_its_state_and_links_the_download(staff, sales):
    staff.post(DOWNLOAD, {"file": "google"})
    page = html.unescape(staff.get(LIST).content.decode())
    assert reverse("admin:sales_sale_change", args=[sales["both"].pk]) in page
    assert "#9001" in page and "Cj0KCQ-first" in page and "Exported to a file" in page
    assert DOWNLOAD in page


def test_bad_dates_are_explained_on_the_form_and_nothing_is_recorded(staff, sales):
    page = html.unescape(staff.post(DOWNLOAD, {"file": "google", "date_from": "2026-05-03",
                                               "date_to": "2026-05-01"}).content.decode())
    assert "“Won from” is after “Won to”: swap the dates." in page
    assert ConversionExport.objects.count() == 0


def test_without_the_export_permission_there_is_no_download_and_no_link(viewer, sales):
    assert viewer.get(DOWNLOAD).status_code == 403
    assert viewer.post(DOWNLOAD, {"file": "google"}).status_code == 403
    assert ConversionExport.objects.count() == 0
    page = viewer.get(LIST).content.decode()
    assert DOWNLOAD not in page


def test_records_cannot_be_added_or_changed_in_the_admin(staff, sales):
    staff.post(DOWNLOAD, {"file": "google"})
    record = ConversionExport.objects.first()
    assert staff.get(reverse("admin:conversions_conversionexport_add")).status_code == 403
    assert 'name="_save"' not in staff.get(
        reverse("admin:conversions_conversionexport_change", args=[record.pk])).content.decode()
