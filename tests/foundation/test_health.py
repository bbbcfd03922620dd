"""GET /healthz/: 200 when the database and the broker answer, 503 naming what failed."""

import time

import pytest
from django.test import override_settings

from config import health
from config.tasks import heartbeat

from .support import free_port

pytestmark = pytest.mark.django_db


def test_it_answers_ok_when_database_and_broker_answer(client):
    response = client.get("/healthz/")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert set(body) == {"status", "version", "database", "broker", "worker"}
    assert "no-cache" in response["Cache-Control"]


def test_it_reports_the_worker_once_a_heartbeat_was_consumed(client):
    assert client.get("/healthz/").json()["worker"] == "unknown"

    heartbeat()

    assert client.get("/healthz/").json()["worker"] == "ok"


def test_it_is_503_naming_the_broker_when_redis_does_not_answer(client):
    closed = free_port()
    started = time.monotonic()

    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed}/0"):
        response = client.get("/healthz/")

    assert time.monotonic() - started < 3
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["broker"] == "unavailable"
    assert body["database"] == "ok"
    assert str(closed) not in response.content.decode()  # the detail goes to the log, not the answer


def test_it_is_503_naming_the_database_when_it_fails(client, monkeypatch):
    def broken():
        raise OSError("connection refused")

    monkeypatch.setattr(health, "check_database", broken)

    response = client.get("/healthz/")

    assert response.status_code == 503
    assert response.json()["database"] == "unavailable"
    assert response.json()["broker"] == "ok"


def test_it_checks_the_embedded_broker_folder(client, tmp_path, settings):
    settings.REDIS_URL = ""
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "queue")}
    assert client.get("/healthz/").status_code == 200

    (tmp_path / "not-a-folder").write_text("")
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {"data_folder_in": str(tmp_path / "not-a-folder" / "queue")}
    response = client.get("/healthz/")

    assert response.status_code == 503
    assert response.json()["broker"] == "unavailable"


def test_it_needs_no_login_and_skips_the_https_redirect(client, settings):
    settings.SECURE_SSL_REDIRECT = True

    assert client.get("/healthz/").status_code == 200
    assert client.get("/admin/login/").status_code == 301
