"""`make run` (bin/run-dev) under a burst: 100 amoCRM webhook deliveries and 100 form posts at once, all stored."""

import json
import signal
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import pytest

from tests.sales.builders import AMO_ACCOUNT_ID, FORM, delivery, lead_event

from .support import clean_env, free_port, http_get, run_python, wait_for

pytestmark = pytest.mark.slow
BURST = 100

# Run in the run-dev's own (SQLite) database: an account to deliver webhooks to, and a lead source.
SET_UP = f"""
import django, json; django.setup()
from leads.models import LeadSource
from tests.factories import make_account
account = make_account(amocrm_account_id={AMO_ACCOUNT_ID})
source = LeadSource.objects.create(account=account, name="Burst", success_url="https://shop.example/thanks")
print(json.dumps({{"webhook": account.webhook_path, "key": source.public_key, "secret": source.hook_secret}}))
"""
COUNT = """
import django, json; django.setup()
from amocrm.models import WebhookEvent
from leads.models import Lead
print(json.dumps({"events": WebhookEvent.objects.count(), "leads": Lead.objects.count(),
                  "phones": sorted(Lead.objects.values_list("phone", flat=True))}))
"""


def post(url: str, body: bytes, headers: dict[str, str]) -> int | str:
    """The status, or the socket error's name: a reset or a refusal is an answer that never came."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as answer:
        return answer.code
    except OSError as exc:
        return type(getattr(exc, "reason", exc)).__name__


def test_make_run_answers_and_stores_a_burst_of_webhooks_and_form_posts(start_process, tmp_path):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # Every post comes from 127.0.0.1 here, unlike 100 visitors: lift the per-IP limit for the burst.
    env = clean_env(PORT=str(port), VAR_DIR=str(tmp_path / "var"), SECRET_KEY="burst-" * 10, LOG_LEVEL="WARNING",
                    LEAD_INTAKE_THROTTLE="10000/min", SITE_URL=base)
    del env["DJANGO_SETTINGS_MODULE"]
    run = start_process("run-dev", ["bin/run-dev"], env)

    def up():
        run.assert_running()
        try:
            return http_get(f"{base}/healthz/", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=60, what="/healthz/ to answer 200", output=run.output)
    shell = dict(env, DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings")
    made = run_python(SET_UP, shell)
    assert made.returncode == 0, made.stderr
    ids = json.loads(made.stdout.strip().splitlines()[-1])

    browser = {"Content-Type": FORM, "Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    jobs = []
    for n in range(BURST):
        body = delivery(lead_event("status", 50000 + n, status_id=142, last_modified=1700000000 + n))
        jobs.append((base + ids["webhook"], body, {"Content-Type": FORM}))
        phone = f"+7912{n:07d}"
        if n % 2:  # half from a plain HTML form, half from a form builder's hook
            form = urlencode({"source": ids["key"], "name": f"Visitor {n}", "phone": phone}).encode()
            jobs.append((f"{base}/api/leads/", form, browser))
        else:
            form = urlencode({"Name": f"Visitor {n}", "Phone": phone, "tranid": f"burst:{n}"}).encode()
            jobs.append((f"{base}/api/leads/hook/{ids['secret']}/", form, {"Content-Type": FORM}))
    start = threading.Barrier(len(jobs))

    def fire(job):
        start.wait(timeout=60)  # all at once
        return post(*job)

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        answers = list(pool.map(fire, jobs))

    webhooks, forms = answers[0::2], answers[1::2]
    assert webhooks == [200] * BURST
    assert forms == [201 if n % 2 == 0 else 303 for n in range(BURST)]
    counted = run_python(COUNT, shell)
    assert counted.returncode == 0, counted.stderr
    stored = json.loads(counted.stdout.strip().splitlines()[-1])
    assert (stored["events"], stored["leads"]) == (BURST, BURST)
    assert stored["phones"] == sorted(f"+7912{n:07d}" for n in range(BURST))

    servers = [command for command in run.children().values() if "gunicorn" in command]
    assert servers and not any("--reload" in command for command in servers)  # reloading only when asked
    run.popen.send_signal(signal.SIGINT)
    run.popen.wait(timeout=30)
    wait_for(lambda: not run.children(), timeout=5, what="every child to exit", output=run.output)


def test_make_run_reloads_on_code_changes_only_when_asked(start_process, tmp_path):
    port = free_port()
    env = clean_env(PORT=str(port), VAR_DIR=str(tmp_path / "var"), SECRET_KEY="reload-" * 10, LOG_LEVEL="WARNING",
                    RELOAD="1")
    del env["DJANGO_SETTINGS_MODULE"]
    run = start_process("run-dev", ["bin/run-dev"], env)

    def up():
        run.assert_running()
        try:
            return http_get(f"http://127.0.0.1:{port}/healthz/", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=60, what="/healthz/ to answer 200", output=run.output)
    servers = [command for command in run.children().values() if "gunicorn" in command]
    assert servers and all("--reload" in command for command in servers)
    assert "reloading on code changes" in run.output()
    run.popen.send_signal(signal.SIGINT)
    run.popen.wait(timeout=30)
    wait_for(lambda: not run.children(), timeout=5, what="every child to exit", output=run.output)
