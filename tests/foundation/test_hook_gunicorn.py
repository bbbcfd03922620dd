"""The form-builder hook behind a real gunicorn: its secret is in neither the access log nor django.request's lines."""

import http.client

import pytest

from leads.models import Lead, LeadSource
from tests.factories import make_account

from .support import json_lines, wait_for

pytestmark = pytest.mark.slow
FORM = "application/x-www-form-urlencoded"


def post(port: int, path: str, body: bytes) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": FORM})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_gunicorn_logs_the_hook_path_with_its_secret_masked(gunicorn):
    port, web = gunicorn
    source = LeadSource.objects.create(account=make_account(), name="Tilda site")
    secret = source.hook_secret

    assert post(port, f"/api/leads/hook/{secret}/", b"Name=Ivan&Phone=89123456789&tranid=1:2") == 201
    assert post(port, f"/api/leads/hook/{secret}/", b"Name=No+contact") == 400  # logged by django.request
    assert post(port, f"/api/leads/hook/{secret[::-1]}/", b"Phone=89123456789") == 404
    assert Lead.objects.get().source == source

    def access_lines():
        lines = [r for r in json_lines(web.output()) if r["logger"] == "gunicorn.access"
                 and r["path"].startswith("/api/leads/hook/")]
        return lines if len(lines) == 3 else None

    lines = wait_for(access_lines, timeout=5, what="the three access lines", output=web.output)
    assert [(line["status"], line["path"]) for line in lines] == [
        (201, f"/api/leads/hook/…{secret[-4:]}/"), (400, f"/api/leads/hook/…{secret[-4:]}/"),
        (404, f"/api/leads/hook/…{secret[::-1][-4:]}/")]
    output = web.output()
    assert any(record["logger"] == "django.request" for record in json_lines(output))
    assert [line for line in output.splitlines() if secret in line or secret[::-1] in line] == []
