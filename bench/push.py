"""Push benchmark: pending leads through a real Celery worker into the amoCRM sandbox at 7 requests/second.

Runs of 300 leads: deal mode with new people (target ≤ 1.05 amoCRM requests per lead), deal mode with the
same people returning, and unsorted mode (target ≤ 0.05); then the routing features (issue 13): new people
with a task per deal, returning people with the "attach to the open deal" policy (every lead becomes a note
on its person's open deal), and new people with the attach policy and tasks. In all: 0 × 429 and 0
duplicate deals or contacts. Leads/s is measured from queueing the push to the last lead sent with its
note and task.

Run: `python -m bench.push` (or `make bench BENCH_ARGS=push`). It creates and drops its own database
(`BENCH_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres), uses Redis database 13
(`BENCH_REDIS_URL`), starts the sandbox in this process and the worker as a subprocess.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from amocrm_sandbox.harness import ROOT, Processes, free_port, wait_until
from bench._support import clear_redis, database_url

LEADS = 300
TARGET_NEW = 1.05
TARGET_UNSORTED = 0.05
CLIENT_ID = "bench-client-id"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef"


def people(start: int, count: int) -> list[dict]:
    return [{"name": f"Клиент {index}", "phone": f"+7913{index:07d}", "email": f"client{index}@example.com"}
            for index in range(start, start + count)]


def run(label: str, source, crowd: list[dict], control, account_id: int) -> dict:
    """Store one pending lead per person, queue one push, wait until every lead and note is in amoCRM."""
    from django.utils import timezone

    from config.queue import publish
    from leads.models import Lead
    from leads.tasks import push_account_leads

    before = control.stats()
    now = timezone.now()
    Lead.objects.bulk_create([
        Lead(source=source, account_id=account_id, name=person["name"], phone=person["phone"], email=person["email"],
             message=f"Перезвоните, пожалуйста ({label})", utm_source="bench", utm_campaign=label, created_at=now)
        for person in crowd])
    started = time.monotonic()
    assert publish(push_account_leads, account_id)
    wait_until(lambda: not Lead.objects.filter(source=source, created_at=now).exclude(
        status=Lead.Status.SENT, note_pending=False, task_pending=False).exists(), timeout=600, interval=0.2,
        what=f"{label}: all sent")
    elapsed = time.monotonic() - started
    after = control.stats()
    requests = after["requests"] - before["requests"]
    paths = {path: count - before["paths"].get(path, 0) for path, count in after["paths"].items()
             if count - before["paths"].get(path, 0)}
    return {"label": label, "leads": len(crowd), "seconds": elapsed, "leads_per_second": len(crowd) / elapsed,
            "requests": requests, "per_lead": requests / len(crowd), "paths": paths,
            "429": after["responses_429"] - before["responses_429"], "peak_rps": after["peak_rps"]}


def main() -> int:
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    database = f"bench_push_{os.getpid()}"
    # Nothing listens there: the sandbox's webhooks to us fail fast, as this benchmark runs no web server.
    site_url = f"http://127.0.0.1:{free_port()}"

    from amocrm_sandbox.control import SandboxControl
    from amocrm_sandbox.server import Sandbox
    from amocrm_sandbox.state import default_accounts

    sandbox = Sandbox(accounts=default_accounts(1), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                      redirect_uri=site_url + "/amocrm/oauth/callback/").start()
    origin = sandbox.accounts[0].origin
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "true", "SITE_URL": site_url,
        "DATABASE_URL": database_url(admin_url, database), "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
        "AMOCRM_TRUSTED_HOSTS": origin, "AMOCRM_RATE_LIMIT": "7", "PYTHONPATH": str(ROOT),
    })
    os.environ.update(env)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    processes = Processes()
    try:
        subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                       capture_output=True)
        control = SandboxControl(origin)
        code = control.authorize(client_id=CLIENT_ID)["code"]
        connected = subprocess.run(
            [sys.executable, "manage.py", "amocrm_connect", "--host", origin, "--client-id", CLIENT_ID,
             "--client-secret", CLIENT_SECRET, "--redirect-uri", site_url + "/amocrm/oauth/callback/", "--code", code,
             "--json"], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        account_id = json.loads(connected.stdout.strip().splitlines()[-1])["account"]

        import django

        django.setup()
        from leads.models import LeadSource

        processes.start("bench-worker", [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker",
                                         "--concurrency", "2", "--without-gossip", "--without-mingle",
                                         "--hostname", f"bench-push-{os.getpid()}@%h"], {**env, "LOG_LEVEL": "INFO"})
        wait_until(lambda: "ready." in processes.log("bench-worker"), timeout=60, what="the Celery worker")
        deal_source = LeadSource.objects.get(account_id=account_id, is_default=True)
        unsorted_source = LeadSource.objects.create(account_id=account_id, name="Incoming", mode="unsorted",
                                                    form_id="bench-form")
        tasks_source = LeadSource.objects.create(account_id=account_id, name="Tasks", task_enabled=True)
        attach_source = LeadSource.objects.create(account_id=account_id, name="Attach", dedup_policy="attach")
        attach_tasks_source = LeadSource.objects.create(account_id=account_id, name="Attach + tasks",
                                                        dedup_policy="attach", task_enabled=True)
        crowd = people(0, LEADS)
        routed = people(2 * LEADS, LEADS)
        results = [
            run("deal mode, new contacts", deal_source, crowd, control, account_id),
            run("deal mode, returning contacts", deal_source, crowd, control, account_id),
            run("unsorted mode", unsorted_source, people(LEADS, LEADS), control, account_id),
            run("new contacts, tasks on", tasks_source, routed, control, account_id),
            run("returning contacts, attach policy (all attached)", attach_source, routed, control, account_id),
            run("new contacts, attach policy + tasks", attach_tasks_source, people(3 * LEADS, LEADS), control,
                account_id),
        ]
        duplicates = control.duplicates(tag_prefix="lead-")
        return report(results, duplicates, control.stats())
    finally:
        processes.stop()
        sandbox.stop()
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        clear_redis(redis_url)


def report(results: list[dict], duplicates: dict, stats: dict) -> int:
    print("\n| run | leads | leads/s | amoCRM requests | requests/lead | 429s | requests by path |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for result in results:
        paths = ", ".join(f"{path} {count}" for path, count in sorted(result["paths"].items()))
        print(f"| {result['label']} | {result['leads']} | {result['leads_per_second']:.2f} | {result['requests']} | "
              f"{result['per_lead']:.3f} | {result['429']} | {paths} |")
    extra_contacts = duplicates["contacts"]["extra_contacts"]
    extra_deals = duplicates["leads"]["extra_leads"]
    print(f"\nDuplicates: {extra_contacts} extra contacts, {extra_deals} extra deals "
          f"(of {duplicates['contacts']['total']} contacts, {duplicates['leads']['total']} deals). "
          f"Sandbox: {stats['responses_429']} × 429, {stats['responses_403']} × 403, "
          f"peak {stats['peak_rps']} requests in one second.")
    new, unsorted = results[0], results[2]
    ok = (new["per_lead"] <= TARGET_NEW and unsorted["per_lead"] <= TARGET_UNSORTED and stats["responses_429"] == 0
          and extra_contacts == 0 and extra_deals == 0)
    print(f"Targets: new contacts ≤ {TARGET_NEW} requests/lead, unsorted ≤ {TARGET_UNSORTED}, 0 × 429, "
          f"0 duplicates: {'met' if ok else 'MISSED'}.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
