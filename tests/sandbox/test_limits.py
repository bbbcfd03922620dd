"""amoCRM's request limit: the 8th request in a second is a 429 HTML page, a sustained excess a 403 block."""

import pytest
import requests

from amocrm_sandbox import Sandbox, default_accounts

from .support import Api, ManualClock


@pytest.fixture
def clock():
    return ManualClock()


@pytest.fixture
def strict(clock):
    with Sandbox(clock=clock, rate_limit=7, block_threshold=3) as box:
        yield box


@pytest.fixture
def strict_api(strict):
    return Api(strict.accounts[0].origin, strict.control.long_lived_token())


def test_the_eighth_request_in_a_second_is_429_html_without_retry_after(strict_api, clock):
    answers = [strict_api.get("/api/v4/account") for _ in range(8)]

    assert [answer.status_code for answer in answers] == [200] * 7 + [429]
    refused = answers[-1]
    assert refused.headers["Content-Type"].startswith("text/html")
    assert "Retry-After" not in refused.headers
    assert refused.text.lstrip().startswith("<html>")
    clock.advance(1.001)
    assert strict_api.get("/api/v4/account").status_code == 200


def test_requests_spread_over_seconds_pass(strict_api, clock):
    for _ in range(4):
        assert [strict_api.get("/api/v4/account").status_code for _ in range(7)] == [200] * 7
        clock.advance(1.0)


def test_oauth_requests_count_toward_the_limit_and_control_calls_do_not(strict, strict_api):
    origin = strict.accounts[0].origin
    for _ in range(20):
        strict.control.stats()
    for _ in range(6):
        requests.post(f"{origin}/oauth2/access_token", json={}, timeout=5)

    assert strict_api.get("/api/v4/account").status_code == 200
    assert strict_api.get("/api/v4/account").status_code == 429


def test_a_sustained_excess_blocks_the_account_with_403_until_reset(strict, strict_api, clock):
    statuses = [strict_api.get("/api/v4/account").status_code for _ in range(10)]
    assert statuses == [200] * 7 + [429] * 3
    clock.advance(60)

    blocked = strict_api.get("/api/v4/account")
    token_endpoint = requests.post(f"{strict.accounts[0].origin}/oauth2/access_token", json={}, timeout=5)

    assert blocked.status_code == 403
    assert blocked.headers["Content-Type"].startswith("text/html")
    assert token_endpoint.status_code == 403
    assert strict.control.stats()["blocked"] is True
    strict.control.reset(parts=["limits"])
    assert strict_api.get("/api/v4/account").status_code == 200


def test_stats_count_requests_per_path_peak_rps_429s_and_403s(strict, strict_api, clock):
    for _ in range(3):
        strict_api.get("/api/v4/leads")
    clock.advance(1.5)
    for _ in range(10):
        strict_api.get("/api/v4/account")
    strict_api.get("/api/v4/account")

    stats = strict.control.stats(timestamps=True)

    assert stats["requests"] == 14
    assert stats["paths"] == {"/api/v4/leads": 3, "/api/v4/account": 11}
    assert stats["peak_rps"] == 11
    assert stats["responses_429"] == 3
    assert stats["responses_403"] == 1
    assert len(stats["timestamps"]) == 14


def test_limits_are_per_account(clock):
    with Sandbox(accounts=default_accounts(2), clock=clock, rate_limit=2) as box:
        first, second = (Api(account.origin, box.control.long_lived_token(account_id=account.account_id))
                         for account in box.accounts)
        exhausted = [first.get("/api/v4/account").status_code for _ in range(3)]
        other = second.get("/api/v4/account").status_code
    assert exhausted == [200, 200, 429]
    assert other == 200


def test_the_limit_can_be_changed_at_run_time(strict, strict_api):
    strict.control.configure(rate_limit=2)

    assert [strict_api.get("/api/v4/account").status_code for _ in range(3)] == [200, 200, 429]
