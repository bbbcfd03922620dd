"""End to end: after connect (CLI and OAuth), a lead push, a token refresh and webhook deliveries (one to a wrong
key, one to the right one), no log line of any process holds a webhook key, a token, a code or the client secret."""

import json
import re

import pytest
import requests

from amocrm.models import Account, WebhookEvent
from amocrm.tasks import check_account_connection
from amocrm_sandbox.control import SandboxControl
from amocrm_sandbox.harness import wait_until
from leads.models import Lead
from sales.models import Sale
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_PATH

pytestmark = pytest.mark.django_db(transaction=True)

WON = 142


def connect_through_the_admin(site: str, sandbox, django_user_model) -> Account:
    """The browser flow: login, Connect, the sandbox's consent page, our callback with code and state."""
    django_user_model.objects.create_superuser("operator", "op@example.com", "secret-pw-1")
    account = Account.objects.create(name="First shop", host=sandbox.accounts[0].origin, client_id=CLIENT_ID,
                                     client_secret=CLIENT_SECRET, redirect_uri=site + REDIRECT_PATH)
    browser = requests.Session()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                     browser.get(f"{site}/admin/login/", timeout=10).text).group(1)
    browser.post(f"{site}/admin/login/", data={"username": "operator", "password": "secret-pw-1",
                                                "csrfmiddlewaretoken": csrf}, timeout=10)
    page = browser.get(f"{site}/admin/amocrm/account/{account.pk}/connect/", timeout=30)
    assert page.status_code == 200 and "Connected" in page.text, page.text
    account.refresh_from_db()
    return account


def issued_secrets(sandbox) -> set[str]:
    """Every authorization code, access token and refresh token the sandbox handed out in this test."""
    found = set()
    for account in sandbox.accounts:
        with account.lock:
            found |= set(account.tokens.codes) | set(account.tokens.access) | set(account.tokens.refresh)
    return found


def test_no_log_line_holds_a_webhook_key_a_token_or_the_client_secret(
        sandbox, control, connect_account, live_server_url, celery_worker_proc, processes, django_user_model):
    # 1. Connect: the admin's OAuth flow (sandbox account 0) and the CLI's code exchange (account 1).
    first = connect_through_the_admin(live_server_url, sandbox, django_user_model)
    assert first.state == Account.State.CONNECTED
    connected = connect_account(1)
    account = Account.objects.get(pk=connected["account"])
    amo = SandboxControl(sandbox.accounts[1].origin)

    # 2. A lead is pushed by the worker.
    answer = requests.post(f"{live_server_url}/api/leads/", timeout=10, json={
        "source": connected["lead_source_key"], "name": "Ivan", "phone": "+79161234567", "utm_source": "e2e"})
    assert answer.status_code == 201, answer.text
    lead = wait_until(lambda: Lead.objects.filter(pk=answer.json()["id"], status=Lead.Status.SENT,
                                                  amocrm_deal_id__isnull=False).first(),
                      timeout=60, what="the lead pushed")

    # 3. The tokens expire and are refreshed by the worker (a new pair, the old refresh token spent).
    amo.expire_tokens()
    check_account_connection.delay(account.pk)
    wait_until(lambda: amo.stats()["token_refreshes"] >= 1, timeout=30, what="a token refresh")

    # 4. Webhooks: a delivery to a wrong key (404) and the sandbox's own delivery of a won deal.
    wrong = account.webhook_key[::-1]
    assert requests.post(f"{live_server_url}/api/webhooks/amocrm/{wrong}/", data={"account[id]": "1"},
                         timeout=10).status_code == 404
    amo.move_deal(lead.amocrm_deal_id, status_id=WON, price=5000)
    deliveries = amo.deliveries(wait=True)
    assert deliveries and all(delivery["ok"] for delivery in deliveries), deliveries
    wait_until(lambda: Sale.objects.filter(account=account, amocrm_deal_id=lead.amocrm_deal_id).exists(),
               timeout=60, what="the won deal to become a sale")
    assert WebhookEvent.objects.filter(account=account, state=WebhookEvent.State.PROCESSED).exists()

    # 5. Every log of every process: none of the secrets, in any line.
    keys = set(Account.objects.values_list("webhook_key", flat=True)) | {wrong}
    secrets = {CLIENT_SECRET, *keys, *issued_secrets(sandbox)}
    assert len(secrets) >= 1 + 3 + 4  # the secret, 3 keys, and at least 2 codes + 2 pairs issued
    logs = {path.name: path.read_text(errors="replace") for path in sorted(processes.logs.glob("*.log"))}
    assert {"gunicorn.log", "worker.log", "amocrm_connect.log"} <= set(logs)
    assert all(logs.values())
    leaks = [(name, number, secret[:6] + "…")
             for name, text in logs.items() for number, line in enumerate(text.splitlines(), 1)
             for secret in secrets if secret in line]
    assert leaks == []
    # The requests that carried them were logged, masked: gunicorn's access lines of both deliveries.
    access = [json.loads(line) for line in logs["gunicorn.log"].splitlines() if '"gunicorn.access"' in line]
    paths = {(line["path"], line["status"]) for line in access}
    assert {(f"/api/webhooks/amocrm/…{wrong[-4:]}/", 404), (f"/api/webhooks/amocrm/…{account.webhook_key[-4:]}/",
                                                           200)} <= paths
