"""GET /metrics: who may scrape it, that every family is there, and that the recording functions move them."""

import re

import pytest
from django.test import override_settings
from django.utils import timezone

from amocrm.models import Account, WebhookEvent
from leads.models import Lead
from monitoring import metrics

pytestmark = pytest.mark.account(name="Shop")  # the account name the messages and pages show

URL = "/metrics"
TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def metrics_auth(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16", "192.0.2.7"]
    settings.TRUSTED_PROXY_COUNT = 0


def scrape(client) -> str:
    response = client.get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return response.content.decode()


def value(text: str, sample: str) -> float:
    """The value of one sample line (`name{labels}`), 0 when absent."""
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.django_db
def test_a_scrape_without_credentials_from_elsewhere_is_refused(client):
    response = client.get(URL, REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert b"amocrm_" not in response.content


@pytest.mark.django_db
def test_a_wrong_token_is_refused(client):
    response = client.get(URL, HTTP_AUTHORIZATION="Bearer metrics-token-0123456789abcdeX", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("address", ["10.1.200.3", "192.0.2.7"])
def test_an_allowed_address_needs_no_token(client, address):
    assert client.get(URL, REMOTE_ADDR=address).status_code == 200


@pytest.mark.django_db
def test_a_forged_forwarded_for_does_not_pass_the_allow_list(client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    response = client.get(URL, REMOTE_ADDR="172.17.0.1", HTTP_X_FORWARDED_FOR="10.1.0.5, 203.0.113.9")
    assert response.status_code == 401


@pytest.mark.django_db
def test_without_token_or_list_nobody_gets_in(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert client.get(URL, HTTP_AUTHORIZATION="Bearer ", REMOTE_ADDR="127.0.0.1").status_code == 401


def test_every_family_of_the_issue_is_exposed(client, account, source):
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.PENDING)
    # Families whose labels are open (operation, currency) appear with their first sample.
    metrics.amocrm_request("account.get", 200, 0.1)
    metrics.sale_recorded(1, "RUB")
    text = scrape(client)
    # Merged from the processes' files, a counter's family carries its _total (prometheus-client's multiprocess mode).
    families = {name.removesuffix("_total") for name in re.findall(r"^# TYPE (\S+) ", text, flags=re.M)}
    assert {
        "amocrm_leads_intake", "amocrm_leads", "amocrm_leads_pushed", "amocrm_lead_push_latency_seconds",
        "amocrm_requests", "amocrm_request_duration_seconds", "amocrm_rate_limiter_wait_seconds",
        "amocrm_rate_limited", "amocrm_token_expiry_seconds", "amocrm_token_refreshes", "amocrm_webhook_deliveries",
        "amocrm_webhook_events", "amocrm_webhook_events_unprocessed", "amocrm_webhook_processing_lag_seconds",
        "amocrm_leads_oldest_pending_seconds", "amocrm_sales", "amocrm_sales_revenue", "amocrm_celery_queue_length",
        "amocrm_account_state", "amocrm_alert_incidents_open", "amocrm_alert_notifications", "amocrm_build_info",
        "amocrm_webhook_subscription_state",
    } <= families, families
    assert text.count("# TYPE amocrm_requests_total counter") == 1, "one family however many processes wrote it"


@pytest.mark.django_db
def test_the_recording_functions_move_their_families(client):
    before = scrape(client)
    metrics.lead_accepted("new")
    metrics.lead_refused("invalid")
    metrics.lead_pushed("sent", 3)
    metrics.push_latency(4.2)
    metrics.amocrm_request("leads.complex", 200, 0.3)
    metrics.amocrm_request("contacts.search", 429, 0.1)
    metrics.amocrm_request("leads.complex", None, 30.0)
    metrics.limiter_wait(0.2)
    metrics.token_refresh("ok")
    metrics.webhook_delivery(200)
    metrics.webhook_event("processed")
    # XTS (ISO 4217's code for testing): no other test's sales share these series, whose float sums would
    # otherwise swallow a small amount next to a huge one recorded earlier in the run.
    metrics.sale_recorded(15000, "XTS")
    metrics.sale_reverted(500, "XTS")
    after = scrape(client)

    def moved(sample: str) -> float:
        return value(after, sample) - value(before, sample)

    assert moved('amocrm_leads_intake_total{outcome="accepted",reason="new"}') == 1
    assert moved('amocrm_leads_intake_total{outcome="refused",reason="invalid"}') == 1
    assert moved('amocrm_leads_pushed_total{outcome="sent"}') == 3
    assert moved("amocrm_lead_push_latency_seconds_count") == 1
    assert moved('amocrm_lead_push_latency_seconds_bucket{le="5.0"}') == 1
    assert moved('amocrm_requests_total{operation="leads.complex",status="200"}') == 1
    assert moved('amocrm_requests_total{operation="leads.complex",status="error"}') == 1
    assert moved('amocrm_request_duration_seconds_count{operation="leads.complex"}') == 2
    assert moved("amocrm_rate_limited_total") == 1
    assert moved("amocrm_rate_limiter_wait_seconds_count") == 1
    assert moved('amocrm_token_refreshes_total{outcome="ok"}') == 1
    assert moved('amocrm_webhook_deliveries_total{status="200"}') == 1
    assert moved('amocrm_webhook_events_total{state="processed"}') == 1
    assert moved('amocrm_sales_total{currency="XTS",event="won"}') == 1
    assert moved('amocrm_sales_revenue_total{currency="XTS",event="won"}') == 15000
    assert moved('amocrm_sales_revenue_total{currency="XTS",event="reverted"}') == 500


def test_a_recording_function_never_raises(caplog):
    metrics.push_latency("not a number")  # a bug in a caller must not break the push it measures
    assert "metric not recorded" in caplog.text


def test_the_state_collectors_report_what_the_database_holds(client, account, source, settings):
    now = timezone.now()
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.PENDING,
                        created_at=now - timezone.timedelta(minutes=5))
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.FAILED)
    WebhookEvent.objects.create(account=account, body=b"x", body_sha256="0" * 64,
                                received_at=now - timezone.timedelta(seconds=90))
    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    text = scrape(client)
    labels = f'account="{account.pk}",account_name="Shop"'
    assert value(text, f'amocrm_leads{{{labels},status="pending"}}') == 1
    assert value(text, f'amocrm_leads{{{labels},status="failed"}}') == 1
    assert value(text, f"amocrm_leads_oldest_pending_seconds{{{labels}}}") >= 300
    assert 0 < value(text, f'amocrm_token_expiry_seconds{{{labels},long_lived="false"}}') <= 86400
    assert value(text, f'amocrm_account_state{{{labels},state="needs_reauth"}}') == 1
    assert value(text, f'amocrm_account_state{{{labels},state="connected"}}') == 0
    assert value(text, "amocrm_webhook_events_unprocessed") == 1
    assert value(text, "amocrm_webhook_processing_lag_seconds") >= 90
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    assert f'amocrm_celery_queue_length{{queue="{queue}"}}' in text


@pytest.mark.django_db
def test_the_queue_length_is_read_from_redis(client, settings):
    import redis

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    connection = redis.Redis.from_url(settings.REDIS_URL)
    try:
        connection.rpush(queue, "a", "b", "c")
        assert value(scrape(client), f'amocrm_celery_queue_length{{queue="{queue}"}}') == 3
    finally:
        connection.delete(queue)
        connection.close()


@pytest.mark.django_db
def test_embedded_mode_leaves_the_queue_length_out(client):
    with override_settings(REDIS_URL=""):
        assert "amocrm_celery_queue_length" not in scrape(client)


def test_the_grafana_dashboard_has_a_panel_for_every_family(client, account):
    import json
    from pathlib import Path

    metrics.amocrm_request("account.get", 200, 0.1)
    metrics.sale_recorded(1, "RUB")
    families = set(re.findall(r"^# TYPE (\S+) ", scrape(client), flags=re.M))
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs/grafana-dashboard.json").read_text())
    queries = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    missing = {family for family in families if not re.search(rf"\b{family}(_bucket|_total)?\b", queries)}
    assert not missing, missing
