"""Won sales with the ids the platforms need, for the conversions tests."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from sales.models import Sale
from tests.sales.builders import make_lead


def won(account, deal_id: int, day: int, amount: str, *, state=Sale.State.WON, lead_ids: dict | None = None) -> Sale:
    """A sale of `account` won on 2026-05-<day> 10:30 UTC, its lead carrying `lead_ids` (None: no lead)."""
    lead = make_lead(account, deal_id=deal_id, **lead_ids) if lead_ids is not None else None
    return Sale.objects.create(account=account, amocrm_deal_id=deal_id, lead=lead, amount=Decimal(amount),
                               currency="RUB", won_at=datetime(2026, 5, day, 10, 30, tzinfo=UTC), state=state)


@pytest.fixture
def sales(account):
    """Five sales: three with ids (both Metrika ids, a ClientID, a yclid + gclid) and three that are never due."""
    return {
        "both": won(account, 9001, 1, "12500", lead_ids={"ym_client_id": "1700000000123456789", "yclid": "Y-1",
                                                         "gclid": "Cj0KCQ-first"}),
        "client_id": won(account, 9002, 2, "990.5", lead_ids={"ym_client_id": "1699999999000000001"}),
        "yclid": won(account, 9003, 3, "3000", lead_ids={"yclid": "5432109876", "gclid": "EAIaIQ-third"}),
        "no_ids": won(account, 9004, 4, "100", lead_ids={}),
        "reverted": won(account, 9005, 4, "100", state=Sale.State.REVERTED,
                        lead_ids={"gclid": "G-reverted", "ym_client_id": "1"}),
        "no_lead": won(account, 9006, 4, "100"),
    }
