"""The sandbox keeps what its accounts hold in a state file across restarts, and never hands out an id twice."""

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import requests

from amocrm_sandbox import Sandbox, default_accounts
from amocrm_sandbox.control import SandboxControl
from amocrm_sandbox.persistence import StateFileError

from .support import Api, exchange

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# Both ways of starting the sandbox from a shell; `make sandbox` is the first.
ENTRY_POINTS = {
    "python -m": [sys.executable, "-m", "amocrm_sandbox"],
    "manage.py": [sys.executable, "manage.py", "amocrm_sandbox"],
}


class SandboxProcess:
    """`amocrm_sandbox --json` in a subprocess: what it announced, and a clean Ctrl-C."""

    def __init__(self, command: list[str], env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen([*command, "--port", "0", "--json", *args], cwd=ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(timeout=10)
            raise AssertionError(f"the sandbox did not start: {self.process.stderr.read()}")
        self.announced = json.loads(line)
        self.origin = self.announced["accounts"][0]["origin"]
        self.control = SandboxControl(self.origin)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=10)
        assert self.process.returncode == 0, self.process.stderr.read()


@pytest.fixture
def shell_env(tmp_path):
    """A shell's environment on a fresh checkout: VAR_DIR of its own, no DATABASE_URL that answers, no .env."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST", "DJANGO_", "SITE_URL", "PORT"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true", "ENV_FILE": "",
                "VAR_DIR": str(tmp_path / "var"), "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none"})
    return env


@pytest.fixture
def started(request):
    running: list[SandboxProcess] = []

    def start(command: list[str], env: dict[str, str], *args: str) -> SandboxProcess:
        running.append(SandboxProcess(command, env, *args))
        return running[-1]

    yield start
    for box in running:
        if box.process.poll() is None:
            box.process.kill()
            box.process.wait(timeout=10)


def connect(box: SandboxProcess) -> tuple[Api, str]:
    """Exchange a code the way the product does: a Bearer session and the refresh token."""
    integration = type("Integration", (), box.announced)
    tokens = exchange(box.origin, integration, grant_type="authorization_code",
                      code=box.control.authorize()["code"]).json()
    return Api(box.origin, tokens["access_token"]), tokens["refresh_token"]


def create_deal(api: Api, name: str) -> int:
    answer = api.post("/api/v4/leads", json=[{"name": name, "price": 100}])
    assert answer.status_code == 200, answer.text
    return answer.json()["_embedded"]["leads"][0]["id"]


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_deals_tokens_and_webhooks_survive_a_restart_of_the_sandbox_process(started, shell_env, entry_point):
    first = started(ENTRY_POINTS[entry_point], shell_env)
    api, refresh_token = connect(first)
    deal_id = create_deal(api, "Before the restart")
    hook = api.post("/api/v4/webhooks", json={"destination": "http://127.0.0.1:9/hook/", "settings": ["status_lead"]})
    assert hook.status_code == 200, hook.text
    first.stop()
    assert (Path(shell_env["VAR_DIR"]) / "sandbox-state.json").is_file()

    second = started(ENTRY_POINTS[entry_point], shell_env)
    assert [deal["name"] for deal in second.control.leads()] == ["Before the restart"]
    assert [hook["destination"] for hook in second.control.webhooks()] == ["http://127.0.0.1:9/hook/"]
    # The site's tokens still work: no need to connect again after restarting the sandbox.
    again = Api(second.origin, api.session.headers["Authorization"].split()[1])
    assert again.get(f"/api/v4/leads/{deal_id}").json()["name"] == "Before the restart"
    refreshed = exchange(second.origin, type("Integration", (), second.announced), grant_type="refresh_token",
                         refresh_token=refresh_token)
    assert refreshed.status_code == 200, refreshed.text
    second.stop()


def test_ids_after_a_restart_are_larger_than_before_even_when_it_starts_empty(started, shell_env):
    command = ENTRY_POINTS["python -m"]
    first = started(command, shell_env)
    api, _ = connect(first)
    before = create_deal(api, "First visitor")
    first.stop()

    restarted = started(command, shell_env)
    after_restart = create_deal(connect(restarted)[0], "Second visitor")
    restarted.stop()
    assert after_restart > before

    empty = started(command, shell_env, "--fresh")
    assert empty.control.leads() == []
    after_wipe = create_deal(connect(empty)[0], "Third visitor")
    empty.stop()
    assert after_wipe > after_restart


def test_without_a_state_file_nothing_is_written(started, shell_env):
    box = started(ENTRY_POINTS["python -m"], shell_env, "--no-state")
    create_deal(connect(box)[0], "Forgotten")
    box.stop()
    assert not (Path(shell_env["VAR_DIR"]) / "sandbox-state.json").exists()


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_the_redirect_uri_follows_the_sites_port_or_site_url(started, shell_env, entry_point):
    on_port = started(ENTRY_POINTS[entry_point], {**shell_env, "PORT": "18543"}, "--no-state")
    assert on_port.announced["redirect_uri"] == "http://localhost:18543/amocrm/oauth/callback/"
    consent = requests.get(f"{on_port.announced['www_origin']}/oauth",
                           params={"client_id": on_port.announced["client_id"], "state": "s"},
                           allow_redirects=False, timeout=5)
    assert consent.headers["Location"].startswith("http://localhost:18543/amocrm/oauth/callback/?code=")
    on_port.stop()

    behind_url = started(ENTRY_POINTS[entry_point], {**shell_env, "PORT": "18543",
                                                     "SITE_URL": "https://crm.example.com/"}, "--no-state")
    assert behind_url.announced["redirect_uri"] == "https://crm.example.com/amocrm/oauth/callback/"
    behind_url.stop()


def test_the_announcement_prints_the_connect_command_with_the_redirect_uri(shell_env):
    process = subprocess.Popen([*ENTRY_POINTS["python -m"], "--port", "0", "--no-state"], cwd=ROOT,
                               env={**shell_env, "PORT": "18544"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    watchdog = threading.Timer(20, process.kill)  # never hang on an announcement that lacks the line
    watchdog.start()
    lines: list[str] = []
    try:
        while not lines or ("amocrm_connect" not in lines[-1] and lines[-1]):
            lines.append(process.stdout.readline())
    finally:
        watchdog.cancel()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    text = "".join(lines)
    assert "--redirect-uri http://localhost:18544/amocrm/oauth/callback/" in text
    assert "manage.py amocrm_connect" in text


# ---------------------------------------------------------------------------------------------
# In process: the Python API with a state file
# ---------------------------------------------------------------------------------------------


def test_a_control_api_reset_never_reuses_ids(sandbox, control, api):
    before = create_deal(api, "Before the reset")
    control.reset()
    token = control.long_lived_token()
    after = create_deal(Api(sandbox.accounts[0].origin, token), "After the reset")
    assert after > before


def test_every_change_is_on_disk_before_the_answer(tmp_path):
    state_file = tmp_path / "state.json"
    with Sandbox(accounts=default_accounts(1), state_file=state_file) as box:
        control = SandboxControl(box.accounts[0].origin)
        api = Api(box.accounts[0].origin, control.long_lived_token())
        deal_id = create_deal(api, "Written at once")
        saved = json.loads(state_file.read_text())
    deals = saved["accounts"][str(box.accounts[0].account_id)]["deals"]
    assert [(deal["id"], deal["name"]) for deal in deals] == [(deal_id, "Written at once")]


def test_a_failed_write_leaves_the_previous_state_file_whole(tmp_path, monkeypatch):
    state_file = tmp_path / "state.json"
    with Sandbox(accounts=default_accounts(1), state_file=state_file) as box:
        control = SandboxControl(box.accounts[0].origin)
        api = Api(box.accounts[0].origin, control.long_lived_token())
        create_deal(api, "Kept")
        before = state_file.read_bytes()

        def crash(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", crash)
        create_deal(api, "Lost with the crash")
        assert state_file.read_bytes() == before
        monkeypatch.undo()
    assert [path.name for path in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
    assert [deal["name"] for deal in json.loads(before)["accounts"]["31000001"]["deals"]] == ["Kept"]


def test_an_unreadable_state_file_stops_the_start_and_says_what_to_do(tmp_path, shell_env):
    state_file = tmp_path / "state.json"
    state_file.write_text("{not json")
    with pytest.raises(StateFileError, match=r"state\.json cannot be read"):
        Sandbox(accounts=default_accounts(1), state_file=state_file)

    refused = subprocess.run([*ENTRY_POINTS["python -m"], "--port", "0", "--state", str(state_file)], cwd=ROOT,
                             env=shell_env, capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0
    assert f"{state_file} cannot be read" in refused.stderr and "Traceback" not in refused.stderr
    assert state_file.read_text() == "{not json"  # left for the developer to look at
