"""Webhook health: the periodic GET /api/v4/webhooks, the one automatic re-subscription, the alert when it fails."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.utils import timezone

from amocrm.models import Account, WebhookState
from amocrm.services import WEBHOOK_EVENTS
from amocrm.tasks import check_webhooks
from amocrm.webhooks.health import RESUBSCRIBE_COOLDOWN, account_check_webhook, account_deals_changed_seen
from monitoring import services
from monitoring.models import AlertRule, Incident
from sales.reconcile import account_reconcile_deals
from tests.factories import API
from tests.sales.builders import api_deal

from .conftest import send_queued

pytestmark = pytest.mark.account(name="Shop")

STATUS_TOKEN = "status-token-0123456789abcdef"


def listing(account, **fields) -> dict:
    hook = {"id": 1, "destination": account.webhook_url, "settings": list(WEBHOOK_EVENTS), "disabled": False,
            "sort": 10}
    hook.update(fields)
    return {"_embedded": {"webhooks": [hook, {"id": 2, "destination": "https://other.example/hook",
                                              "settings": ["add_lead"], "disabled": True}]}}


def subscribes(mock) -> list:
    return [call for call in mock.calls if call.request.method == "POST" and call.request.url == f"{API}/webhooks"]


def state_of(account) -> Account:
    return Account.objects.get(pk=account.pk)


def test_an_enabled_subscription_with_our_events_is_ok_and_left_alone(account, amocrm_mock):
    amocrm_mock.get(f"{API}/webhooks", json=listing(account))
    assert account_check_webhook(account_id=account.pk) == "ok"
    assert state_of(account).webhook_state == WebhookState.OK and state_of(account).webhook_checked_at
    assert subscribes(amocrm_mock) == []


@pytest.mark.parametrize("fields", [{"disabled": True}, {"destination": "https://gone.example/"},
                                    {"settings": ["add_lead"]}], ids=["disabled", "missing", "events-missing"])
def test_a_broken_subscription_is_re_created_once_by_itself(account, amocrm_mock, fields):
    amocrm_mock.get(f"{API}/webhooks", json=listing(account, **fields))
    amocrm_mock.post(f"{API}/webhooks", json={"id": 1})
    assert account_check_webhook(account_id=account.pk) == "ok"
    [call] = subscribes(amocrm_mock)
    assert b'"destination"' in call.request.body and account.webhook_key.encode() in call.request.body
    checked = state_of(account)
    assert checked.webhook_state == WebhookState.OK and checked.webhook_resubscribed_at is not None


def test_broken_again_soon_after_the_re_creation_is_left_to_a_person_and_alerted(account, amocrm_mock,
                                                                                email_channel, time_machine):
    amocrm_mock.get(f"{API}/webhooks", json=listing(account, disabled=True))
    amocrm_mock.post(f"{API}/webhooks", json={"id": 1})
    start = timezone.now()
    time_machine.move_to(start, tick=False)
    account_check_webhook(account_id=account.pk)
    time_machine.move_to(start + timedelta(minutes=15), tick=False)
    assert account_check_webhook(account_id=account.pk) == "disabled"
    assert len(subscribes(amocrm_mock)) == 1, "re-created once, not at every check"
    services.alerts_evaluate()
    send_queued()
    [incident] = Incident.objects.filter(resolved_at__isnull=True)
    assert incident.rule.kind == AlertRule.Kind.WEBHOOK_DISABLED and incident.account_id == account.pk
    [message] = mail.outbox
    assert "Webhook disabled or missing in amoCRM" in message.subject and "Subscribe webhook" in message.body
    assert f"/admin/amocrm/account/{account.pk}/change/" in message.body

    time_machine.move_to(start + timedelta(minutes=30), tick=False)
    Account.objects.filter(pk=account.pk).update(webhook_resubscribed_at=start - RESUBSCRIBE_COOLDOWN)
    assert account_check_webhook(account_id=account.pk) == "ok", "after the cool-down it tries once more"
    services.alerts_evaluate()
    send_queued()
    assert mail.outbox[-1].subject.startswith("Fixed: ") and not Incident.objects.filter(resolved_at=None).exists()


def test_a_refused_re_subscription_records_the_state_and_alerts(account, amocrm_mock, email_channel, client,
                                                               settings):
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", status=400, json={"title": "Bad Request", "detail": "destination refused"})
    assert account_check_webhook(account_id=account.pk) == "missing"
    checked = state_of(account)
    assert checked.webhook_state == WebhookState.MISSING and "Add the webhook by hand" in checked.webhook_error
    services.alerts_evaluate()
    send_queued()
    assert len(mail.outbox) == 1 and mail.outbox[0].subject.startswith("Problem: ")

    settings.METRICS_TOKEN = STATUS_TOKEN
    metrics = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {STATUS_TOKEN}").content.decode()
    assert (f'amocrm_webhook_subscription_state{{account="{account.pk}",account_name="Shop",state="missing"}} 1.0'
            in metrics)
    settings.STATUS_TOKEN = STATUS_TOKEN
    entry = client.get("/api/status/", HTTP_AUTHORIZATION=f"Bearer {STATUS_TOKEN}").json()["accounts"][0]
    assert entry["webhook"]["state"] == "missing" and entry["webhook"]["checked_at"]
    assert account.webhook_key not in str(entry)


def test_a_failed_listing_changes_no_state(account, amocrm_mock):
    Account.objects.filter(pk=account.pk).update(webhook_state=WebhookState.OK)
    amocrm_mock.get(f"{API}/webhooks", status=503, body=b"")
    assert account_check_webhook(account_id=account.pk) == "unknown"
    assert state_of(account).webhook_state == WebhookState.OK


def test_the_beat_task_checks_connected_accounts_only(account, amocrm_mock):
    Account.objects.create(name="Off", host="https://off.amocrm.ru", client_id="x", state=Account.State.DISABLED)
    amocrm_mock.get(f"{API}/webhooks", json=listing(account))
    assert check_webhooks() == {account.pk: "ok"}
    from config.celery import app

    assert app.conf.beat_schedule["amocrm-check-webhooks"]["task"] == "amocrm.tasks.check_webhooks"


def test_reconciliation_keeps_the_latest_deal_change_it_saw(account):
    now = timezone.now()
    account_deals_changed_seen(account_id=account.pk, changed_at=now)
    account_deals_changed_seen(account_id=account.pk, changed_at=now - timedelta(hours=1))
    account_deals_changed_seen(account_id=account.pk, changed_at=None)
    assert state_of(account).deals_changed_seen_at == now


def test_a_reconciliation_run_records_the_latest_deal_change_it_listed(account, amocrm_mock):
    from tests.sales.test_reconciliation import answer_pages

    older, newer = api_deal(9101, status_id=555, updated_at=1700001000), api_deal(9102, updated_at=1700009000)
    answer_pages(amocrm_mock, {"_embedded": {"leads": [newer, older]}})
    account_reconcile_deals(account_id=account.pk)
    assert state_of(account).deals_changed_seen_at == datetime.fromtimestamp(1700009000, tz=UTC)


def test_the_account_page_shows_a_subscription_the_check_found_disabled(account, admin_client):
    Account.objects.filter(pk=account.pk).update(webhook_state=WebhookState.DISABLED, webhook_checked_at=timezone.now(),
                                                 webhook_subscribed_at=timezone.now() - timedelta(days=3))
    page = admin_client.get(f"/admin/amocrm/account/{account.pk}/change/").content.decode()
    assert "Disabled by amoCRM (" in page
