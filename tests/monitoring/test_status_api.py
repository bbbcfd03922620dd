"""GET /api/status/: who may read it, what it answers, and that it does not grow with the number of leads."""

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from amocrm.models import Account, SyncLog, WebhookEvent
from leads.models import Lead
from monitoring import services
from monitoring.selectors import LEAD_COUNTS_KEY
from tests.factories import make_account

pytestmark = pytest.mark.account(name="Shop")  # the account name the messages and pages show

URL = "/api/status/"
TOKEN = "status-token-0123456789abcdef"


@pytest.fixture(autouse=True)
def status_token(settings):
    settings.STATUS_TOKEN = TOKEN


def _get(client, token=TOKEN):
    return client.get(URL, HTTP_AUTHORIZATION=f"Bearer {token}") if token else client.get(URL)


@pytest.mark.django_db
def test_it_asks_for_credentials_without_any(client):
    response = _get(client, token=None)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_a_wrong_token_is_refused(client):
    assert _get(client, token="status-token-0123456789abcdeX").status_code == 401


@pytest.mark.django_db
def test_an_unset_status_token_lets_no_token_in(client, settings):
    settings.STATUS_TOKEN = ""
    assert _get(client, token="anything").status_code == 401


@pytest.mark.django_db
def test_a_staff_session_may_read_it_and_a_plain_user_may_not(client):
    user = get_user_model().objects.create_user("clerk", password="x")
    client.force_login(user)
    assert client.get(URL).status_code == 403
    user.is_staff = True
    user.save()
    assert client.get(URL).status_code == 200


@pytest.mark.django_db
def test_no_account_means_down(client):
    response = _get(client)
    assert response.status_code == 200 and response.json() == {
        "status": "down", "checked_at": response.json()["checked_at"], "accounts": []}


def test_the_answer_per_account_has_the_contracts_fields_and_no_secret(client, account, source):
    now = timezone.now()
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.PENDING,
                        created_at=now - timedelta(minutes=3))
    Lead.objects.create(source=source, account=account, email="a@example.com", status=Lead.Status.FAILED)
    Lead.objects.create(source=source, account=account, email="b@example.com", status=Lead.Status.SENT, sent_at=now)
    SyncLog.objects.create(account=account, operation="leads.complex", status=SyncLog.Status.OK, created_at=now)
    WebhookEvent.objects.create(account=account, body=b"x", body_sha256="0" * 64, state="processed")
    Account.objects.filter(pk=account.pk).update(
        last_success_at=now, webhook_subscribed_at=now,
        last_error=f"amoCRM answered 502 at {account.webhook_url}", last_error_at=now - timedelta(hours=1))

    body = _get(client).json()
    assert body["status"] == "ok"
    entry = body["accounts"][0]
    assert set(entry) == {"id", "name", "state", "health", "token_expires_at", "token_long_lived", "last_success_at",
                          "last_error_at", "last_error", "webhook", "last_webhook_at", "leads", "open_incidents"}
    assert (entry["id"], entry["name"], entry["state"], entry["health"]) == (account.pk, "Shop", "connected",
                                                                             "connected")
    assert entry["webhook"]["state"] == "subscribed" and entry["last_webhook_at"] is not None
    leads = entry["leads"]
    assert (leads["pending"], leads["failed"]) == (1, 1)
    assert 170 <= leads["oldest_pending_age_seconds"] <= 300 and leads["last_push_at"] is not None
    text = str(body)
    for secret in ("access-1", "refresh-1", "client-secret-1", account.webhook_key):
        assert secret not in text
    assert "/api/webhooks/amocrm/…" in entry["last_error"]


def test_an_account_needing_reauthorization_beside_a_working_one_is_degraded(client, account):
    make_account(name="Other", host="http://127.0.0.1:8765", amocrm_account_id=2, state=Account.State.NEEDS_REAUTH)
    assert _get(client).json()["status"] == "degraded"


def test_an_open_incident_makes_it_degraded(client, account, source):
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.FAILED)
    services.alerts_evaluate()
    body = _get(client).json()
    assert body["status"] == "degraded" and body["accounts"][0]["open_incidents"] == ["leads_failing"]


def test_every_account_broken_is_down(client, account):
    Account.objects.filter(pk=account.pk).update(state=Account.State.BLOCKED)
    assert _get(client).json()["status"] == "down"


def test_its_queries_do_not_grow_with_the_leads(client, account, source):
    def queries() -> tuple[int, dict]:
        cache.delete(LEAD_COUNTS_KEY)  # the big statuses' count is cached a minute: count it each time here
        with CaptureQueriesContext(connection) as captured:
            response = _get(client)
        return len(captured), response.json()["accounts"][0]["leads"]

    few, _ = queries()
    Lead.objects.bulk_create([Lead(source=source, account=account, phone="+79123456789",
                                   status=status) for status in ["pending", "sending", "sent", "failed"] * 50])
    many, leads = queries()
    assert many == few
    assert (leads["pending"], leads["failed"]) == (100, 50)


def test_the_failed_count_is_cached_for_a_minute_and_pending_is_always_exact(client, account, source):
    assert _get(client).json()["accounts"][0]["leads"]["failed"] == 0
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.FAILED)
    Lead.objects.create(source=source, account=account, phone="+79123456789", status=Lead.Status.PENDING)
    leads = _get(client).json()["accounts"][0]["leads"]
    assert (leads["pending"], leads["failed"]) == (1, 0)
    cache.delete(LEAD_COUNTS_KEY)
    assert _get(client).json()["accounts"][0]["leads"]["failed"] == 1


def test_an_error_quoting_the_accounts_secrets_shows_only_their_last_four_characters(client, account):
    Account.objects.filter(pk=account.pk).update(
        last_error="amoCRM said: client client-secret-1 with token access-token-abcdefgh is invalid",
        last_error_at=timezone.now())
    from amocrm.models import Token

    Token.objects.filter(account=account).update(access_token="access-token-abcdefgh")
    error = _get(client).json()["accounts"][0]["last_error"]
    assert "client-secret-1" not in error and "access-token-abcdefgh" not in error
    assert "…et-1" in error and "…efgh" in error


@pytest.mark.django_db
def test_the_openapi_schema_describes_the_status_api_and_its_token(client):
    schema = client.get("/api/schema/?format=json").json()
    assert "/api/status/" in schema["paths"]
    assert schema["components"]["securitySchemes"]["statusToken"] == {
        "type": "http", "scheme": "bearer", "description": "The value of STATUS_TOKEN."}
