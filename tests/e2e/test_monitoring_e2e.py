"""End to end: monitoring against the sandbox, gunicorn and a real Celery worker.

- /metrics on gunicorn shows what the web processes and the worker's pool processes counted;
- the webhook health check re-subscribes a webhook the sandbox disabled;
- the issue's "done when": break the integration four ways (revoke the token, disable the webhook for
  good, stop amoCRM answering, send a lead amoCRM rejects); each brings one clear message in Russian
  with the admin page that fixes it, then one saying it is fixed. The alert evaluation runs in this
  process with the clock moved forward where a rule waits for time to pass, and the messages are sent
  here too (locmem email), not by the worker.
"""

import re
from datetime import timedelta
from importlib import import_module

import pytest
import requests
from django.apps import apps as django_apps
from django.core import mail
from django.utils import timezone

from amocrm import services as amocrm_services
from amocrm.errors import AmoCRMError
from amocrm.models import Account, WebhookState
from amocrm.tasks import check_webhooks
from amocrm_sandbox.harness import wait_until
from leads.actions import lead_retry
from leads.models import Lead, LeadSource
from monitoring import services
from monitoring.models import AlertChannel, AlertRule, Notification
from sales.models import Sale

pytestmark = pytest.mark.django_db(transaction=True)

WON = 142


def scrape(site: str) -> str:
    answer = requests.get(f"{site}/metrics", timeout=10)  # loopback: allowed with DEBUG (METRICS_ALLOWED_IPS)
    assert answer.status_code == 200, answer.text
    return answer.text


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def post_lead(site: str, key: str, phone: str) -> requests.Response:
    return requests.post(f"{site}/api/leads/", timeout=10, json={"source": key, "name": "Анна", "phone": phone})


def sent_lead(site: str, key: str, phone: str) -> Lead:
    assert post_lead(site, key, phone).status_code == 201
    wait_until(lambda: Lead.objects.filter(phone=phone, status=Lead.Status.SENT).exists(), timeout=60,
               what=f"the lead {phone} pushed")
    return Lead.objects.get(phone=phone)


def test_gunicorn_metrics_show_what_the_web_and_the_worker_counted(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    connected = connect_account(0)
    key = connected["lead_source_key"]
    before = scrape(live_server_url)
    control.expire_tokens()  # the worker's first call gets a 401 and refreshes

    assert post_lead(live_server_url, key, "not a phone").status_code == 400
    lead = sent_lead(live_server_url, key, "+79161230001")
    control.reset(parts=["deliveries"])
    control.move_deal(lead.amocrm_deal_id, status_id=WON, price=5000)
    wait_until(lambda: Sale.objects.filter(amocrm_deal_id=lead.amocrm_deal_id, state=Sale.State.WON).exists(),
               timeout=60, what="the webhook processed into a sale")
    after = scrape(live_server_url)

    def moved(name: str) -> float:
        return sample(after, name) - sample(before, name)

    # Counted by gunicorn's workers:
    assert moved('amocrm_leads_intake_total{outcome="accepted",reason="new"}') == 1
    assert moved('amocrm_leads_intake_total{outcome="refused",reason="invalid"}') == 1
    assert moved('amocrm_webhook_deliveries_total{status="200"}') >= 1
    # Counted by the worker's pool processes:
    assert moved('amocrm_leads_pushed_total{outcome="sent"}') == 1
    assert moved("amocrm_lead_push_latency_seconds_count") == 1
    assert moved('amocrm_requests_total{operation="leads.complex",status="200"}') == 1
    assert moved('amocrm_request_duration_seconds_count{operation="leads.complex"}') == 1
    assert moved("amocrm_rate_limiter_wait_seconds_count") >= 2
    assert moved('amocrm_token_refreshes_total{outcome="ok"}') == 1
    assert moved('amocrm_webhook_events_total{state="processed"}') >= 1
    assert moved('amocrm_sales_total{currency="RUB",event="won"}') == 1
    assert moved('amocrm_sales_revenue_total{currency="RUB",event="won"}') == 5000
    # Read at scrape time:
    account = connected["account"]
    assert re.search(rf'^amocrm_token_expiry_seconds{{account="{account}",[^}}]*}} \d', after, flags=re.M)
    assert re.search(rf'^amocrm_leads_oldest_pending_seconds{{account="{account}",[^}}]*}} 0\.0', after, flags=re.M)
    assert re.search(rf'^amocrm_account_state{{account="{account}",[^}}]*state="connected"}} 1\.0', after, flags=re.M)


def test_a_webhook_the_sandbox_disabled_is_re_subscribed_by_the_check(
        sandbox, control, connect_account, live_server_url, celery_worker_proc):
    connected = connect_account(0)
    account = Account.objects.get(pk=connected["account"])
    ours = [hook for hook in control.webhooks() if hook["destination"] == account.webhook_url]
    assert [hook["disabled"] for hook in ours] == [False]
    assert control.disable_webhooks(account.webhook_url) == 1

    check_webhooks.delay()  # what beat does every 15 minutes, run by the worker
    wait_until(lambda: Account.objects.filter(pk=account.pk, webhook_resubscribed_at__isnull=False).exists(),
               timeout=60, what="the worker's webhook check")
    account.refresh_from_db()
    assert account.webhook_state == WebhookState.OK
    assert [hook["disabled"] for hook in control.webhooks() if hook["destination"] == account.webhook_url] == [False]

    lead = sent_lead(live_server_url, connected["lead_source_key"], "+79161230002")
    control.reset(parts=["deliveries"])
    control.move_deal(lead.amocrm_deal_id, status_id=WON, price=100)
    assert [delivery["ok"] for delivery in control.deliveries(wait=True)] == [True], "deliveries arrive again"


class Clock:
    """Evaluates the rules and sends their messages here, each evaluation a little later than the one before."""

    def __init__(self):
        self.at = timezone.now()

    def evaluate(self) -> None:
        self.at = max(self.at + timedelta(seconds=1), timezone.now())
        services.alerts_evaluate(now=self.at)
        for pk in Notification.objects.filter(state=Notification.State.QUEUED).values_list("pk", flat=True):
            services.notification_send(notification_id=pk)


def test_each_breakage_brings_one_clear_message_and_one_when_it_is_fixed(
        sandbox, control, connect_account, live_server_url, celery_worker_proc, monkeypatch):
    # The messages are sent by this process (locmem email), not queued for the worker.
    monkeypatch.setattr(services, "enqueue_on_commit", lambda *args, **kwargs: None)
    # The rules with their defaults, as the data migration made them (an earlier test's flush removed them).
    import_module("monitoring.migrations.0002_default_rules").create_rules(django_apps, None)
    assert AlertRule.objects.filter(enabled=True).count() == len(AlertRule.Kind) - 1
    connected = connect_account(0)
    account = Account.objects.get(pk=connected["account"])
    AlertChannel.objects.create(name="Дежурные", kind=AlertChannel.Kind.EMAIL, language="ru",
                                email_recipients="ops@example.com")
    clock = Clock()
    clock.evaluate()
    assert mail.outbox == [], "nothing is broken yet"

    # 1. The token is revoked in amoCRM: the next call finds out.
    control.reset(parts=["tokens"])
    with pytest.raises(AmoCRMError):
        amocrm_services.account_test_connection(account=Account.objects.get(pk=account.pk))
    assert Account.objects.get(pk=account.pk).state == Account.State.NEEDS_REAUTH
    clock.evaluate()
    clock.evaluate()
    connect_account(0)  # the operator connects again
    clock.evaluate()

    # 2. amoCRM disables the webhook, the check re-creates it; amoCRM disables it again: left to a person.
    for _ in range(2):
        control.disable_webhooks(account.webhook_url)
        check_webhooks()
    assert Account.objects.get(pk=account.pk).webhook_state == WebhookState.DISABLED
    clock.evaluate()
    clock.evaluate()
    assert amocrm_services.account_subscribe_webhook(account=Account.objects.get(pk=account.pk))  # "Subscribe"
    clock.evaluate()

    # 3. amoCRM stops answering. The rule waits for 15 minutes of failures: fast-forwarded by dating the
    # last success 20 minutes back, as if the calls had been failing since then.
    control.set_faults(error_rate=1.0, error_status=503, include_oauth=True)
    for _ in range(3):
        with pytest.raises(AmoCRMError):
            amocrm_services.account_test_connection(account=Account.objects.get(pk=account.pk))
    twenty_minutes_ago = timezone.now() - timedelta(minutes=20)
    Account.objects.filter(pk=account.pk).update(last_success_at=twenty_minutes_ago, connected_at=twenty_minutes_ago)
    clock.evaluate()
    clock.evaluate()
    control.clear_faults()
    amocrm_services.account_test_connection(account=Account.objects.get(pk=account.pk))
    clock.evaluate()

    # 4. A lead amoCRM rejects (its source names a pipeline amoCRM does not have).
    LeadSource.objects.filter(public_key=connected["lead_source_key"]).update(pipeline_id=424242)
    assert post_lead(live_server_url, connected["lead_source_key"], "+79161230003").status_code == 201
    wait_until(lambda: Lead.objects.filter(phone="+79161230003", status=Lead.Status.FAILED).exists(), timeout=60,
               what="the rejected lead to fail")
    clock.evaluate()
    clock.evaluate()
    LeadSource.objects.filter(public_key=connected["lead_source_key"]).update(pipeline_id=None)
    lead_retry(lead_ids=list(Lead.objects.filter(status=Lead.Status.FAILED).values_list("pk", flat=True)))
    wait_until(lambda: Lead.objects.filter(phone="+79161230003", status=Lead.Status.SENT).exists(), timeout=60,
               what="the retried lead to be sent")
    clock.evaluate()

    subjects = [message.subject for message in mail.outbox]
    expected = [
        ("Аккаунт требует повторного подключения", f"/admin/amocrm/account/{account.pk}/change/"),
        ("Вебхук в amoCRM отключён или отсутствует", f"/admin/amocrm/account/{account.pk}/change/"),
        ("Запросы к amoCRM не проходят", f"/admin/amocrm/account/{account.pk}/change/"),
        ("Заявки не отправляются", f"/admin/leads/lead/?status__exact=failed&account__id__exact={account.pk}"),
    ]
    assert len(subjects) == 2 * len(expected), subjects
    for index, (rule, path) in enumerate(expected):
        problem, fixed = mail.outbox[2 * index], mail.outbox[2 * index + 1]
        assert problem.subject == f"Проблема: {rule} — {account.name}", subjects
        assert "Что сломалось:" in problem.body and "Что сделать:" in problem.body, problem.body
        assert f"Где исправить: {live_server_url}{path}" in problem.body, problem.body
        assert fixed.subject == f"Исправлено: {rule} — {account.name}", subjects
        assert problem.to == fixed.to == ["ops@example.com"]
