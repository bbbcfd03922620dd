"""The webhook key (and every other URL secret) never reaches a log line, the sync log or the account's error text."""

import io
import json
import logging

import pytest

from amocrm.models import Account, SyncLog
from amocrm.services import account_rotate_webhook_key, account_subscribe_webhook
from config.logging import JsonFormatter, mask_url_secrets
from tests.factories import API

pytestmark = pytest.mark.django_db

KEY = "Zx9-kQ2_pL7vT4mN8rB1sD6fG3hJ5wY0cV2eA7uI9oK"


@pytest.fixture
def stdout_log():
    handler = next(h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter))
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


@pytest.mark.parametrize("text, expected", [
    (f"/api/webhooks/amocrm/{KEY}/", "/api/webhooks/amocrm/…I9oK/"),
    (f"https://crm.example.com/api/webhooks/amocrm/{KEY}/", "https://crm.example.com/api/webhooks/amocrm/…I9oK/"),
    (f'"POST /api/webhooks/amocrm/{KEY}/ HTTP/1.1" 200 2', '"POST /api/webhooks/amocrm/…I9oK/ HTTP/1.1" 200 2'),
    (f"Not Found: /api/webhooks/amocrm/{KEY}x/", "Not Found: /api/webhooks/amocrm/…9oKx/"),
    ("/api/leads/hook/hook-secret-0123456789/", "/api/leads/hook/…6789/"),
    (f"/api/webhooks/amocrm/{KEY}", "/api/webhooks/amocrm/…I9oK"),
    ("/api/webhooks/amocrm/short/", "/api/webhooks/amocrm/…t/"),
    ("/api/webhooks/amocrm/ab/", "/api/webhooks/amocrm/…/"),
    ("/api/leads/", "/api/leads/"),
    ("/healthz/?code=x", "/healthz/?code=x"),
])
def test_url_secrets_are_masked_to_at_most_their_last_four_characters(text, expected):
    assert mask_url_secrets(text) == expected


def test_masking_keeps_a_json_line_valid():
    line = json.dumps({"path": f"/api/webhooks/amocrm/{KEY}\"/", "x": "\\"})

    assert KEY not in mask_url_secrets(line)
    json.loads(mask_url_secrets(line))


def test_a_404_for_a_wrong_key_logs_no_key(client, stdout_log):
    response = client.post(f"/api/webhooks/amocrm/{KEY}/", data=b"a=1", content_type="text/plain")

    assert response.status_code == 404
    output = stdout_log.getvalue()
    record = next(json.loads(line) for line in output.splitlines() if "Not Found" in line)
    assert KEY not in output
    assert record["path"] == "/api/webhooks/amocrm/…I9oK/"
    assert record["message"] == "Not Found: /api/webhooks/amocrm/…I9oK/"


def test_runserver_request_lines_carry_no_key(stdout_log):
    logging.getLogger("django.server").warning('"%s" %s %s', f"POST /api/webhooks/amocrm/{KEY}/ HTTP/1.1", 404, 40,
                                               extra={"status_code": 404})

    output = stdout_log.getvalue()
    assert KEY not in output and "…I9oK" in output


def test_a_traceback_with_the_key_is_masked_too(stdout_log):
    try:
        raise RuntimeError(f"failed on /api/webhooks/amocrm/{KEY}/")
    except RuntimeError:
        logging.getLogger("amocrm").exception("boom")

    assert KEY not in stdout_log.getvalue()


def test_the_gunicorn_access_line_masks_the_path(stdout_log):
    from config.gunicorn import JsonLogger

    # Only what access() needs: its logger (here one that propagates to the JSON stdout handler).
    logger = JsonLogger.__new__(JsonLogger)
    logger.access_log = logging.getLogger("test.gunicorn.access")
    logger.access_log.setLevel(logging.INFO)
    logger._access_log_enabled = True

    class Response:
        status = "404 Not Found"
        headers = [("X-Request-ID", "r1")]
        sent = 10

    from datetime import timedelta

    logger.access(Response(), None, {"REQUEST_METHOD": "POST", "PATH_INFO": f"/api/webhooks/amocrm/{KEY}/"},
                  timedelta(milliseconds=3))

    output = stdout_log.getvalue()
    record = next(json.loads(line) for line in output.splitlines() if "test.gunicorn.access" in line)
    assert KEY not in output
    assert record["path"] == "/api/webhooks/amocrm/…I9oK/"


# --- The sync log and the account's stored error ---------------------------------------------------


def test_the_webhook_subscription_calls_are_logged_without_the_key(account, amocrm_mock):
    amocrm_mock.get(f"{API}/webhooks", json={"_embedded": {"webhooks": [
        {"destination": f"https://other.example.com/api/webhooks/amocrm/{KEY}/", "settings": ["add_lead"]}]}})
    amocrm_mock.post(f"{API}/webhooks", json={"destination": account.webhook_url, "settings": ["add_lead"], "id": 3})
    amocrm_mock.delete(f"{API}/webhooks", status=204, body=b"")

    assert account_subscribe_webhook(account=account) is True
    old_key = account.webhook_key
    account_rotate_webhook_key(account=account)

    rows = list(SyncLog.objects.filter(operation__startswith="webhooks."))
    assert {row.operation for row in rows} == {"webhooks.list", "webhooks.subscribe", "webhooks.unsubscribe"}
    stored = json.dumps([[row.path, row.request_body, row.response_body, row.error] for row in rows],
                        ensure_ascii=False)
    for secret in (KEY, old_key, Account.objects.get(pk=account.pk).webhook_key):
        assert secret not in stored
    assert "/api/webhooks/amocrm/…" in stored


def test_a_refused_subscription_stores_instructions_without_the_url(account, amocrm_mock):
    amocrm_mock.get(f"{API}/webhooks", status=204, body=b"")
    amocrm_mock.post(f"{API}/webhooks", status=400, json={"title": "Bad Request",
                                                  "detail": f"destination {account.webhook_url} is not reachable"})

    assert account_subscribe_webhook(account=account) is False

    account.refresh_from_db()
    assert "Add the webhook by hand" in account.webhook_error
    assert account.webhook_key not in account.webhook_error
    assert account.webhook_url not in account.webhook_error
    assert account.webhook_key not in account.last_error


def test_masking_twice_changes_nothing():
    once = mask_url_secrets(f"/api/webhooks/amocrm/{KEY}/")

    assert mask_url_secrets(once) == once
