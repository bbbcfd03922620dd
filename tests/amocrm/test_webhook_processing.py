"""Processing stored webhook deliveries into lead mirrors and sales: shapes, order, duplicates, failures, admin."""

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import responses
from django.urls import reverse

from amocrm.errors import TransientError
from amocrm.models import SyncLog, WebhookEvent
from amocrm.tasks import process_webhook_event
from amocrm.webhooks.processing import webhook_event_process, webhook_event_reprocess
from sales.models import Sale
from tests.factories import make_account
from tests.fixtures.loader import FIXTURES_DIR, load_fixture
from tests.sales.builders import (
    AMO_ACCOUNT_ID,
    LEAD_URL,
    answer_deal,
    api_deal,
    deliver,
    delivery,
    lead_event,
    make_lead,
    serve_deals,
)

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]

State = WebhookEvent.State


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def process(event: WebhookEvent) -> str:
    state = webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    return state


def deal_reads(mock) -> int:
    return sum(1 for call in mock.calls if "/api/v4/leads/" in call.request.url)


# --- Won deals become sales -------------------------------------------------------------------


def test_a_won_deal_with_a_full_body_becomes_a_sale_confirmed_by_the_api(client, account, amocrm_mock):
    lead = make_lead(account, deal_id=9001, contact_id=7001, utm_source="google", utm_campaign="spring")
    answer_deal(amocrm_mock, api_deal(9001, price=15000, updated_at=1700001000))

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED

    sale = Sale.objects.get()
    assert (sale.account, sale.amocrm_deal_id, sale.state) == (account, 9001, Sale.State.WON)
    assert (sale.amount, sale.currency, sale.name) == (Decimal("15000"), "RUB", "Заявка с сайта")
    assert (sale.pipeline_id, sale.stage_id, sale.responsible_user_id) == (777, 142, 4040)
    assert sale.won_at == at(1700001000)
    assert (sale.lead, sale.attribution) == (lead, Sale.Attribution.DEAL)
    assert deal_reads(amocrm_mock) == 1
    assert "with=contacts" in amocrm_mock.calls[0].request.url
    lead.refresh_from_db()
    assert (lead.pipeline_id, lead.stage_id, lead.responsible_user_id) == (777, 142, 4040)
    assert lead.stage_changed_at == at(1700001000)
    assert event.parsed["leads"]["status"][0]["id"] == "9001"
    assert event.processed_at is not None and event.error == ""


def test_a_reduced_body_takes_the_amount_and_name_from_the_api(client, account, amocrm_mock):
    make_lead(account, deal_id=9001)
    answer_deal(amocrm_mock, api_deal(9001, price=27500, name="Кухня под заказ"))

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_reduced.txt"))
    assert process(event) == State.PROCESSED

    sale = Sale.objects.get()
    assert (sale.amount, sale.name, sale.state) == (Decimal("27500"), "Кухня под заказ", Sale.State.WON)


def test_a_won_event_the_api_no_longer_confirms_creates_no_sale(client, account, amocrm_mock):
    make_lead(account, deal_id=9001)
    answer_deal(amocrm_mock, api_deal(9001, status_id=555, updated_at=1700002000))

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED

    assert not Sale.objects.exists()


def test_a_forged_won_event_for_a_deal_that_does_not_exist_creates_no_sale(client, account, amocrm_mock):
    answer_deal(amocrm_mock, None, deal_id=9001)

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED

    assert not Sale.objects.exists()


def test_a_deal_not_from_us_is_attributed_to_a_lead_of_its_main_contact(client, account, amocrm_mock):
    make_lead(account, contact_id=7001, utm_source="old", created_at=at(1690000000))
    latest = make_lead(account, contact_id=7001, utm_source="yandex", utm_campaign="retarget",
                       created_at=at(1699990000))
    make_lead(account, contact_id=7001, utm_source="after-the-win", created_at=at(1700100000))
    make_lead(account, contact_id=7999, utm_source="someone-else", created_at=at(1699995000))
    answer_deal(amocrm_mock, api_deal(9001, contact_id=7001, closed_at=1700001000))

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED

    sale = Sale.objects.get()
    assert (sale.lead, sale.attribution, sale.amocrm_contact_id) == (latest, Sale.Attribution.CONTACT, 7001)


def test_a_won_deal_of_nobody_we_know_is_recorded_without_attribution(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001, contact_id=None))

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED

    sale = Sale.objects.get()
    assert (sale.lead, sale.attribution) == (None, Sale.Attribution.NONE)


def test_the_accounts_own_won_stages_are_honoured(client, account, amocrm_mock):
    account.won_stages = [[888, 601]]
    account.save()
    answer_deal(amocrm_mock, api_deal(9001, status_id=601, pipeline_id=888, price=9900, closed_at=0))

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_pipeline_moved.txt"))
    assert process(event) == State.PROCESSED

    sale = Sale.objects.get()
    assert (sale.stage_id, sale.amount, sale.won_at) == (601, Decimal("9900"), at(1700001000))


# --- Duplicates, order, staleness ------------------------------------------------------------


def test_a_duplicate_delivery_makes_one_sale_and_one_api_call(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001))
    body = load_fixture("amocrm/webhooks/lead_status_won.txt")

    first, second = deliver(client, account, body), deliver(client, account, body)
    assert process(first) == State.PROCESSED
    assert process(second) == State.DUPLICATE

    assert Sale.objects.count() == 1
    assert deal_reads(amocrm_mock) == 1


def test_the_same_delivery_processed_twice_changes_nothing_the_second_time(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001))
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED
    first = Sale.objects.values().get()

    webhook_event_reprocess(event_id=event.pk)
    assert process(event) == State.PROCESSED

    assert Sale.objects.values().get() == first
    assert deal_reads(amocrm_mock) == 1  # the sale already reflects this event: no second read


@pytest.mark.parametrize("order", ["update first", "status first"])
def test_update_and_status_of_one_edit_give_the_same_result_in_either_order(client, account, amocrm_mock, order):
    lead = make_lead(account, deal_id=9001)
    answer_deal(amocrm_mock, api_deal(9001, updated_at=1700001000))
    update = delivery(lead_event("update", 9001, status_id=555, last_modified=1700000500, price=15000))
    status = delivery(lead_event("status", 9001, status_id=142, old_status_id=555, last_modified=1700001000))
    bodies = [update, status] if order == "update first" else [status, update]

    for body in bodies:
        assert process(deliver(client, account, body)) == State.PROCESSED

    sale = Sale.objects.get()
    assert (sale.state, sale.stage_id) == (Sale.State.WON, 142)
    lead.refresh_from_db()
    assert (lead.stage_id, lead.stage_changed_at) == (142, at(1700001000))
    assert deal_reads(amocrm_mock) == 1


def test_update_and_status_in_one_delivery_make_one_sale(client, account, amocrm_mock):
    lead = make_lead(account, deal_id=9001)
    answer_deal(amocrm_mock, api_deal(9001))

    event = deliver(client, account, load_fixture("amocrm/webhooks/update_and_status_together.txt"))
    assert process(event) == State.PROCESSED

    assert Sale.objects.get().state == Sale.State.WON
    lead.refresh_from_db()
    assert lead.stage_id == 142


def test_a_stale_event_changes_neither_the_sale_nor_the_lead_and_calls_nothing(client, account, amocrm_mock):
    lead = make_lead(account, deal_id=9001)
    answer_deal(amocrm_mock, api_deal(9001, updated_at=1700001000))
    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))) == "processed"
    calls = len(amocrm_mock.calls)

    older = delivery(lead_event("status", 9001, status_id=555, old_status_id=142, last_modified=1700000900,
                                responsible_user_id=5050))
    assert process(deliver(client, account, older)) == State.PROCESSED

    assert len(amocrm_mock.calls) == calls
    assert Sale.objects.get().state == Sale.State.WON
    lead.refresh_from_db()
    assert (lead.stage_id, lead.responsible_user_id) == (142, 4040)


def test_a_reduced_body_without_a_time_moves_the_lead_only_from_the_stage_it_names(client, account, amocrm_mock):
    lead = make_lead(account, deal_id=9001, pipeline_id=777, stage_id=600)

    stale = delivery(lead_event("status", 9001, status_id=555, old_status_id=500))
    assert process(deliver(client, account, stale)) == State.PROCESSED
    lead.refresh_from_db()
    assert lead.stage_id == 600

    current = delivery(lead_event("status", 9001, status_id=601, old_status_id=600))
    assert process(deliver(client, account, current)) == State.PROCESSED
    lead.refresh_from_db()
    assert lead.stage_id == 601


def test_a_responsible_change_is_mirrored_on_the_lead(client, account):
    lead = make_lead(account, deal_id=9001)

    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_responsible.txt"))
    assert process(event) == State.PROCESSED

    lead.refresh_from_db()
    assert (lead.responsible_user_id, lead.stage_id, lead.pipeline_id) == (5050, 555, 777)
    assert not Sale.objects.exists()


def test_a_deal_won_then_reverted_then_won_again_keeps_one_sale_in_the_right_state(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001, price=10000, updated_at=1700001000))
    answer_deal(amocrm_mock, api_deal(9001, status_id=555, updated_at=1700002000))
    answer_deal(amocrm_mock, api_deal(9001, price=12000, updated_at=1700003000))

    won = delivery(lead_event("status", 9001, status_id=142, old_status_id=555, last_modified=1700001000))
    assert process(deliver(client, account, won)) == State.PROCESSED
    assert Sale.objects.get().state == Sale.State.WON

    back = delivery(lead_event("status", 9001, status_id=555, old_status_id=142, last_modified=1700002000))
    assert process(deliver(client, account, back)) == State.PROCESSED
    sale = Sale.objects.get()
    assert (sale.state, sale.stage_id, sale.amount) == (Sale.State.REVERTED, 555, Decimal("10000"))

    again = delivery(lead_event("status", 9001, status_id=142, old_status_id=555, last_modified=1700003000))
    assert process(deliver(client, account, again)) == State.PROCESSED
    sale = Sale.objects.get()
    assert (sale.state, sale.amount, sale.won_at) == (Sale.State.WON, Decimal("12000"), at(1700003000))


def test_identical_reduced_bodies_on_either_side_of_a_revert_are_not_taken_for_a_resend(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001, updated_at=1700001000))
    answer_deal(amocrm_mock, api_deal(9001, status_id=555, updated_at=1700002000))
    answer_deal(amocrm_mock, api_deal(9001, updated_at=1700003000))
    won = load_fixture("amocrm/webhooks/lead_status_reduced.txt")
    lost = delivery(lead_event("status", 9001, status_id=555, old_status_id=142))

    states = [process(deliver(client, account, body)) for body in (won, lost, won)]

    assert states == [State.PROCESSED] * 3
    assert Sale.objects.get().state == Sale.State.WON


def test_a_late_revert_check_never_rolls_back_a_newer_sale(account):
    from sales.services import sale_apply_deal

    sale_apply_deal(account=account, deal=api_deal(9001, price=20000, updated_at=1700003000))
    sale_apply_deal(account=account, deal=api_deal(9001, status_id=555, updated_at=1700002000))

    sale = Sale.objects.get()
    assert (sale.state, sale.amount, sale.deal_updated_at) == (Sale.State.WON, Decimal("20000"), at(1700003000))


# --- Delete and restore ----------------------------------------------------------------------


def test_a_deleted_deal_marks_its_sale_deleted_and_a_restore_wins_it_back(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001, updated_at=1700001000))
    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))) == "processed"

    answer_deal(amocrm_mock, None, deal_id=9001)  # amoCRM answers 204 for a deleted deal
    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_delete.txt"))) == "processed"
    assert Sale.objects.get().state == Sale.State.DELETED

    amocrm_mock.replace(responses.GET, f"{LEAD_URL}9001", json=api_deal(9001, updated_at=1700005000))
    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_restore.txt"))) == "processed"
    assert Sale.objects.get().state == Sale.State.WON


def test_a_delete_of_a_deal_without_a_sale_calls_nothing(client, account, amocrm_mock):
    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_delete.txt"))) == "processed"
    assert len(amocrm_mock.calls) == 0


def test_a_forged_delete_of_a_deal_that_still_exists_keeps_the_sale(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001, updated_at=1700001000))
    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))) == "processed"

    assert process(deliver(client, account, load_fixture("amocrm/webhooks/lead_delete.txt"))) == "processed"

    assert Sale.objects.get().state == Sale.State.WON


# --- Every delivery shape through processing ----------------------------------------------------

SHAPES = {
    # fixture: (final state, deals that become sales when the API confirms every deal as won)
    "lead_add.txt": (State.PROCESSED, set()),
    "lead_update.txt": (State.PROCESSED, set()),
    "lead_status_won.txt": (State.PROCESSED, {9001}),
    "lead_status_reduced.txt": (State.PROCESSED, {9001}),
    "lead_pipeline_moved.txt": (State.PROCESSED, set()),
    "lead_responsible.txt": (State.PROCESSED, set()),
    "lead_delete.txt": (State.PROCESSED, set()),
    "lead_restore.txt": (State.PROCESSED, {9001}),
    "lead_note.txt": (State.IGNORED, set()),
    "contact_add.txt": (State.IGNORED, set()),
    "company_add.txt": (State.IGNORED, set()),
    "task_add.txt": (State.IGNORED, set()),
    "plus_and_percent.txt": (State.IGNORED, set()),
    "several_leads.txt": (State.PROCESSED, {9001, 9003}),
    "update_and_status_together.txt": (State.PROCESSED, {9001}),
    "no_account_block.txt": (State.PROCESSED, set()),
    "old_sender_subdomain_only.txt": (State.PROCESSED, {9001}),
    "truncated.txt": (State.PROCESSED, {9001, 9002}),
    "dangling_fragment.txt": (State.PROCESSED, {9001}),
    "invalid_utf8.bin": (State.PROCESSED, set()),
    "json_body.json": (State.PROCESSED, {9001}),
}


def test_every_webhook_fixture_has_an_expected_outcome():
    assert set(SHAPES) == {path.name for path in (FIXTURES_DIR / "amocrm" / "webhooks").iterdir()}


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_each_delivery_shape_is_processed_to_the_expected_state_and_sales(client, account, amocrm_mock, name):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id))  # the API confirms every deal as won
    content_type = "application/json" if name.endswith(".json") else "application/x-www-form-urlencoded"

    event = deliver(client, account, load_fixture(f"amocrm/webhooks/{name}"), content_type)

    state, sales = SHAPES[name]
    assert process(event) == state, event.error
    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == sales


def test_unknown_events_are_ignored_and_named(client, account):
    body = delivery([("catalogs[add][0][id]", 1), ("catalogs[add][0][name]", "x")],
                    [("leads[frobnicate][0][id]", 9001)])

    event = deliver(client, account, body)
    assert process(event) == State.IGNORED
    assert "catalogs.add" in event.error and "leads.frobnicate" in event.error


def test_a_body_that_cannot_be_parsed_fails_visibly_without_retries(client, account):
    event = deliver(client, account, b"\x00\x01 not a form at all", "application/octet-stream")

    assert process(event) == State.FAILED
    assert "cannot be parsed" in event.error
    assert event.parsed is None


def test_a_body_with_nul_characters_is_stored_parsed(client, account):
    body = delivery([("contacts[add][0][id]", 7001), ("contacts[add][0][name]", "a\x00b")])

    event = deliver(client, account, body)
    assert process(event) == State.IGNORED
    assert event.parsed["contacts"]["add"][0]["name"] == "a\ufffdb"


def test_a_delivery_naming_another_account_inside_its_items_is_rejected(client, amocrm_mock):
    account = make_account(amocrm_account_id=31000001)  # the fixture's items say account 123456

    event = deliver(client, account, load_fixture("amocrm/webhooks/no_account_block.txt"))

    assert process(event) == State.REJECTED
    assert "123456" in event.error
    assert len(amocrm_mock.calls) == 0


def test_processing_writes_an_inbound_sync_log_row(client, account, amocrm_mock):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id) if deal_id in (9001, 9003) else None)
    event = deliver(client, account, load_fixture("amocrm/webhooks/several_leads.txt"))

    process(event)

    row = SyncLog.objects.get(direction=SyncLog.Direction.INBOUND)
    assert row.context == {"webhook_event": event.pk,
                           "outcomes": {"sale won": 2, "mirrored": 3, "no sale": 1}}


def test_a_bulk_stage_change_is_confirmed_with_one_list_request_per_250_deals(client, account, amocrm_mock):
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id, price=deal_id))
    body = delivery(*(lead_event("status", 10_000 + i, status_id=142, old_status_id=555, index=i)
                      for i in range(300)))

    assert process(deliver(client, account, body)) == State.PROCESSED

    assert Sale.objects.count() == 300
    assert Sale.objects.get(amocrm_deal_id=10_299).amount == Decimal(10_299)
    lists = [call.request.url for call in amocrm_mock.calls]
    assert len(lists) == 2 and all("filter%5Bid%5D%5B%5D=" in url for url in lists)
    assert [url.count("filter%5Bid%5D%5B%5D=") for url in lists] == [250, 50]


def test_deals_missing_from_the_list_are_gone_and_lose_their_sales(client, account, amocrm_mock):
    from sales.services import sale_apply_deal

    sale_apply_deal(account=account, deal=api_deal(9001, updated_at=1700000000))
    serve_deals(amocrm_mock, lambda deal_id: api_deal(deal_id) if deal_id == 9002 else None)
    body = delivery([("leads[delete][0][id]", 9001)], lead_event("status", 9002, status_id=142, index=0))

    assert process(deliver(client, account, body)) == State.PROCESSED

    assert dict(Sale.objects.values_list("amocrm_deal_id", "state")) == {9001: "deleted", 9002: "won"}


# --- Failures, retries, reprocessing --------------------------------------------------------


def test_a_transient_api_error_fails_the_event_and_the_task_retries_it(client, account, amocrm_mock):
    amocrm_mock.get(f"{LEAD_URL}9001", status=503, json={"title": "Service Unavailable"})
    answer_deal(amocrm_mock, api_deal(9001))
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))

    with pytest.raises(TransientError):
        webhook_event_process(event_id=event.pk)
    event.refresh_from_db()
    assert event.state == State.FAILED
    assert "503" in event.error

    # The task's retry (run eagerly here) picks the failed delivery up again.
    process_webhook_event.apply(args=[event.pk])
    event.refresh_from_db()
    assert (event.state, event.attempts, event.error) == (State.PROCESSED, 2, "")
    assert Sale.objects.get().state == Sale.State.WON


def test_the_task_retries_a_transient_error_with_backoff(client, account, amocrm_mock):
    amocrm_mock.get(f"{LEAD_URL}9001", status=502)
    amocrm_mock.get(f"{LEAD_URL}9001", status=504)
    answer_deal(amocrm_mock, api_deal(9001))
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))

    result = process_webhook_event.apply(args=[event.pk])

    assert result.successful()
    event.refresh_from_db()
    assert (event.state, event.attempts) == (State.PROCESSED, 3)


def test_the_task_backs_off_exponentially_with_full_jitter_and_never_past_ten_minutes(client, account, amocrm_mock,
                                                                                     monkeypatch):
    """Celery's own retry policy (autoretry_for, retry_backoff, retry_jitter): 5 s, 10 s, 20 s … capped at 600 s."""
    from celery.exceptions import Retry

    amocrm_mock.get(f"{LEAD_URL}9001", status=503)
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    countdowns: dict[int, list[float]] = {}

    def retry(*, exc, countdown, **options):
        countdowns.setdefault(process_webhook_event.request.retries, []).append(countdown)
        return Retry(exc=exc)

    monkeypatch.setattr(process_webhook_event, "retry", retry)
    for retries in range(9):
        for _ in range(6):
            process_webhook_event.apply(args=[event.pk], retries=retries)

    assert sorted(countdowns) == list(range(9))
    for retries, waits in countdowns.items():
        assert all(0 <= wait <= min(600, 5 * 2**retries) for wait in waits), (retries, waits)
    assert len(set(countdowns[8])) > 1  # jittered, so deliveries that failed together spread out


def test_a_permanent_error_fails_the_event_without_a_retry(client, account, amocrm_mock):
    amocrm_mock.get(f"{LEAD_URL}9001", status=400, json={"title": "Bad Request", "detail": "nope"})
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))

    assert process(event) == State.FAILED
    assert "400" in event.error


def test_an_account_that_needs_reauthorization_fails_the_event_visibly(client, account, amocrm_mock):
    account.state = account.State.NEEDS_REAUTH
    account.save()
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))

    assert process(event) == State.FAILED
    assert "AccountUnavailable" in event.error
    assert len(amocrm_mock.calls) == 0


def test_a_finished_event_is_not_processed_again_by_a_stray_task(client, account, amocrm_mock):
    answer_deal(amocrm_mock, api_deal(9001))
    event = deliver(client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.PROCESSED

    assert process(event) == State.PROCESSED
    assert event.attempts == 1


def test_reprocess_puts_a_duplicate_back_and_it_is_then_processed(client, account, amocrm_mock,
                                                                   django_capture_on_commit_callbacks):
    answer_deal(amocrm_mock, api_deal(9001))
    body = load_fixture("amocrm/webhooks/lead_status_won.txt")
    first, second = deliver(client, account, body), deliver(client, account, body)
    process(first)
    assert process(second) == State.DUPLICATE

    with django_capture_on_commit_callbacks() as callbacks:
        assert webhook_event_reprocess(event_id=second.pk) is True
    assert len(callbacks) == 1
    second.refresh_from_db()
    assert second.state == State.RECEIVED

    assert process(second) == State.PROCESSED
    assert webhook_event_reprocess(event_id=10**9) is False


# --- The admin ------------------------------------------------------------------------------


def test_the_admin_reprocess_action_requeues_the_selected_events(admin_client, account, amocrm_mock,
                                                                 django_capture_on_commit_callbacks):
    amocrm_mock.get(f"{LEAD_URL}9001", status=400)
    event = deliver(admin_client, account, load_fixture("amocrm/webhooks/lead_status_won.txt"))
    assert process(event) == State.FAILED

    url = reverse("admin:amocrm_webhookevent_changelist")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = admin_client.post(url, {"action": "action_reprocess", "_selected_action": [event.pk]},
                                     follow=True)

    assert response.status_code == 200
    assert "1 webhook event(s) queued for reprocessing" in response.content.decode()
    assert len(callbacks) == 1
    event.refresh_from_db()
    assert (event.state, event.error) == (State.RECEIVED, "")

    amocrm_mock.replace(responses.GET, f"{LEAD_URL}9001", json=api_deal(9001))
    assert process(event) == State.PROCESSED
    assert Sale.objects.count() == 1


def test_the_admin_shows_raw_and_parsed_bodies_escaped(admin_client, account):
    body = json.dumps({"contacts": {"add": [{"id": "7001", "name": "<script>alert(1)</script>"}]},
                       "account": {"id": str(AMO_ACCOUNT_ID)}}).encode()
    event = deliver(admin_client, account, body, "application/json")
    assert process(event) == State.IGNORED

    page = admin_client.get(reverse("admin:amocrm_webhookevent_change", args=[event.pk])).content.decode()

    assert "<script>alert(1)</script>" not in page
    # Once in the raw body, once in the parsed structure.
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") == 2


def test_the_admin_lists_and_filters_events_by_state(admin_client, account):
    event = deliver(admin_client, account, b"garbage", "text/plain")
    process(event)

    url = reverse("admin:amocrm_webhookevent_changelist")
    assert admin_client.get(url, {"state": "failed"}).context["cl"].result_count == 1
    assert admin_client.get(url, {"state": "processed"}).context["cl"].result_count == 0
    assert admin_client.get(url, {"account__id__exact": account.pk}).status_code == 200
