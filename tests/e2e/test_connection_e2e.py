"""End to end against the sandbox: connect through the CLI and the admin, survive token expiries under load."""

import re
import time

import pytest
import requests

from amocrm.models import Account, SyncLog
from amocrm.tasks import check_account_connection
from amocrm_sandbox.control import SandboxControl
from tests.e2e.conftest import CLIENT_ID, CLIENT_SECRET, REDIRECT_PATH, wait_until

pytestmark = pytest.mark.django_db(transaction=True)


def test_an_account_connects_through_the_cli(sandbox, control, connect_account):
    result = connect_account(0)
    account = Account.objects.get(pk=result["account"])
    assert result["amocrm_account_id"] == sandbox.accounts[0].account_id == account.amocrm_account_id
    assert account.state == Account.State.CONNECTED and account.host == sandbox.accounts[0].origin
    assert account.pipelines.count() >= 2 and account.custom_fields.filter(code="UTM_SOURCE").exists()
    assert result["webhook_url"] == account.webhook_url
    assert [w["destination"] for w in control.webhooks()] == [account.webhook_url]
    stats = control.stats()
    assert stats["code_exchanges"] == 1 and stats["responses_429"] == 0


def test_an_account_connects_through_the_admin_oauth_flow(sandbox, control, live_server_url, django_user_model):
    django_user_model.objects.create_superuser("operator", "op@example.com", "secret-pw-1")
    account = Account.objects.create(name="Shop", host=sandbox.accounts[0].origin, client_id=CLIENT_ID,
                                     client_secret=CLIENT_SECRET, redirect_uri=live_server_url + REDIRECT_PATH)
    browser = requests.Session()
    login_page = browser.get(f"{live_server_url}/admin/login/", timeout=10)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    logged_in = browser.post(f"{live_server_url}/admin/login/?next=/admin/", timeout=10,
                             data={"username": "operator", "password": "secret-pw-1",
                                   "csrfmiddlewaretoken": csrf})
    assert "Log out" in logged_in.text or "logout" in logged_in.text
    # Connect → the sandbox's consent page → back to our callback with code, state and referer.
    page = browser.get(f"{live_server_url}/admin/amocrm/account/{account.pk}/connect/", timeout=30)
    assert page.status_code == 200, page.text
    assert "Connected" in page.text
    hops = [r.url for r in page.history]
    assert hops[1].startswith(sandbox.www_origin + "/oauth?client_id=" + CLIENT_ID)
    assert page.url.startswith(live_server_url + REDIRECT_PATH + "?code=")
    account.refresh_from_db()
    assert account.state == Account.State.CONNECTED
    assert account.amocrm_name and account.webhook_subscribed_at is not None
    assert control.stats()["code_exchanges"] == 1


def test_consent_denied_in_amocrm_is_explained(sandbox, control, live_server_url, django_user_model):
    django_user_model.objects.create_superuser("operator", "op@example.com", "secret-pw-1")
    account = Account.objects.create(name="Shop", host=sandbox.accounts[0].origin, client_id=CLIENT_ID,
                                     client_secret=CLIENT_SECRET, redirect_uri=live_server_url + REDIRECT_PATH)
    control.deny_consent(True)
    try:
        browser = requests.Session()
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                         browser.get(f"{live_server_url}/admin/login/", timeout=10).text).group(1)
        browser.post(f"{live_server_url}/admin/login/", data={"username": "operator", "password": "secret-pw-1",
                                                            "csrfmiddlewaretoken": csrf}, timeout=10)
        page = browser.get(f"{live_server_url}/admin/amocrm/account/{account.pk}/connect/", timeout=30)
    finally:
        control.deny_consent(False)
    assert page.status_code == 400 and "Access was not granted" in page.text
    assert control.stats()["code_exchanges"] == 0


def test_the_connection_survives_token_expiries_while_four_worker_processes_call(
        sandbox, control, connect_account, celery_worker_proc):
    lifetime = 5
    control.configure(token_lifetime=lifetime)
    try:
        account_pk = connect_account(0)["account"]
        calls_before = SyncLog.objects.filter(operation="account.get", status="ok").count()
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < 16:
            for _ in range(4):
                check_account_connection.delay(account_pk)
                sent += 1
            time.sleep(0.5)
        wait_until(lambda: SyncLog.objects.filter(operation="account.get", status="ok").count() - calls_before
                   >= sent, timeout=60, what=f"{sent} successful calls")
        elapsed = time.monotonic() - started
    finally:
        control.configure(token_lifetime=86400)
    account = Account.objects.get(pk=account_pk)
    stats = SandboxControl(sandbox.accounts[0].origin).stats()
    assert account.state == Account.State.CONNECTED
    assert stats["token_refresh_failures"] == 0  # no refresh token was ever used twice
    assert stats["statuses"].get("401", 0) == 0  # no call went out with an expired token
    # One refresh per expiry: refreshed in the last fifth of each 5-second life, never more often.
    refreshes = stats["token_refreshes"]
    assert elapsed / lifetime - 1 <= refreshes <= elapsed / (lifetime * 0.8) + 1
    assert SyncLog.objects.filter(account_id=account_pk, operation="oauth.refresh", status="ok").count() == refreshes
    assert not SyncLog.objects.filter(account_id=account_pk, status="error").exists()
