"""End to end: 50 website leads become sandbox deals; managers win, revert, re-win and delete them; sales follow.

Everything real except amoCRM: leads posted to gunicorn, pushed by a Celery worker to the sandbox,
the sandbox's own webhooks (concurrent, unordered, some reduced to ids) back into gunicorn, a
worker processing them with API re-reads under the 7 requests/second limit, PostgreSQL and Redis.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
import requests
from django.utils import timezone

from amocrm.models import Account, WebhookEvent
from amocrm_sandbox.control import SandboxControl
from amocrm_sandbox.harness import wait_until
from leads.models import Lead
from sales.models import DealLoss, Sale
from sales.reconcile import account_reconcile_deals
from sales.report import sales_report

pytestmark = pytest.mark.django_db(transaction=True)

DEALS = 50
CAMPAIGNS = ["spring", "summer", "autumn", "winter", "brand"]
WON, LOST = 142, 143

# What managers do to the deal of lead i, in two phases with processing settled in between (a
# won deal is usually reverted or deleted later, not within the same second). Steps within a
# phase run back to back, in the same second: their webhooks carry equal timestamps.
# "won"/"won-reduced" move to 142 at a price, "back" to the deal's first stage, "lost" to 143.
FIRST_PHASE = {
    **{i: [("won", 1000 * (i + 1))] for i in range(0, 20)},
    **{i: [("won-reduced", 1000 * (i + 1))] for i in range(20, 28)},
    **{i: [("won", 1000 * (i + 1))] for i in range(28, 36)},
    **{i: [("won", 500 * (i + 1))] for i in range(36, 47)},
    **{i: [("won", 1000 * (i + 1)), ("lost", None)] for i in range(47, 49)},
    49: [("lost", None)],
}
SECOND_PHASE = {
    **{i: [("back", None)] for i in range(28, 36)},
    **{i: [("back", None), ("won", 1000 * (i + 1))] for i in range(36, 44)},
    44: [("delete", None)], 45: [("delete", None)], 46: [("delete", None), ("restore", None)],
}
# The sale each deal must end with: (state, amount), or None for no sale at all.
EXPECTED = {
    **{i: ("won", Decimal(1000 * (i + 1))) for i in range(0, 28)},
    **{i: ("reverted", Decimal(1000 * (i + 1))) for i in range(28, 36)},
    **{i: ("won", Decimal(1000 * (i + 1))) for i in range(36, 44)},
    44: ("deleted", Decimal(22500)), 45: ("deleted", Decimal(23000)), 46: ("won", Decimal(23500)),
    49: None,
}
# Won and lost again within a second: whether a re-read still saw the win is a matter of timing,
# so either no sale or a reverted one — never a won one.
EITHER_NONE_OR_REVERTED = {47, 48}
RESENT = range(0, 5)  # amoCRM resends these deliveries: the same bytes again


def post_leads(site: str, source_key: str) -> None:
    session = requests.Session()
    for i in range(DEALS):
        answer = session.post(f"{site}/api/leads/", timeout=10, json={
            "source": source_key, "name": f"Client {i}", "phone": f"+7916100{i:04d}",
            "utm_source": "google" if i % 2 else "yandex", "utm_campaign": CAMPAIGNS[i % len(CAMPAIGNS)],
            "message": f"Lead {i} from the e2e test",
        })
        assert answer.status_code == 201, answer.text


def settled(account: Account, expected_events: int) -> bool:
    events = WebhookEvent.objects.filter(account=account)
    return (events.count() >= expected_events
            and not events.filter(state=WebhookEvent.State.RECEIVED).exists())


def test_deals_won_reverted_rewon_and_deleted_in_amocrm_become_the_right_sales(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    connected = connect_account(0)
    account = Account.objects.get(pk=connected["account"])
    control = SandboxControl(sandbox.accounts[0].origin)
    loss_reason = sandbox.accounts[0].catalog.loss_reasons[0]  # "Дорого": managers give it when a deal is lost

    # 1. Fifty visitors submit the form; the worker pushes them; each lead learns its deal id.
    post_leads(live_server_url, connected["lead_source_key"])
    wait_until(lambda: Lead.objects.filter(account=account, status=Lead.Status.SENT,
                                           amocrm_deal_id__isnull=False).count() == DEALS,
               timeout=180, interval=0.5, what="all leads pushed to the sandbox")
    leads = {lead.phone: lead for lead in Lead.objects.filter(account=account)}
    lead_of = {i: leads[f"+7916100{i:04d}"] for i in range(DEALS)}
    deal_of = {i: lead.amocrm_deal_id for i, lead in lead_of.items()}
    first_stage = {deal["id"]: (deal["pipeline_id"], deal["status_id"]) for deal in control.leads()}
    control.reset(parts=["deliveries"])

    # 2. Managers move the deals; amoCRM resends a few deliveries; later they revert, re-win, delete.
    def act(i: int, action: str, price: int | None) -> None:
        deal_id = deal_of[i]
        pipeline_id, status_id = first_stage[deal_id]
        if action in ("won", "won-reduced"):
            control.move_deal(deal_id, status_id=WON, price=price, reduced=action == "won-reduced")
        elif action == "back":
            control.move_deal(deal_id, status_id=status_id, pipeline_id=pipeline_id)
        elif action == "lost":
            control.move_deal(deal_id, status_id=LOST, loss_reason_id=loss_reason.id)
        elif action == "delete":
            control.delete_deal(deal_id)
        else:
            control.restore_deal(deal_id)

    sent = 0
    for phase, plan in (("first", FIRST_PHASE), ("second", SECOND_PHASE)):
        control.reset(parts=["deliveries"])
        for i, steps in plan.items():
            for action, price in steps:
                act(i, action, price)
        deliveries = control.deliveries(wait=True)
        assert deliveries and all(delivery["ok"] for delivery in deliveries), deliveries
        sent += len(deliveries)
        if phase == "first":
            for i in RESENT:  # the same bytes again, as amoCRM does when it thinks a delivery failed
                body = next(d["body"] for d in deliveries if f"%5Bid%5D={deal_of[i]}&" in d["body"])
                assert control.deliver_raw(connected["webhook_url"], body)["ok"]
                sent += 1
        wait_until(lambda expected=sent: settled(account, expected), timeout=120, interval=0.5,
                   what=f"the {phase} phase's deliveries processed")

    # The right sales: one per won deal, with the amount the API holds, in the right state.
    sales = {sale.amocrm_deal_id: sale for sale in Sale.objects.filter(account=account).select_related("lead")}
    actual = {i: (sales[deal_of[i]].state, sales[deal_of[i]].amount) if deal_of[i] in sales else None
              for i in range(DEALS)}
    for i in EITHER_NONE_OR_REVERTED:
        assert actual.pop(i) in (None, ("reverted", Decimal(1000 * (i + 1))))
    assert actual == EXPECTED
    for i, sale in ((i, sales.get(deal_of[i])) for i in range(DEALS)):
        if sale is not None:
            assert (sale.lead_id, sale.attribution) == (lead_of[i].pk, Sale.Attribution.DEAL)
            assert sale.currency == account.currency and sale.won_at is not None

    # Each lead mirrors where its (live) deal is now.
    final = {deal["id"]: deal for deal in control.leads()}
    for i, lead in lead_of.items():
        lead.refresh_from_db()
        deal = final[deal_of[i]]
        if not deal.get("is_deleted"):
            assert (lead.pipeline_id, lead.stage_id) == (deal["pipeline_id"], deal["status_id"]), i

    # Revenue by campaign is what the managers won, attributed through the leads' UTMs.
    today = timezone.localdate()
    report = sales_report(date_from=today - timedelta(days=1), date_to=today + timedelta(days=1),
                          group_by="utm_campaign", account_id=account.pk)
    revenue = {row.label: row.revenue_in(account.currency) for row in report.rows}
    expected_revenue = {campaign: Decimal(0) for campaign in CAMPAIGNS}
    for i, outcome in EXPECTED.items():  # the undecided pair is never won, so never revenue
        if outcome and outcome[0] == "won":
            expected_revenue[CAMPAIGNS[i % len(CAMPAIGNS)]] += outcome[1]
    assert revenue == expected_revenue
    assert {row.label: row.leads for row in report.rows} == {campaign: 10 for campaign in CAMPAIGNS}

    # Nothing failed, resends collapsed, the limit was never exceeded.
    events = WebhookEvent.objects.filter(account=account)
    assert not events.filter(state__in=[WebhookEvent.State.FAILED, WebhookEvent.State.REJECTED]).exists()
    assert events.filter(state=WebhookEvent.State.DUPLICATE).count() <= len(RESENT)
    stats = control.stats()
    assert stats["responses_429"] == 0 and stats["responses_403"] == 0

    # Reconciliation over the same deals agrees with what the webhooks built.
    before = {sale.amocrm_deal_id: (sale.state, sale.amount) for sale in Sale.objects.filter(account=account)}
    Account.objects.filter(pk=account.pk).update(reconciled_until=None)
    assert account_reconcile_deals(account_id=account.pk) >= DEALS - 2  # deleted deals are not listed
    after = {sale.amocrm_deal_id: (sale.state, sale.amount) for sale in Sale.objects.filter(account=account)}
    assert after == before
    # …and it read why the lost deals were lost (with=loss_reason), for the report.
    lost_deals = {deal_of[i] for i in (47, 48, 49)}
    assert set(DealLoss.objects.filter(account=account).values_list("amocrm_deal_id", "loss_reason")) == {
        (deal_id, loss_reason.name) for deal_id in lost_deals}
