"""The scheduled upload to Yandex Metrika (HTTP mocked with `responses`): the request, and the state it leaves
on each sale — uploaded, refused, or left for the next run."""

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone, translation
from responses import matchers

from conversions import metrika
from conversions.models import ConversionExport
from conversions.tasks import upload_yandex_conversions
from sales.models import Sale
from tests.sales.builders import make_lead

pytestmark = pytest.mark.django_db
COUNTER, TOKEN = "44147844", "y0_secret-metrika-token"
UPLOAD = f"https://api-metrika.yandex.net/management/v1/counter/{COUNTER}/offline_conversions/upload"


@pytest.fixture
def configured(settings):
    settings.YANDEX_METRIKA_COUNTER, settings.YANDEX_METRIKA_TOKEN = COUNTER, TOKEN


def won(account, deal_id: int, days_ago: int, **lead_ids) -> Sale:
    return Sale.objects.create(account=account, amocrm_deal_id=deal_id, amount=Decimal("5000"), currency="RUB",
                               lead=make_lead(account, deal_id=deal_id, **lead_ids),
                               won_at=timezone.now() - timedelta(days=days_ago))


@pytest.fixture
def recent(account):
    return {"client": won(account, 9101, 2, ym_client_id="1700000000111"),
            "yclid": won(account, 9102, 3, yclid="998877"),
            "old": won(account, 9103, 30, ym_client_id="1700000000333")}  # past Metrika's 21-day window


def states() -> dict[int, tuple[str, str, str]]:
    return {r.sale.amocrm_deal_id: (r.state, r.upload_id, r.error) for r in ConversionExport.objects.all()}


def csv_of(call) -> bytes:
    body = call.request.body
    return body if isinstance(body, bytes) else body.read()


@pytest.mark.usefixtures("configured")
def test_a_clientid_then_a_yclid_upload_of_the_last_21_days_marks_the_sales_uploaded(recent, amocrm_mock):
    for kind, upload_id in (("CLIENT_ID", 501), ("YCLID", 502)):
        amocrm_mock.post(UPLOAD, json={"uploading": {"id": upload_id, "status": "UPLOADED"}}, match=[
            matchers.query_param_matcher({"client_id_type": kind, "comment": "amoCRM won sales"}),
            matchers.header_matcher({"Authorization": f"OAuth {TOKEN}"})])

    assert upload_yandex_conversions() == 2

    clientid_call, yclid_call = amocrm_mock.calls
    assert b"ClientId,Target,DateTime,Price,Currency\n1700000000111,crm_sale," in csv_of(clientid_call)
    assert b'name="file"; filename="conversions.csv"' in csv_of(clientid_call)
    assert b"Yclid,Target,DateTime,Price,Currency\n998877,crm_sale," in csv_of(yclid_call)
    assert states() == {9101: ("uploaded", "501", ""), 9102: ("uploaded", "502", "")}
    assert upload_yandex_conversions() == 0 and len(amocrm_mock.calls) == 2  # nothing twice


@pytest.mark.usefixtures("configured")
def test_a_refused_upload_marks_its_sales_failed_with_metrikas_words(recent, amocrm_mock, caplog):
    amocrm_mock.post(UPLOAD, status=400, json={"errors": [{"error_type": "invalid_parameter",
                                                           "message": "Unknown goal crm_sale"}], "code": 400},
                     match=[matchers.query_param_matcher({"client_id_type": "CLIENT_ID"}, strict_match=False)])
    amocrm_mock.post(UPLOAD, json={"uploading": {"id": 502}},
                     match=[matchers.query_param_matcher({"client_id_type": "YCLID"}, strict_match=False)])

    outcome = metrika.upload_due()

    assert (outcome.uploaded, outcome.failed) == (1, 1)
    assert states() == {9101: ("failed", "", "Yandex Metrika refused the upload (400): Unknown goal crm_sale. "
                                             f"{metrika.REFUSED_HINT}"),
                        9102: ("uploaded", "502", "")}
    assert TOKEN not in caplog.text


@pytest.mark.usefixtures("configured")
def test_a_refusal_is_recorded_in_the_sites_language(recent, amocrm_mock):
    amocrm_mock.post(UPLOAD, status=400, json={"message": "Unknown goal crm_sale"})

    with translation.override("ru"):
        outcome = metrika.upload_due()

    assert outcome.failed == 2
    assert set(ConversionExport.objects.values_list("error", flat=True)) == {
        "Яндекс Метрика отклонила загрузку (400): Unknown goal crm_sale. Устраните причину (цель "
        "CONVERSIONS_YANDEX_TARGET, счётчик, доступ токена), затем удалите эти записи, чтобы отправить продажи снова."}


@pytest.mark.usefixtures("configured")
def test_an_accepted_upload_with_an_unexpected_body_is_recorded_and_never_sent_twice(recent, amocrm_mock):
    amocrm_mock.post(UPLOAD, body="OK")  # 200, not JSON
    assert upload_yandex_conversions() == 2
    assert states() == {9101: ("uploaded", "", ""), 9102: ("uploaded", "", "")}
    assert upload_yandex_conversions() == 0 and len(amocrm_mock.calls) == 2


@pytest.mark.usefixtures("configured")
def test_a_refusal_whose_json_is_not_an_object_keeps_the_answer_text(recent, amocrm_mock):
    amocrm_mock.post(UPLOAD, status=400, json=["bad counter"])
    assert metrika.upload_due().failed == 2
    assert all('["bad counter"]' in error for error in ConversionExport.objects.values_list("error", flat=True))


@pytest.mark.usefixtures("configured")
@pytest.mark.parametrize("answer", [{"status": 503, "body": "busy"}, {"body": requests.ConnectionError("down")}])
def test_a_5xx_or_a_network_error_records_nothing_and_the_next_run_sends_them(recent, amocrm_mock, answer, caplog):
    amocrm_mock.post(UPLOAD, **answer)
    outcome = metrika.upload_due()
    assert (outcome.uploaded, outcome.failed, len(outcome.retry_later)) == (0, 0, 2)
    assert ConversionExport.objects.count() == 0
    assert TOKEN not in caplog.text

    amocrm_mock.replace(amocrm_mock.POST, UPLOAD, json={"uploading": {"id": 7}})
    assert metrika.upload_due().uploaded == 2


def test_without_a_counter_and_token_nothing_is_sent(recent, amocrm_mock, settings):
    settings.YANDEX_METRIKA_COUNTER, settings.YANDEX_METRIKA_TOKEN = COUNTER, ""
    assert metrika.upload_due() is None and upload_yandex_conversions() == 0
    assert len(amocrm_mock.calls) == 0 and ConversionExport.objects.count() == 0


def test_beat_schedules_the_upload_only_when_configured(settings):
    from config.celery import _schedule_metrika_upload, app

    app.conf.beat_schedule.pop("conversions-upload-yandex", None)
    _schedule_metrika_upload(app)
    assert "conversions-upload-yandex" not in app.conf.beat_schedule
    settings.YANDEX_METRIKA_COUNTER, settings.YANDEX_METRIKA_TOKEN = COUNTER, TOKEN
    settings.YANDEX_METRIKA_UPLOAD_MINUTES = 15
    _schedule_metrika_upload(app)
    entry = app.conf.beat_schedule.pop("conversions-upload-yandex")
    assert entry == {"task": "conversions.tasks.upload_yandex_conversions", "schedule": timedelta(minutes=15)}
