"""Reconciliation: listing deals updated since the checkpoint catches the webhooks amoCRM lost."""

from datetime import timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
from django.utils import timezone

from amocrm.errors import TransientError
from amocrm.models import Account
from sales.models import Sale
from sales.reconcile import RECONCILE_LOOKBACK, RECONCILE_OVERLAP, account_reconcile_deals
from sales.services import sale_apply_deal
from sales.tasks import reconcile_account, reconcile_all_accounts
from tests.factories import HOST, make_account
from tests.fixtures.loader import load_json
from tests.sales.builders import AMO_ACCOUNT_ID, api_deal, make_lead

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]

LIST_URL = f"{HOST}/api/v4/leads"


def answer_pages(mock, *pages):
    """Register the list endpoint's pages by their `page` parameter; past the end amoCRM answers 204."""
    def by_page(request):
        import json

        page = int(parse_qs(urlsplit(request.url).query)["page"][0])
        if page > len(pages):
            return 204, {}, ""
        return 200, {"Content-Type": "application/hal+json"}, json.dumps(pages[page - 1])

    mock.add_callback(responses.GET, LIST_URL, callback=by_page)


def since_of(call) -> int:
    return int(parse_qs(urlsplit(call.request.url).query)["filter[updated_at][from]"][0])


def test_it_finds_a_won_deal_whose_webhook_was_lost_and_advances_the_checkpoint(account, amocrm_mock):
    won_lead = make_lead(account, deal_id=9102, utm_source="google", utm_campaign="black-friday")
    open_lead = make_lead(account, deal_id=9101)
    answer_pages(amocrm_mock, load_json("amocrm/api/leads_updated_page_1.json"),
                 load_json("amocrm/api/leads_updated_page_2.json"))
    before = timezone.now()

    assert account_reconcile_deals(account_id=account.pk) == 2

    sale = Sale.objects.get()
    assert (sale.amocrm_deal_id, sale.amount, sale.state, sale.lead) == (9102, Decimal("48000"), "won", won_lead)
    open_lead.refresh_from_db()
    assert open_lead.stage_id == 555  # the lead mirror is caught up too
    account.refresh_from_db()
    assert before <= account.reconciled_until <= timezone.now()
    # First run: a week back; only the two pages were asked for, and no deal was re-read.
    assert abs(since_of(amocrm_mock.calls[0]) - (before - RECONCILE_LOOKBACK).timestamp()) < 5
    assert [parse_qs(urlsplit(c.request.url).query)["page"] for c in amocrm_mock.calls] == [["1"], ["2"]]
    assert all(parse_qs(urlsplit(c.request.url).query)["with"] == ["contacts,loss_reason"] for c in amocrm_mock.calls)


def test_the_next_run_starts_at_the_checkpoint_minus_the_overlap(account, amocrm_mock):
    checkpoint = timezone.now() - timedelta(hours=1)
    Account.objects.filter(pk=account.pk).update(reconciled_until=checkpoint)
    answer_pages(amocrm_mock)

    assert account_reconcile_deals(account_id=account.pk) == 0

    assert since_of(amocrm_mock.calls[0]) == int((checkpoint - RECONCILE_OVERLAP).timestamp())
    account.refresh_from_db()
    assert account.reconciled_until > checkpoint


def test_a_failed_run_leaves_the_checkpoint_where_it_was(account, amocrm_mock):
    checkpoint = timezone.now() - timedelta(hours=1)
    Account.objects.filter(pk=account.pk).update(reconciled_until=checkpoint)
    amocrm_mock.get(LIST_URL, json=load_json("amocrm/api/leads_updated_page_1.json"))
    amocrm_mock.get(LIST_URL, status=503)

    with pytest.raises(TransientError):
        account_reconcile_deals(account_id=account.pk)

    account.refresh_from_db()
    assert account.reconciled_until == checkpoint


def test_it_reverts_a_sale_whose_revert_webhook_was_lost(account, amocrm_mock):
    sale_apply_deal(account=account, deal=api_deal(9102, updated_at=1700001000))
    moved_back = api_deal(9102, status_id=143, updated_at=1700009000)
    answer_pages(amocrm_mock, {"_embedded": {"leads": [moved_back]}, "_links": {}})

    account_reconcile_deals(account_id=account.pk)

    assert Sale.objects.get().state == Sale.State.REVERTED


def test_reconciling_twice_changes_nothing_the_second_time(account, amocrm_mock):
    answer_pages(amocrm_mock, load_json("amocrm/api/leads_updated_page_1.json"),
                 load_json("amocrm/api/leads_updated_page_2.json"))
    account_reconcile_deals(account_id=account.pk)
    first = Sale.objects.values().get()

    account_reconcile_deals(account_id=account.pk)

    assert Sale.objects.values().get() == first


def test_the_task_fans_out_to_connected_accounts_only(account, monkeypatch):
    make_account(host="http://two.sandbox.test", name="Needs reauth", state=Account.State.NEEDS_REAUTH)
    sent = []
    monkeypatch.setattr("sales.tasks.publish", lambda task, *args: sent.append((task.name, args)) or True)

    assert reconcile_all_accounts() == 1
    assert sent == [("sales.tasks.reconcile_account", (account.pk,))]


def test_the_account_task_retries_on_a_transient_error_and_then_succeeds(account, amocrm_mock):
    amocrm_mock.get(LIST_URL, status=502)
    amocrm_mock.get(LIST_URL, status=204)

    result = reconcile_account.apply(args=[account.pk])

    assert result.successful()
    account.refresh_from_db()
    assert account.reconciled_until is not None


def test_a_lasting_transient_error_is_retried_five_times_with_capped_jittered_backoff_then_fails(
        account, amocrm_mock, monkeypatch):
    amocrm_mock.get(LIST_URL, status=502)
    countdowns = []
    real_retry = reconcile_account.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs.get("countdown"))
        return real_retry(*args, **kwargs)

    monkeypatch.setattr(reconcile_account, "retry", recording_retry)

    result = reconcile_account.apply(args=[account.pk])

    assert result.failed() and isinstance(result.result, TransientError)
    assert len(amocrm_mock.calls) == 6  # the first run and five retries
    # 30 s, 60 s, 120 s … each drawn at random below its step (full jitter), never over 30 minutes.
    assert len(countdowns) == 6
    assert all(0 <= countdown <= min(1800, 30 * 2 ** retry) for retry, countdown in enumerate(countdowns))
    assert len(set(countdowns)) > 1


def test_a_permanent_error_is_not_retried(account, amocrm_mock):
    amocrm_mock.get(LIST_URL, status=400, json={"title": "Bad Request", "detail": "filter is wrong"})

    result = reconcile_account.apply(args=[account.pk])

    assert result.failed() and not isinstance(result.result, TransientError)
    assert len(amocrm_mock.calls) == 1
