"""Hostile and broken webhook bodies: always stored and answered 200, one bad item never sinks a delivery."""

import io
import json
import logging

import pytest
from django.test import RequestFactory

from amocrm.models import SyncLog, WebhookEvent
from amocrm.views import webhook_receive
from amocrm.webhooks.processing import webhook_event_process
from sales.models import Sale
from tests.sales.builders import AMO_ACCOUNT_ID, FORM, api_deal, deliver, delivery, lead_event, make_lead, serve_deals

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]

State = WebhookEvent.State
JSON = "application/json"


def process(event: WebhookEvent) -> str:
    state = webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    return state


# --- Item 7: bodies the ingest peek cannot read are still stored and answered 200 --------------------

DEEP = b'{"account": {"id": "123456"}, "leads": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
HUGE_NUMBER = b'{"account": {"id": 1e999}, "leads": {"status": [{"id": "9001", "status_id": "142"}]}}'
HUGE_INT = b'{"account": {"id": ' + b"9" * 5000 + b'}, "leads": {"status": [{"id": "9001"}]}}'


@pytest.mark.parametrize("body", [DEEP, HUGE_NUMBER, HUGE_INT], ids=["deep-nesting", "1e999", "5000-digit-int"])
def test_a_json_body_the_peek_cannot_read_is_stored_and_answered_200(client, account, body):
    response = client.post(account.webhook_path, data=body, content_type=JSON)

    assert response.status_code == 200
    assert bytes(WebhookEvent.objects.get().body) == body


def test_a_deeply_nested_body_fails_visibly_in_the_task(client, account):
    event = deliver(client, account, DEEP, JSON)

    assert process(event) == State.FAILED
    assert "cannot be parsed" in event.error and "nested" in event.error.lower()


def test_a_body_with_1e999_is_processed_and_stored_parsed(client, account, amocrm_mock):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    body = (b'{"account": {"id": "123456"}, "leads": {"status": [{"id": "9001", "status_id": "142", '
            b'"pipeline_id": "777", "price": 1e999, "last_modified": -1e999}]}}')

    event = deliver(client, account, body, JSON)
    assert process(event) == State.PROCESSED, event.error

    assert Sale.objects.get().amocrm_deal_id == 9001
    # PostgreSQL's jsonb has no infinity: the number is kept as the text that was sent.
    assert event.parsed["leads"]["status"][0]["price"] == "1e999"


def test_nan_and_infinity_literals_do_not_break_storing_the_parsed_body(client, account):
    body = b'{"account": {"id": "123456"}, "contacts": {"add": [{"id": "7001", "a": NaN, "b": -Infinity}]}}'

    event = deliver(client, account, body, JSON)

    assert process(event) == State.IGNORED, event.error
    assert event.parsed["contacts"]["add"][0]["a"] == "NaN"


def test_the_view_stores_a_delivery_even_when_the_account_peek_itself_breaks(client, account, monkeypatch):
    def broken(body, content_type):
        raise RuntimeError("the peek broke")

    monkeypatch.setattr("amocrm.views.claimed_account_id", broken)

    response = client.post(account.webhook_path, data=b"leads[add][0][id]=1", content_type=FORM)

    assert response.status_code == 200
    assert WebhookEvent.objects.get().state == State.RECEIVED


# --- Item 9: one bad item never fails the rest of its delivery --------------------------------------


def test_an_item_with_an_out_of_range_time_fails_alone_and_is_named(client, account, amocrm_mock):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    body = delivery(lead_event("status", 9001, status_id=142, last_modified=1700001000, index=0),
                    lead_event("status", 9002, status_id=142, last_modified=99_999_999_999_999, index=1),
                    lead_event("status", 9003, status_id=142, last_modified=1700001000, index=2))

    event = deliver(client, account, body)
    assert process(event) == State.FAILED

    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9001, 9003}
    assert "leads[status][1]" in event.error and "9002" in event.error
    assert "last_modified" in event.error and "99999999999999" in event.error
    assert "9001" not in event.error and "9003" not in event.error
    assert "Error" not in event.error  # plain words, no exception class names
    assert (event.items_total, event.items_done, event.items_failed) == (3, 3, 1)


def test_a_lone_surrogate_in_a_json_value_does_not_sink_the_delivery(client, account, amocrm_mock):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    body = json.dumps({"account": {"id": str(AMO_ACCOUNT_ID)}, "leads": {"status": [
        {"id": "9001", "status_id": "142", "pipeline_id": "777", "name": "bad \ud800 name"},
        {"id": "9002", "status_id": "142", "pipeline_id": "777", "name": "good"},
    ]}}).encode()
    assert b"\\ud800" in body

    event = deliver(client, account, body, JSON)
    assert process(event) == State.PROCESSED, event.error

    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9001, 9002}
    assert event.parsed["leads"]["status"][0]["name"] == "bad \ufffd name"


def test_an_item_with_a_deal_id_beyond_64_bits_is_skipped_not_fatal(client, account, amocrm_mock):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    body = json.dumps({"account": {"id": str(AMO_ACCOUNT_ID)}, "leads": {"status": [
        {"id": 10 ** 30, "status_id": "142", "pipeline_id": "777"},
        {"id": "9002", "status_id": "142", "pipeline_id": "777"},
    ]}}).encode()

    event = deliver(client, account, body, JSON)
    process(event)

    assert event.state in (State.PROCESSED, State.FAILED)
    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9002}


# --- Item 10: an unexpected error in one item or one deal fails it alone, visibly ------------------


def test_an_unexpected_error_while_mirroring_one_item_fails_that_item_alone(client, account, amocrm_mock, monkeypatch,
                                                                            caplog):
    from sales import services

    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    real = services.lead_mirror_deal

    def poisoned(**kwargs):
        if kwargs["deal_id"] == 9002:
            raise RuntimeError("poison")
        return real(**kwargs)

    monkeypatch.setattr(services, "lead_mirror_deal", poisoned)
    body = delivery(*(lead_event("status", 9001 + i, status_id=142, last_modified=1700001000, index=i)
                      for i in range(3)))

    event = deliver(client, account, body)
    with caplog.at_level(logging.ERROR):
        assert process(event) == State.FAILED

    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9001, 9003}
    assert "leads[status][1]" in event.error and "9002" in event.error
    assert "poison" not in event.error and "RuntimeError" not in event.error
    assert any(record.exc_info and str(record.exc_info[1]) == "poison" for record in caplog.records)


def test_an_unexpected_error_while_applying_one_re_read_deal_fails_that_deal_alone(client, account, amocrm_mock,
                                                                                   monkeypatch):
    from sales import services

    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))
    real = services.sale_apply_deal

    def poisoned(*, account, deal):
        if deal["id"] == 9002:
            raise ValueError("poison")
        return real(account=account, deal=deal)

    monkeypatch.setattr(services, "sale_apply_deal", poisoned)
    body = delivery(*(lead_event("status", 9001 + i, status_id=142, last_modified=1700001000, index=i)
                      for i in range(3)))

    event = deliver(client, account, body)
    assert process(event) == State.FAILED

    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9001, 9003}
    assert "9002" in event.error and "poison" not in event.error
    row = SyncLog.objects.get(direction=SyncLog.Direction.INBOUND)
    assert row.context["outcomes"]["sale won"] == 2 and row.context["outcomes"]["failed"] == 1


def test_a_database_error_in_one_deal_does_not_break_the_rest_inside_a_transaction(client, account, amocrm_mock):
    """A deal whose API answer cannot be stored (a price beyond the column) fails alone; the others are stored."""
    make_lead(account, deal_id=9001)
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id, price=10 ** 20 if deal_id == 9002 else 5000))
    body = delivery(*(lead_event("status", 9001 + i, status_id=142, last_modified=1700001000, index=i)
                      for i in range(3)))

    event = deliver(client, account, body)
    assert process(event) == State.FAILED

    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9001, 9003}
    assert "9002" in event.error


def test_a_chunked_body_without_a_length_is_refused_with_411_when_the_server_cannot_end_it(account):
    request = RequestFactory().post(account.webhook_path, data=b"leads[add][0][id]=1", content_type=FORM,
                                    CONTENT_LENGTH="", HTTP_TRANSFER_ENCODING="chunked")

    response = webhook_receive(request, key=account.webhook_key)

    assert response.status_code == 411
    assert not WebhookEvent.objects.exists()


def test_a_chunked_body_is_read_whole_when_the_server_marks_the_input_terminated(account):
    body = b"leads[add][0][id]=1&account[id]=123456"
    request = RequestFactory().post(account.webhook_path, data=body, content_type=FORM, CONTENT_LENGTH="",
                                    HTTP_TRANSFER_ENCODING="chunked",
                                    **{"wsgi.input_terminated": True, "wsgi.input": io.BytesIO(body)})

    response = webhook_receive(request, key=account.webhook_key)

    assert response.status_code == 200
    assert bytes(WebhookEvent.objects.get().body) == body


def test_a_chunked_body_over_1_mib_is_refused_with_413(account):
    body = b"leads[add][0][name]=" + b"x" * (1024 * 1024)
    request = RequestFactory().post(account.webhook_path, data=body, content_type=FORM, CONTENT_LENGTH="",
                                    HTTP_TRANSFER_ENCODING="chunked",
                                    **{"wsgi.input_terminated": True, "wsgi.input": io.BytesIO(body)})

    assert webhook_receive(request, key=account.webhook_key).status_code == 413
    assert not WebhookEvent.objects.exists()


def test_a_delivery_of_many_bad_items_names_the_first_and_counts_them_all(client, account, amocrm_mock):
    body = delivery(*(lead_event("status", 9001 + i, status_id=555, last_modified=99_999_999_999_999, index=i)
                      for i in range(60)))

    event = deliver(client, account, body)
    assert process(event) == State.FAILED

    assert event.error.startswith("60 items of 60 could not be processed")
    assert "leads[status][0], deal 9001" in event.error and "… and 35 more." in event.error
    assert event.items_failed == 60 and len(event.item_errors) == 60
