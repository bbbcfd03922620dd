"""End-to-end harness: the amoCRM sandbox, gunicorn and a real Celery worker against PostgreSQL and Redis.

Session-scoped processes share the pytest test database (tests use `transaction=True`, so what
the test process writes is visible to them and the other way round) and the test Redis DB.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.conf import settings
from django.test import override_settings

from amocrm_sandbox.control import SandboxControl
from amocrm_sandbox.harness import ROOT, Processes, free_port, wait_until
from amocrm_sandbox.server import Sandbox
from amocrm_sandbox.state import default_accounts

REDIRECT_PATH = "/amocrm/oauth/callback/"
CLIENT_ID = "e2e-client-id"
CLIENT_SECRET = "e2e-client-secret-0123456789abcdef"


def pytest_collection_modifyitems(items):
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def e2e_ports():
    return {"web": free_port()}


@pytest.fixture(scope="session")
def site_url(e2e_ports):
    return f"http://127.0.0.1:{e2e_ports['web']}"


@pytest.fixture(scope="session")
def sandbox(site_url):
    box = Sandbox(accounts=default_accounts(2), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                  redirect_uri=site_url + REDIRECT_PATH)
    box.start()
    yield box
    box.stop()


@pytest.fixture(scope="session")
def sandbox_origins(sandbox):
    return [account.origin for account in sandbox.accounts]


@pytest.fixture(autouse=True)
def e2e_settings(sandbox, sandbox_origins, site_url):
    """During each e2e test the test process sees the configuration of the servers it started."""
    with override_settings(AMOCRM_TRUSTED_HOSTS=sandbox_origins, SITE_URL=site_url,
                           AMOCRM_OAUTH_URL=sandbox.www_origin + "/oauth"):
        yield


@pytest.fixture(scope="session")
def e2e_env(django_db_setup, django_db_blocker, sandbox, sandbox_origins, site_url):
    sandbox_www = sandbox.www_origin
    db = settings.DATABASES["default"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DEBUG": "true",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
        "SITE_URL": site_url,
        "AMOCRM_TRUSTED_HOSTS": ",".join(sandbox_origins),
        # amoCRM's consent page lives on www, not on the account host: the sandbox's www server.
        "AMOCRM_OAUTH_URL": sandbox_www + "/oauth",
        "AMOCRM_RATE_LIMIT": str(settings.AMOCRM_RATE_LIMIT),
        "LOG_LEVEL": "INFO",
        "LEAD_INTAKE_THROTTLE": "100000/min",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture(scope="session")
def processes():
    procs = Processes()
    (procs.logs / "amocrm_connect.log").write_text("")  # appended to by connect_account, per session
    yield procs
    procs.stop()


@pytest.fixture(scope="session")
def live_server_url(e2e_env, e2e_ports, site_url, processes):
    bin_dir = Path(sys.executable).parent
    # The container's configuration (JSON logs, access lines included), on a port of our own.
    processes.start("gunicorn", [str(bin_dir / "gunicorn"), "-c", "python:config.gunicorn", "config.wsgi",
                                 "--bind", f"127.0.0.1:{e2e_ports['web']}", "--workers", "2", "--threads", "4",
                                 "--timeout", "60"], e2e_env)
    wait_until(lambda: requests.get(site_url + "/healthz/", timeout=2).status_code == 200, timeout=30,
               what="gunicorn /healthz/")
    return site_url


@pytest.fixture(scope="session")
def celery_worker_proc(e2e_env, processes):
    bin_dir = Path(sys.executable).parent
    proc = processes.start("worker", [str(bin_dir / "celery"), "-A", "config", "worker", "--loglevel", "INFO",
                                      "--concurrency", "4", "--hostname", f"e2e-{os.getpid()}@%h",
                                      "--without-gossip", "--without-mingle"], e2e_env)
    wait_until(lambda: "ready." in processes.log("worker"), timeout=60, what="the Celery worker to be ready")
    assert proc.poll() is None, processes.log("worker")
    return proc


@pytest.fixture
def control(sandbox):
    ctl = SandboxControl(sandbox.accounts[0].origin)
    ctl.reset()
    yield ctl


@pytest.fixture
def connect_account(sandbox, control, live_server_url, e2e_env, processes):
    """Connect sandbox account N through the real CLI in a subprocess; returns its --json output.

    The command's logs (stderr) are kept with the servers' in var/e2e-logs/, for the secret scan.
    """
    import json

    def connect(index: int = 0, **env_extra):
        account = sandbox.accounts[index]
        code = SandboxControl(account.origin).authorize(client_id=CLIENT_ID, account_id=account.account_id)["code"]
        result = subprocess.run(
            [sys.executable, "manage.py", "amocrm_connect", "--host", account.origin, "--client-id", CLIENT_ID,
             "--client-secret", CLIENT_SECRET, "--redirect-uri", live_server_url + REDIRECT_PATH, "--code", code,
             "--json"],
            cwd=ROOT, env={**e2e_env, **env_extra}, capture_output=True, text=True, timeout=60,
        )
        with open(processes.logs / "amocrm_connect.log", "a") as log:
            log.write(result.stderr)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)  # exactly one JSON object on stdout, logs on stderr

    return connect

