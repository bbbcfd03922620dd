"""The sale logic on deals as the API returns them: upsert, revert, delete, attribution, races."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import responses
from django.db import connection

from leads.mirror import lead_mirror_deal
from sales.models import Sale
from sales.services import deal_apply, deals_locked, deals_reread, sale_apply_deal, sale_mark_deleted
from tests.factories import HOST, make_account
from tests.sales.builders import AMO_ACCOUNT_ID, api_deal, make_lead

pytestmark = pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)


def at(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def test_a_deal_that_is_not_won_creates_no_sale(account):
    assert sale_apply_deal(account=account, deal=api_deal(9001, status_id=143)) is None
    assert not Sale.objects.exists()


def test_a_won_deal_without_a_price_is_a_sale_of_zero(account):
    deal = api_deal(9001)
    deal["price"] = None

    assert sale_apply_deal(account=account, deal=deal).amount == Decimal(0)


def test_a_deal_listed_as_deleted_deletes_its_sale(account):
    sale_apply_deal(account=account, deal=api_deal(9001, updated_at=1700001000))
    deal = api_deal(9001, updated_at=1700002000)
    deal["is_deleted"] = True

    assert sale_apply_deal(account=account, deal=deal).state == Sale.State.DELETED


def test_marking_a_deal_without_a_sale_deleted_does_nothing(account):
    assert sale_mark_deleted(account=account, deal_id=9001) is None


def test_an_unchanged_deal_writes_nothing(account):
    sale = sale_apply_deal(account=account, deal=api_deal(9001))

    again = sale_apply_deal(account=account, deal=api_deal(9001))

    assert again.updated_at == sale.updated_at


def test_the_currency_is_the_accounts(account):
    account.currency = "USD"
    account.save()

    assert sale_apply_deal(account=account, deal=api_deal(9001)).currency == "USD"


def test_a_lead_that_learns_its_deal_id_later_takes_over_the_attribution(account):
    by_contact = make_lead(account, contact_id=7001, created_at=at(1699000000))
    sale = sale_apply_deal(account=account, deal=api_deal(9001, updated_at=1700001000))
    assert (sale.lead, sale.attribution) == (by_contact, Sale.Attribution.CONTACT)

    own = make_lead(account, deal_id=9001, created_at=at(1699500000))
    sale = sale_apply_deal(account=account, deal=api_deal(9001, updated_at=1700001500))

    assert (sale.lead, sale.attribution) == (own, Sale.Attribution.DEAL)


def test_leads_of_another_account_are_never_attributed(account):
    other = make_account(host="http://other.sandbox.test", amocrm_account_id=999, name="Other")
    make_lead(other, deal_id=9001, contact_id=7001)

    sale = sale_apply_deal(account=account, deal=api_deal(9001))

    assert sale.lead is None


def test_the_lead_mirror_refuses_older_states(account):
    lead = make_lead(account, deal_id=9001)
    assert lead_mirror_deal(account=account, deal_id=9001, stage_id=600, modified_at=at(1700000200)) == 1
    assert lead_mirror_deal(account=account, deal_id=9001, stage_id=500, modified_at=at(1700000100)) == 0
    assert lead_mirror_deal(account=account, deal_id=9001, stage_id=601, modified_at=at(1700000200)) == 1

    lead.refresh_from_db()
    assert (lead.stage_id, lead.stage_changed_at) == (601, at(1700000200))


def test_applying_a_deal_moves_the_lead_and_the_sale_together(account):
    lead = make_lead(account, deal_id=9001)

    deal_apply(account=account, deal=api_deal(9001, pipeline_id=778, responsible_user_id=77))

    lead.refresh_from_db()
    assert (lead.pipeline_id, lead.stage_id, lead.responsible_user_id) == (778, 142, 77)
    assert Sale.objects.get().lead == lead


@pytest.mark.django_db(transaction=True)
def test_concurrent_syncs_of_one_deal_make_exactly_one_sale():
    account = make_account(amocrm_account_id=AMO_ACCOUNT_ID)
    workers = 8
    barrier = threading.Barrier(workers)
    errors = []

    def sync(index: int):
        try:
            barrier.wait()
            sale_apply_deal(account=account, deal=api_deal(9001, price=1000 + index, updated_at=1700001000))
        except Exception as exc:  # collected, so the test fails with the error instead of hanging
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sync, args=(index,)) for index in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert errors == []
    assert Sale.objects.filter(account=account, amocrm_deal_id=9001).count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_second_worker_waits_while_the_first_re_reads_and_applies_the_same_deal():
    account = make_account(amocrm_account_id=AMO_ACCOUNT_ID)
    first_holds, release = threading.Event(), threading.Event()
    second_done = threading.Event()

    def first():
        try:
            with deals_locked(account, [9001]):
                first_holds.set()
                release.wait(10)
        finally:
            connection.close()

    def second():
        try:
            with responses.RequestsMock() as amo:
                amo.get(f"{HOST}/api/v4/leads/9001", json=api_deal(9001))
                deals_reread(account=account, deal_ids=[9001])
            second_done.set()
        finally:
            connection.close()

    holder = threading.Thread(target=first)
    holder.start()
    assert first_holds.wait(10)
    waiter = threading.Thread(target=second)
    waiter.start()

    assert not second_done.wait(0.5)  # blocked on the deal's lock
    release.set()
    assert second_done.wait(10)
    holder.join(10)
    waiter.join(10)
    assert Sale.objects.get().state == Sale.State.WON
