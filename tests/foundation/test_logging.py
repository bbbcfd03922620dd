"""Logs are JSON lines on stdout with the request id; X-Request-ID goes in and out; secrets stay out."""

import io
import json
import logging

import pytest

from config.logging import JsonFormatter, redact
from config.requestid import request_id_var
from config.tasks import heartbeat

pytestmark = pytest.mark.urls("tests.foundation.urls")


@pytest.fixture
def stdout_log():
    """What the configured stdout handler writes, captured for the test."""
    handler = next(
        h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)
    )
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


def test_the_root_logger_writes_json_to_stdout():
    handler = next(h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter))

    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is not None
    assert any(type(f).__name__ == "RequestIdFilter" for f in handler.filters)


def test_every_response_carries_a_fresh_request_id(client):
    first = client.get("/test/log/")["X-Request-ID"]
    second = client.get("/test/log/")["X-Request-ID"]

    assert len(first) == 32 and first != second


def test_a_well_formed_incoming_request_id_is_kept(client):
    response = client.get("/test/log/", HTTP_X_REQUEST_ID="proxy-42.a_b")

    assert response["X-Request-ID"] == "proxy-42.a_b"


def test_a_malformed_incoming_request_id_is_replaced(client):
    response = client.get("/test/log/", HTTP_X_REQUEST_ID='bad id"><script>')

    assert response["X-Request-ID"] != 'bad id"><script>'
    assert len(response["X-Request-ID"]) == 32


def test_a_log_line_is_one_json_object_with_the_request_id_and_extras(client, stdout_log):
    client.get("/test/log/", HTTP_X_REQUEST_ID="req-log-1")

    lines = [json.loads(line) for line in stdout_log.getvalue().splitlines()]
    record = next(line for line in lines if line["message"] == "lead accepted")
    assert record["request_id"] == "req-log-1"
    assert record["level"] == "WARNING"
    assert record["logger"] == "tests.foundation.views"
    assert record["lead_id"] == 7
    assert record["time"].endswith("+00:00")


def test_secret_looking_values_never_reach_the_log(client, stdout_log):
    client.get("/test/log/")

    output = stdout_log.getvalue()
    assert "s3cr3t-value" not in output
    assert "tok-value" not in output
    record = json.loads(output.splitlines()[0])
    assert record["client_secret"] == "[redacted]"
    assert record["headers"] == {"Authorization": "[redacted]"}


def test_redact_keeps_ordinary_keys():
    assert redact({"status_code": 200, "access_token": "x", "items": [{"refresh_token": "y", "id": 1}]}) == {
        "status_code": 200,
        "access_token": "[redacted]",
        "items": [{"refresh_token": "[redacted]", "id": 1}],
    }


def queued_messages(settings, queue: str) -> list[dict]:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [json.loads(raw) for raw in client.lrange(queue, 0, -1)]
    finally:
        client.close()


def test_the_request_id_travels_in_the_task_message(settings, private_queue):
    """Published to the real broker: the message headers carry the id (a worker adopts it, see test_worker)."""
    token = request_id_var.set("req-publish-1")
    try:
        heartbeat.apply_async(queue=private_queue)
    finally:
        request_id_var.reset(token)

    messages = queued_messages(settings, private_queue)
    assert len(messages) == 1
    message = messages[0]
    assert message["headers"]["task"] == "config.tasks.heartbeat"
    assert message["headers"]["request_id"] == "req-publish-1"


def test_a_task_published_outside_a_request_carries_no_request_id(settings, private_queue):
    heartbeat.apply_async(queue=private_queue)

    (message,) = queued_messages(settings, private_queue)
    assert "request_id" not in message["headers"]  # the worker logs it under the task id instead


def test_django_request_logs_name_the_path_without_the_query_string(client, stdout_log):
    client.get("/no-such-page/?code=one-time-code", HTTP_X_REQUEST_ID="req-404")

    record = next(json.loads(line) for line in stdout_log.getvalue().splitlines() if "Not Found" in line)
    assert record["request_id"] == "req-404"
    assert (record["method"], record["path"], record["status_code"]) == ("GET", "/no-such-page/", 404)
    assert "one-time-code" not in stdout_log.getvalue()


def test_django_log_lines_go_out_only_as_json():
    """Django's own console handler (plain text, on with DEBUG) would repeat django.request lines unmasked."""
    for name in ("django", "django.request"):
        assert all(isinstance(handler.formatter, JsonFormatter) for handler in logging.getLogger(name).handlers), name
    assert logging.getLogger("django.request").propagate and logging.getLogger("django").propagate
