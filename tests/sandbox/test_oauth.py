"""The sandbox's OAuth is as strict as amoCRM's: single-use codes and refresh tokens, exact client checks."""

import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from amocrm_sandbox import Sandbox

from .support import Api, ManualClock, exchange


@pytest.fixture
def code(control):
    return control.authorize()["code"]


def test_code_exchange_answers_a_bearer_pair_with_the_configured_lifetime(clock):
    with Sandbox(clock=clock, token_lifetime=5) as box:
        code = box.control.authorize()["code"]
        answer = exchange(box.accounts[0].origin, box.integration, grant_type="authorization_code", code=code)
    assert answer.status_code == 200
    body = answer.json()
    assert set(body) == {"token_type", "expires_in", "access_token", "refresh_token"}
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 5


def test_the_code_is_single_use(sandbox, code):
    origin = sandbox.accounts[0].origin
    assert exchange(origin, sandbox.integration, grant_type="authorization_code", code=code).status_code == 200

    again = exchange(origin, sandbox.integration, grant_type="authorization_code", code=code)

    assert again.status_code == 400
    assert again.json()["hint"] == "Authorization code has been revoked"
    assert set(again.json()) == {"hint", "title", "type", "status", "detail"}


def test_the_code_expires_after_twenty_minutes(sandbox, clock, control):
    origin = sandbox.accounts[0].origin
    fresh, stale = control.authorize()["code"], control.authorize()["code"]
    clock.advance(20 * 60 - 1)
    assert exchange(origin, sandbox.integration, grant_type="authorization_code", code=fresh).status_code == 200
    clock.advance(2)

    expired = exchange(origin, sandbox.integration, grant_type="authorization_code", code=stale)

    assert expired.status_code == 400
    assert expired.json()["hint"] == "Authorization code has expired"


def test_a_code_from_another_account_cannot_be_decrypted(sandbox, control):
    code = control.authorize(account_id=sandbox.accounts[1].account_id)["code"]

    answer = exchange(sandbox.accounts[0].origin, sandbox.integration, grant_type="authorization_code", code=code)

    assert answer.status_code == 400
    assert answer.json()["hint"] == "Cannot decrypt the authorization code"


def test_refresh_returns_a_new_pair_and_a_reused_refresh_token_is_revoked(sandbox, code):
    origin = sandbox.accounts[0].origin
    first = exchange(origin, sandbox.integration, grant_type="authorization_code", code=code).json()

    second = exchange(origin, sandbox.integration, grant_type="refresh_token", refresh_token=first["refresh_token"])
    reused = exchange(origin, sandbox.integration, grant_type="refresh_token", refresh_token=first["refresh_token"])

    assert second.status_code == 200
    assert second.json()["refresh_token"] != first["refresh_token"]
    assert reused.status_code == 401
    assert reused.json()["hint"] == "Token has been revoked"
    assert set(reused.json()) == {"hint", "title", "type", "status", "detail"}
    # amoCRM keeps the old access token alive until it expires.
    assert Api(origin, first["access_token"]).get("/api/v4/account").status_code == 200
    assert sandbox.control.stats()["token_refreshes"] == 1
    assert sandbox.control.stats()["token_refresh_failures"] == 1


@pytest.mark.parametrize("field, value", [
    ("client_secret", "wrong"),
    ("client_id", "unknown-client"),
    ("redirect_uri", "http://127.0.0.1:9/callback"),  # the trailing slash matters
])
def test_a_client_mismatch_is_invalid_client(sandbox, code, field, value):
    answer = exchange(sandbox.accounts[0].origin, sandbox.integration, grant_type="authorization_code", code=code,
                      **{field: value})

    assert answer.status_code == 401
    assert answer.json()["title"] == "invalid client"


def test_the_token_endpoint_on_www_says_send_request_to_account(sandbox, code):
    answer = exchange(sandbox.www_origin, sandbox.integration, grant_type="authorization_code", code=code)

    assert answer.status_code == 400
    assert answer.json()["hint"] == "Send request to account"


def test_the_token_endpoint_takes_form_encoded_bodies(sandbox, code):
    integration = sandbox.integration
    answer = requests.post(f"{sandbox.accounts[0].origin}/oauth2/access_token", timeout=5, data={
        "client_id": integration.client_id, "client_secret": integration.client_secret,
        "redirect_uri": integration.redirect_uri, "grant_type": "authorization_code", "code": code})

    assert answer.status_code == 200


def test_an_unsupported_grant_type_is_rejected(sandbox):
    answer = exchange(sandbox.accounts[0].origin, sandbox.integration, grant_type="password")

    assert answer.status_code == 400


def test_consent_redirects_to_the_integration_with_code_state_and_referer(sandbox):
    answer = requests.get(f"{sandbox.www_origin}/oauth", params={
        "client_id": sandbox.integration.client_id, "state": "opaque-state", "mode": "post_message"},
        allow_redirects=False, timeout=5)

    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == sandbox.integration.redirect_uri
    query = {key: values[0] for key, values in parse_qs(location.query).items()}
    account = sandbox.accounts[0]
    assert query["state"] == "opaque-state"
    assert query["referer"] == account.host
    assert "://" not in query["referer"]
    exchanged = exchange(account.origin, sandbox.integration, grant_type="authorization_code", code=query["code"])
    assert exchanged.status_code == 200


def test_consent_picks_the_account_named_by_sandbox_account(sandbox):
    second = sandbox.accounts[1]
    answer = requests.get(f"{sandbox.www_origin}/oauth", params={
        "client_id": sandbox.integration.client_id, "sandbox_account": second.account_id},
        allow_redirects=False, timeout=5)

    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["referer"] == [second.host]
    assert "state" not in query


def test_consent_on_an_account_host_connects_that_account(sandbox):
    second = sandbox.accounts[1]
    answer = requests.get(f"{second.origin}/oauth", params={"client_id": sandbox.integration.client_id},
                          allow_redirects=False, timeout=5)

    assert parse_qs(urlsplit(answer.headers["Location"]).query)["referer"] == [second.host]


def test_consent_can_be_denied(sandbox, control):
    params = {"client_id": sandbox.integration.client_id, "state": "s"}
    by_parameter = requests.get(f"{sandbox.www_origin}/oauth", params={**params, "sandbox_deny": "1"},
                                allow_redirects=False, timeout=5)
    control.deny_consent(True)
    by_toggle = requests.get(f"{sandbox.www_origin}/oauth", params=params, allow_redirects=False, timeout=5)

    for answer in (by_parameter, by_toggle):
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert query["error"] == ["access_denied"]
        assert "code" not in query
        assert query["state"] == ["s"]


def test_consent_for_an_unknown_client_is_an_error_page(sandbox):
    answer = requests.get(f"{sandbox.www_origin}/oauth", params={"client_id": "nobody"}, allow_redirects=False,
                          timeout=5)

    assert answer.status_code == 400


def test_an_expired_access_token_is_401(clock):
    with Sandbox(clock=clock, token_lifetime=5) as box:
        pair = exchange(box.accounts[0].origin, box.integration, grant_type="authorization_code",
                        code=box.control.authorize()["code"]).json()
        api = Api(box.accounts[0].origin, pair["access_token"])
        assert api.get("/api/v4/account").status_code == 200
        clock.advance(5)

        answer = api.get("/api/v4/account")

    assert answer.status_code == 401
    assert answer.headers["Content-Type"] == "application/problem+json"


def test_an_access_token_works_only_on_its_own_account(sandbox, control):
    token = control.long_lived_token()

    assert Api(sandbox.accounts[1].origin, token).get("/api/v4/account").status_code == 401


def test_a_long_lived_token_works_as_bearer_without_refresh(sandbox, clock, control):
    token = control.long_lived_token(expires_in=3 * 86400)
    api = Api(sandbox.accounts[0].origin, token)
    clock.advance(2 * 86400)

    assert api.get("/api/v4/account").json()["id"] == sandbox.accounts[0].account_id
    clock.advance(86400)
    assert api.get("/api/v4/account").status_code == 401


def test_calls_without_a_token_are_401(sandbox):
    answer = requests.get(f"{sandbox.accounts[0].origin}/api/v4/leads", timeout=5)

    assert answer.status_code == 401
    assert answer.json()["status"] == 401


def test_the_current_subdomain_is_found_by_refresh_token(sandbox, code):
    account = sandbox.accounts[0]
    pair = exchange(account.origin, sandbox.integration, grant_type="authorization_code", code=code).json()

    answer = requests.get(f"{account.origin}/oauth2/account/current/subdomain",
                          headers={"X-Refresh-Token": pair["refresh_token"]}, timeout=5)

    assert answer.status_code == 200
    assert answer.json()["id"] == account.account_id
    assert answer.json()["subdomain"] == account.subdomain


def test_the_control_clock_ages_codes_for_out_of_process_runs():
    with Sandbox(clock=ManualClock()) as box:
        code = box.control.authorize()["code"]
        box.control.advance_clock(20 * 60 + 1)

        answer = exchange(box.accounts[0].origin, box.integration, grant_type="authorization_code", code=code)

    assert answer.json()["hint"] == "Authorization code has expired"


def test_tokens_can_be_expired_on_demand_while_refresh_keeps_working(sandbox, control, code):
    origin = sandbox.accounts[0].origin
    pair = exchange(origin, sandbox.integration, grant_type="authorization_code", code=code).json()

    assert control.expire_tokens() == 1

    assert Api(origin, pair["access_token"]).get("/api/v4/account").status_code == 401
    refreshed = exchange(origin, sandbox.integration, grant_type="refresh_token", refresh_token=pair["refresh_token"])
    assert Api(origin, refreshed.json()["access_token"]).get("/api/v4/account").status_code == 200


def test_of_racing_refreshes_with_one_token_exactly_one_wins(sandbox, code):
    origin = sandbox.accounts[0].origin
    refresh_token = exchange(origin, sandbox.integration, grant_type="authorization_code", code=code).json()[
        "refresh_token"]
    barrier = threading.Barrier(8)

    def race(_: int) -> int:
        barrier.wait()
        answer = exchange(origin, sandbox.integration, grant_type="refresh_token", refresh_token=refresh_token)
        return answer.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(race, range(8)))

    assert statuses == [200] + [401] * 7
    assert sandbox.control.stats()["token_refreshes"] == 1
