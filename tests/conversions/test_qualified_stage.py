"""Optional qualified-stage conversions: leads now in a configured stage go out once per platform, as their own
goal, beside the won sales."""

from datetime import UTC, datetime

import pytest

from conversions.models import ConversionExport
from conversions.services import export_conversions
from tests.fixtures.loader import load_fixture
from tests.sales.builders import make_lead

pytestmark = pytest.mark.django_db
QUALIFIED, OTHER = 1003, 1002


@pytest.fixture
def qualified(account, sales, settings):
    """Stage 1003 counts; one lead moved there on 2026-05-01 11:30 UTC, one in another stage."""
    settings.CONVERSIONS_QUALIFIED_STAGE_IDS = [QUALIFIED]
    moved = datetime(2026, 5, 1, 11, 30, tzinfo=UTC)
    lead = make_lead(account, deal_id=9201, ym_client_id="1700000000555", gclid="G-qualified",
                     stage_id=QUALIFIED, stage_changed_at=moved)
    make_lead(account, deal_id=9202, ym_client_id="1700000000666", stage_id=OTHER, stage_changed_at=moved)
    return lead


def test_a_lead_in_a_qualified_stage_is_a_row_of_its_own_goal_without_a_value(qualified):
    export = export_conversions("yandex")
    assert export.content == load_fixture("conversions/yandex_clientid_with_stage.csv")
    [stage] = [record for record in export.records if record.kind == ConversionExport.Kind.STAGE]
    assert (stage.lead, stage.sale, stage.goal) == (qualified, None, "crm_qualified")


def test_a_qualified_lead_is_sent_once_per_platform(qualified):
    export_conversions("yandex")
    assert export_conversions("yandex").records == []
    google = export_conversions("google")
    assert [record.lead for record in google.records if record.kind == "stage"] == [qualified]
    assert b"G-qualified,crm_qualified,2026-05-01 11:30:00+0000,,\n" in google.content
    assert export_conversions("google").records == []


def test_without_qualified_stages_only_sales_go(qualified, settings):
    settings.CONVERSIONS_QUALIFIED_STAGE_IDS = []
    assert export_conversions("yandex").content == load_fixture("conversions/yandex_clientid.csv")
