"""`manage.py amocrm_sandbox` starts fast, without a database, prints what to connect with and serves."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from amocrm_sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]


def test_the_sandbox_starts_in_well_under_a_second():
    started = time.monotonic()
    box = Sandbox().start()
    elapsed = time.monotonic() - started
    try:
        assert requests.get(f"{box.accounts[0].origin}/_sandbox", timeout=2).status_code == 200
    finally:
        box.stop()
    assert elapsed < 0.5


def test_the_command_prints_origins_and_credentials_and_serves_until_interrupted(tmp_path):
    # No DATABASE_URL that answers: the command must not need one. Its state file goes to a VAR_DIR of its own.
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true",
           "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none", "VAR_DIR": str(tmp_path)}
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "amocrm_sandbox", "--port", "0", "--accounts", "2", "--account-id", "555",
         "--client-id", "cli-client", "--token-lifetime", "60", "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        announced = json.loads(process.stdout.readline())
        startup = time.monotonic() - started
        first, second = announced["accounts"]
        assert (first["account_id"], second["account_id"]) == (555, 556)
        assert announced["client_id"] == "cli-client" and announced["client_secret"]
        assert requests.get(f"{first['origin']}/api/v4/account", timeout=2).status_code == 401
        issued = requests.post(f"{second['origin']}/_sandbox/authorize", timeout=2).json()
        assert issued["referer"] == second["host"]
        # The interpreter and Django take most of this; the sandbox itself starts in milliseconds.
        assert startup < 5
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=5)
    assert process.returncode == 0, process.stderr.read()
