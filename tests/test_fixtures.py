"""The shared fixtures keep their promises: `account` takes its marker's arguments, `amocrm_mock` reports strays."""

import pytest
import requests
import responses

from amocrm import ratelimit
from amocrm.models import Account
from tests.conftest import unregistered_calls
from tests.factories import API, HOST, rate_limiter_reset


def test_a_call_nobody_registered_is_reported_even_when_the_code_survived_it():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/account", json={"id": 1})
        mock.get(f"{API}/leads/1", body=requests.ConnectionError("network down"))  # a registered failure
        requests.get(f"{API}/account", timeout=1)
        for url in (f"{API}/leads/1", f"{API}/contacts"):
            with pytest.raises(requests.ConnectionError):
                requests.get(url, timeout=1)

        assert unregistered_calls(mock) == [f"GET {API}/contacts"]


@pytest.mark.account(name="Marked", amocrm_account_id=42, access_token="access-42")
def test_the_account_takes_make_accounts_arguments_from_the_marker(account):
    account.refresh_from_db()
    assert (account.name, account.amocrm_account_id, account.state) == ("Marked", 42, Account.State.CONNECTED)
    assert account.token.access_token == "access-42"


def test_without_a_marker_the_account_is_the_factorys_connected_account(account):
    assert (account.name, account.host, account.state) == ("Test account", HOST, Account.State.CONNECTED)


def test_the_rate_limiter_reset_forgets_a_pause_and_the_request_log():
    limiter = ratelimit.AccountRateLimiter(987654, rate=1, max_wait=0)
    limiter.acquire()
    limiter.pause(60)
    with pytest.raises(ratelimit.RateLimitTimeout):
        limiter.acquire()

    rate_limiter_reset(987654)

    assert limiter.acquire() == 0
