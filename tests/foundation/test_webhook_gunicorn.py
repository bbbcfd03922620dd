"""The webhook receiver behind a real gunicorn (the container's config): chunked bodies, and no key in its logs."""

import http.client

import pytest

from amocrm.models import WebhookEvent
from tests.factories import make_account
from tests.sales.builders import AMO_ACCOUNT_ID, FORM, delivery, lead_event

from .support import json_lines, wait_for

pytestmark = pytest.mark.slow


def post_chunked(port: int, path: str, chunks: list[bytes]) -> int:
    """POST with Transfer-Encoding: chunked and no Content-Length, as some proxies and senders do."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=iter(chunks), headers={"Content-Type": FORM}, encode_chunked=True)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_a_chunked_delivery_is_stored_whole_and_an_oversized_one_refused(gunicorn):
    port, _ = gunicorn
    account = make_account(amocrm_account_id=AMO_ACCOUNT_ID)
    body = delivery(*(lead_event("status", 9000 + i, status_id=142, last_modified=1700000000, index=i)
                      for i in range(2000)))
    assert len(body) > 200_000
    chunks = [body[start:start + 7000] for start in range(0, len(body), 7000)]

    assert post_chunked(port, account.webhook_path, chunks) == 200
    event = WebhookEvent.objects.get()
    assert bytes(event.body) == body

    too_big = [b"leads[add][0][name]=", *([b"x" * 65536] * 16), b"x"]
    assert post_chunked(port, account.webhook_path, too_big) == 413
    assert WebhookEvent.objects.count() == 1


def test_gunicorn_logs_neither_a_wrong_key_nor_the_right_one(gunicorn):
    port, web = gunicorn
    account = make_account(amocrm_account_id=AMO_ACCOUNT_ID)
    wrong = account.webhook_key[::-1]
    body = delivery(lead_event("status", 9001, status_id=142))

    assert post_chunked(port, f"/api/webhooks/amocrm/{wrong}/", [body]) == 404
    assert post_chunked(port, account.webhook_path, [body]) == 200

    def access_lines():
        lines = [r for r in json_lines(web.output()) if r["logger"] == "gunicorn.access"
                 and r["path"].startswith("/api/webhooks/")]
        return lines if len(lines) == 2 else None

    lines = wait_for(access_lines, timeout=5, what="both access lines", output=web.output)
    assert [(line["status"], line["path"]) for line in lines] == [
        (404, f"/api/webhooks/amocrm/…{wrong[-4:]}/"), (200, f"/api/webhooks/amocrm/…{account.webhook_key[-4:]}/")]
    output = web.output()
    leaks = [line for line in output.splitlines() if wrong in line or account.webhook_key in line]
    assert leaks == []
    assert any(record["logger"] == "django.request" and "Not Found" in record["message"]
               for record in json_lines(output))
