"""Reconciliation never gets stuck on one poison deal: it fails alone, visibly, and the checkpoint moves on."""

from datetime import timedelta

import pytest
import responses
from django.utils import timezone

from amocrm.models import Account, SyncLog
from sales import services
from sales.models import Sale
from sales.reconcile import account_reconcile_deals
from tests.factories import HOST
from tests.sales.builders import AMO_ACCOUNT_ID, api_deal

pytestmark = [pytest.mark.django_db, pytest.mark.account(amocrm_account_id=AMO_ACCOUNT_ID)]


def test_a_deal_that_cannot_be_applied_fails_alone_and_the_checkpoint_moves_on(account, monkeypatch):
    checkpoint = timezone.now() - timedelta(hours=1)
    Account.objects.filter(pk=account.pk).update(reconciled_until=checkpoint)
    real = services.sale_apply_deal

    def poisoned(*, account, deal):
        if deal["id"] == 9102:
            raise KeyError("poison")
        return real(account=account, deal=deal)

    monkeypatch.setattr(services, "sale_apply_deal", poisoned)
    page = {"_embedded": {"leads": [api_deal(9101), api_deal(9102), api_deal(9103)]}, "_links": {}}

    with responses.RequestsMock() as amo:
        amo.get(f"{HOST}/api/v4/leads", json=page)
        assert account_reconcile_deals(account_id=account.pk) == 3

    assert set(Sale.objects.values_list("amocrm_deal_id", flat=True)) == {9101, 9103}
    account.refresh_from_db()
    assert account.reconciled_until > checkpoint
    row = SyncLog.objects.get(status=SyncLog.Status.ERROR)
    assert (row.operation, row.direction, row.context["deal"]) == ("reconcile.deal", SyncLog.Direction.INBOUND, 9102)
    assert "9102" in row.error and "poison" not in row.error and "KeyError" not in row.error


def test_a_deal_the_database_refuses_fails_alone(account):
    page = {"_embedded": {"leads": [api_deal(9101, price=10 ** 20), api_deal(9102)]}, "_links": {}}

    with responses.RequestsMock() as amo:
        amo.get(f"{HOST}/api/v4/leads", json=page)
        assert account_reconcile_deals(account_id=account.pk) == 2

    assert list(Sale.objects.values_list("amocrm_deal_id", flat=True)) == [9102]
    assert SyncLog.objects.filter(status=SyncLog.Status.ERROR, context__deal=9101).exists()
