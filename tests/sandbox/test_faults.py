"""Faults on demand: 5xx pages, latency, timeouts, and writes that commit and then fail."""

import time

import pytest
import requests

from amocrm_sandbox import Sandbox

from .support import Api, ManualClock, exchange


def test_an_error_rate_of_one_answers_5xx_html_and_does_nothing(api, control):
    control.set_faults(error_rate=1.0, error_status=503)

    answer = api.post("/api/v4/leads", json=[{"name": "x"}])

    assert answer.status_code == 503
    assert answer.headers["Content-Type"].startswith("text/html")
    assert control.leads() == []
    assert control.stats()["faults_injected"] == 1


def test_commit_then_fail_creates_the_deal_and_answers_502(api, control):
    control.set_faults(commit_then_fail_rate=1.0)

    answer = api.post("/api/v4/leads", json=[{"name": "committed"}])

    assert answer.status_code == 502
    assert [deal["name"] for deal in control.leads()] == ["committed"]


def test_commit_then_fail_can_drop_the_connection(api, control):
    control.set_faults(commit_then_fail_rate=1.0, commit_then_fail_mode="drop")

    with pytest.raises(requests.ConnectionError):
        api.post("/api/v4/leads/complex", json=[{"name": "committed", "_embedded": {"contacts": [{"name": "Ivan"}]}}])

    assert [deal["name"] for deal in control.leads()] == ["committed"]
    assert len(control.contacts()) == 1


def test_commit_then_fail_leaves_reads_alone(api, control):
    control.set_faults(commit_then_fail_rate=1.0)

    assert api.get("/api/v4/account").status_code == 200


def test_a_timeout_can_close_the_connection_without_an_answer(api, control):
    control.set_faults(timeout_rate=1.0, timeout_mode="drop")

    with pytest.raises(requests.ConnectionError):
        api.post("/api/v4/leads", json=[{"name": "lost"}])

    assert control.leads() == []


def test_a_timeout_can_outlast_the_clients_patience(api, control):
    control.set_faults(timeout_rate=1.0, timeout_seconds=0.5)

    with pytest.raises(requests.Timeout):
        api.get("/api/v4/account", timeout=0.2)


def test_latency_delays_every_api_answer(api, control):
    control.set_faults(latency_ms=150)

    started = time.monotonic()
    api.get("/api/v4/account")

    assert time.monotonic() - started >= 0.15


def test_faults_leave_oauth_and_control_alone_unless_asked(sandbox, control):
    control.set_faults(error_rate=1.0)
    code = control.authorize()["code"]
    origin = sandbox.accounts[0].origin

    assert exchange(origin, sandbox.integration, grant_type="authorization_code", code=code).status_code == 200
    control.set_faults(error_rate=1.0, include_oauth=True)
    assert exchange(origin, sandbox.integration, grant_type="authorization_code",
                    code=control.authorize()["code"]).status_code == 500


def test_faults_can_target_some_paths_only(api, control):
    control.set_faults(error_rate=1.0, paths=["/api/v4/leads/complex"])

    assert api.post("/api/v4/leads", json=[{"name": "x"}]).status_code == 200
    assert api.post("/api/v4/leads/complex", json=[{"name": "x"}]).status_code == 500


def test_the_same_seed_gives_the_same_faults():
    def outcomes() -> list[int]:
        with Sandbox(clock=ManualClock(), rate_limit=1000) as box:
            box.control.set_faults(error_rate=0.5, seed=42)
            box_api = Api(box.accounts[0].origin, box.control.long_lived_token())
            return [box_api.get("/api/v4/account").status_code for _ in range(20)]

    first, second = outcomes(), outcomes()

    assert first == second
    assert set(first) == {200, 500}


def test_clearing_faults_restores_normal_answers(api, control):
    control.set_faults(error_rate=1.0)
    control.clear_faults()

    assert api.get("/api/v4/account").status_code == 200


@pytest.mark.parametrize("settings", [{"error_rate": 2}, {"timeout_mode": "later"}, {"explode": True}])
def test_bad_fault_settings_are_refused(control, settings):
    with pytest.raises(Exception, match="400"):
        control.set_faults(**settings)
