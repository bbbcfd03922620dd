"""Token lifecycle: scheduled refresh, 401 → refresh → retry, revocation, and refreshing exactly once under races."""

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from amocrm import errors, services, tokens
from amocrm.client import AmoCRMClient
from amocrm.models import Account, Token
from amocrm.tasks import refresh_expiring_tokens
from tests.amocrm.stub_amocrm import StubAmo
from tests.factories import API, TOKEN_URL, make_account

REFRESHED = {"token_type": "Bearer", "expires_in": 86400, "access_token": "access-2", "refresh_token": "refresh-2"}
REVOKED = {"hint": "Token has been revoked", "title": "Unauthorized", "type": "x", "status": 401, "detail": "x"}


@pytest.mark.django_db
def test_the_periodic_task_refreshes_tokens_expiring_within_the_hour(amocrm_mock):
    soon = make_account(expires_in=1800)
    later = make_account(expires_in=3 * 3600, host="http://127.0.0.1:8765", name="Later")
    long_lived = make_account(expires_in=600, long_lived=True, host="https://ll.amocrm.ru", name="LL")
    amocrm_mock.post(TOKEN_URL, json=REFRESHED)
    assert refresh_expiring_tokens() == 1
    soon.token.refresh_from_db()
    assert (soon.token.access_token, soon.token.refresh_token) == ("access-2", "refresh-2")
    assert soon.token.expires_at > timezone.now() + timedelta(hours=23)
    sent = json.loads(amocrm_mock.calls[0].request.body)
    assert sent["grant_type"] == "refresh_token" and sent["refresh_token"] == "refresh-1"
    later.token.refresh_from_db()
    long_lived.token.refresh_from_db()
    assert later.token.access_token == "access-1" and long_lived.token.access_token == "access-1"
    assert len(amocrm_mock.calls) == 1


@pytest.mark.django_db
def test_the_old_refresh_token_is_kept_when_none_comes_back(amocrm_mock, account):
    amocrm_mock.post(TOKEN_URL, json={"token_type": "Bearer", "expires_in": 86400, "access_token": "access-2"})
    tokens.account_refresh_token(account_id=account.pk, force=True)
    token = Token.objects.get(account=account)
    assert (token.access_token, token.refresh_token) == ("access-2", "refresh-1")


@pytest.mark.django_db
def test_a_401_refreshes_once_and_retries_once(amocrm_mock, account):
    amocrm_mock.get(f"{API}/account", status=401, json={"title": "Unauthorized"})
    amocrm_mock.get(f"{API}/account", json={"id": 31000001, "name": "Shop"})
    amocrm_mock.post(TOKEN_URL, json=REFRESHED)
    assert AmoCRMClient(account).account_get()["name"] == "Shop"
    auth = [c.request.headers.get("Authorization") for c in amocrm_mock.calls if "/api/v4/" in c.request.url]
    assert auth == ["Bearer access-1", "Bearer access-2"]
    account.refresh_from_db()
    assert account.state == Account.State.CONNECTED


@pytest.mark.django_db
def test_a_second_401_means_the_connection_needs_reauthorization(amocrm_mock, account):
    amocrm_mock.get(f"{API}/account", status=401, json={"title": "Unauthorized"})
    amocrm_mock.post(TOKEN_URL, json=REFRESHED)
    with pytest.raises(errors.TokenRevoked):
        AmoCRMClient(account).account_get()
    account.refresh_from_db()
    assert account.state == Account.State.NEEDS_REAUTH
    assert account.health() == "needs_reauth"
    assert len([c for c in amocrm_mock.calls if "/api/v4/" in c.request.url]) == 2


@pytest.mark.django_db
def test_a_revoked_refresh_token_needs_reauthorization_and_stops_all_calls(amocrm_mock, account):
    Token.objects.filter(account=account).update(expires_at=timezone.now() - timedelta(seconds=5))
    amocrm_mock.post(TOKEN_URL, status=401, json=REVOKED)
    with pytest.raises(errors.TokenRevoked):
        AmoCRMClient(account).account_get()
    account.refresh_from_db()
    assert account.state == Account.State.NEEDS_REAUTH
    assert "reconnect" in account.last_error
    calls = len(amocrm_mock.calls)
    with pytest.raises(errors.AccountUnavailable):
        AmoCRMClient(account).account_get()
    assert refresh_expiring_tokens() == 0
    assert len(amocrm_mock.calls) == calls == 1


@pytest.mark.django_db
def test_a_long_lived_token_rejected_with_401_needs_reauthorization_without_refresh(amocrm_mock):
    account = make_account(long_lived=True)
    amocrm_mock.get(f"{API}/account", status=401, json={"title": "Unauthorized"})
    with pytest.raises(errors.TokenRevoked):
        AmoCRMClient(account).account_get()
    account.refresh_from_db()
    assert account.state == Account.State.NEEDS_REAUTH
    assert not any(c.request.url == TOKEN_URL for c in amocrm_mock.calls)


@pytest.mark.django_db
def test_reconnecting_resumes_a_revoked_account(amocrm_mock, account):
    from tests.amocrm.test_oauth import mock_metadata

    Account.objects.filter(pk=account.pk).update(state=Account.State.NEEDS_REAUTH)
    amocrm_mock.post(TOKEN_URL, json=REFRESHED)
    mock_metadata(amocrm_mock)
    services.account_connect(account=account, host="sandbox.test", code="fresh-code")
    account.refresh_from_db()
    assert account.state == Account.State.CONNECTED
    assert account.token.access_token == "access-2"


# ---------------------------------------------------------------------------- races, across threads and processes

CHILD = r"""
import os, sys, threading, time, json
import django
django.setup()
from amocrm.client import AmoCRMClient
from amocrm.models import Account
account_id, start_at, threads = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
results = []
def work():
    from django.db import connection
    time.sleep(max(0, start_at - time.time()))
    try:
        results.append(AmoCRMClient(Account.objects.get(pk=account_id)).account_get().get("name"))
    except Exception as exc:
        results.append(repr(exc))
    finally:
        connection.close()
ts = [threading.Thread(target=work) for _ in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(json.dumps(results))
"""


@pytest.mark.django_db(transaction=True)
def test_racing_threads_and_processes_refresh_an_expired_token_exactly_once(subprocess_env):
    with StubAmo(refresh_delay=0.3) as stub, override_settings(AMOCRM_TRUSTED_HOSTS=[stub.origin]):
        account = make_account(host=stub.origin, expires_in=-10)
        start_at = time.time() + 2.5
        children = [
            subprocess.Popen([sys.executable, "-c", CHILD, str(account.pk), str(start_at), "4"],
                             env={**subprocess_env, "AMOCRM_TRUSTED_HOSTS": stub.origin}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True,
                             cwd=settings.BASE_DIR)
            for _ in range(2)
        ]
        results = []

        def work():
            time.sleep(max(0, start_at - time.time()))
            try:
                results.append(AmoCRMClient(Account.objects.get(pk=account.pk)).account_get().get("name"))
            finally:
                connection.close()

        threads = [threading.Thread(target=work) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for child in children:
            out, err = child.communicate(timeout=60)
            assert child.returncode == 0, err
            results.extend(json.loads(out.strip().splitlines()[-1]))
        assert stub.token_requests == 1
        assert results == ["Stub"] * 16
        token = Token.objects.get(account=account)
        assert token.refresh_count == 1 and token.refresh_token == stub.refresh_token


LIMITER_CHILD = r"""
import sys, time
import django
django.setup()
from amocrm.client import AmoCRMClient
from amocrm.models import Account
account_id, start_at, calls = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
time.sleep(max(0, start_at - time.time()))
client = AmoCRMClient(Account.objects.get(pk=account_id))
for _ in range(calls):
    client.account_get()
"""


@pytest.mark.django_db(transaction=True)
def test_three_processes_never_exceed_the_rate_limit_in_any_second(subprocess_env):
    with StubAmo() as stub, override_settings(AMOCRM_TRUSTED_HOSTS=[stub.origin]):
        account = make_account(host=stub.origin)
        start_at = time.time() + 2
        children = [
            subprocess.Popen([sys.executable, "-c", LIMITER_CHILD, str(account.pk), str(start_at), "20"],
                             env={**subprocess_env, "AMOCRM_TRUSTED_HOSTS": stub.origin}, stderr=subprocess.PIPE,
                             text=True, cwd=settings.BASE_DIR)
            for _ in range(3)
        ]
        for child in children:
            _, err = child.communicate(timeout=120)
            assert child.returncode == 0, err
        assert len(stub.arrivals) == 60
        assert stub.peak_in_window(1.0) == 7  # saturated, never above the limit
        elapsed = max(stub.arrivals) - min(stub.arrivals)
        # The limit really held the 60 calls back: 7 per window, the first 7 at once.
        assert elapsed >= (60 / 7 - 1) * settings.AMOCRM_RATE_WINDOW - 0.1


@pytest.mark.django_db
def test_a_short_lived_token_is_refreshed_only_in_the_last_fifth_of_its_life(amocrm_mock, account):
    now = timezone.now()
    Token.objects.filter(account=account).update(refreshed_at=now, expires_at=now + timedelta(seconds=50))
    amocrm_mock.get(f"{API}/account", json={"id": 1, "name": "Shop"})
    AmoCRMClient(account).account_get()
    assert not any(c.request.url == TOKEN_URL for c in amocrm_mock.calls)
    Token.objects.filter(account=account).update(refreshed_at=now - timedelta(seconds=45),
                                                 expires_at=now + timedelta(seconds=5))
    amocrm_mock.post(TOKEN_URL, json=REFRESHED)
    AmoCRMClient(account).account_get()
    assert [c.request.url for c in amocrm_mock.calls].count(TOKEN_URL) == 1
