"""Loss reasons: the reconciliation reads lost deals with `with=loss_reason` and records why each was lost."""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from sales.losses import deal_loss_apply
from sales.models import DealLoss
from sales.reconcile import account_reconcile_deals
from tests.factories import HOST
from tests.sales.builders import AMO_ACCOUNT_ID, api_deal, make_lead

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]


def lost(deal_id: int, reason: tuple[int, str] | None, *, embed: bool = True, updated_at: int = 1700002000) -> dict:
    deal = api_deal(deal_id, status_id=143, price=0, updated_at=updated_at, closed_at=updated_at)
    deal["loss_reason_id"] = reason[0] if reason else None
    if reason and embed:
        deal["_embedded"]["loss_reason"] = [{"id": reason[0], "name": reason[1], "sort": 10}]
    return deal


def test_the_reconciliation_records_lost_deals_with_their_reason(account, amocrm_mock):
    lead = make_lead(account, deal_id=9201, utm_campaign="spring")
    page = {"_embedded": {"leads": [lost(9201, (501, "Дорого")), lost(9202, None), api_deal(9203, status_id=555)]}}

    def by_page(request):
        query = parse_qs(urlsplit(request.url).query)
        assert query["with"] == ["contacts,loss_reason"]
        if query["page"] == ["1"]:
            return 200, {"Content-Type": "application/hal+json"}, json.dumps(page)
        return 204, {}, ""

    amocrm_mock.add_callback(responses.GET, f"{HOST}/api/v4/leads", callback=by_page)

    assert account_reconcile_deals(account_id=account.pk) == 3

    losses = {loss.amocrm_deal_id: loss for loss in DealLoss.objects.all()}
    assert set(losses) == {9201, 9202}
    assert (losses[9201].loss_reason_id, losses[9201].loss_reason, losses[9201].lead) == (501, "Дорого", lead)
    assert (losses[9202].loss_reason_id, losses[9202].loss_reason, losses[9202].lead) == (None, "", None)
    lead.refresh_from_db()
    assert lead.stage_id == 143  # the mirrored stage is kept current too


def test_a_reread_without_the_embedded_reason_keeps_or_finds_its_name(account):
    deal_loss_apply(account=account, deal=lost(1, (501, "Дорого")))
    deal_loss_apply(account=account, deal=lost(1, (501, "Дорого"), embed=False, updated_at=1700003000))
    deal_loss_apply(account=account, deal=lost(2, (501, "Дорого"), embed=False))

    assert dict(DealLoss.objects.values_list("amocrm_deal_id", "loss_reason")) == {1: "Дорого", 2: "Дорого"}


def test_a_deal_reopened_from_lost_loses_its_loss_row(account):
    deal_loss_apply(account=account, deal=lost(1, (501, "Дорого")))
    deal_loss_apply(account=account, deal=api_deal(1, status_id=555, updated_at=1700009000))

    assert not DealLoss.objects.exists()
