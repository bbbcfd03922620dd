"""Report benchmark: the sales report over 1 M leads, 100 k sales, 200 campaigns and 12 months of ad spend.

Target (issue 14): under 1 s for a month, under 3 s for a year — the admin report's whole computation
(`sales.report.sales_report`, cohorts included) and the CSV, as `manage.py sales_report` runs them.

Run: `python -m bench.report` (or `make bench BENCH_ARGS=report`); `--leads`, `--campaigns`, `--days`
change the data, `--rounds` the repetitions (the best and the median are reported), `--explain` prints
the plans of the report's queries for the year. It creates and drops its own database (through
`BENCH_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres): never point it at a
database that matters. The data comes from bench/report_data.py (INSERT … SELECT generate_series).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import psycopg

from amocrm_sandbox.harness import ROOT
from bench._support import database_url, manage

TARGETS = {"month": 1.0, "year": 3.0}
GROUPINGS = ["utm_campaign", "utm_source", "lead_source", "manager"]


def _django():
    import django

    django.setup()


def child_fill(leads: int, campaigns: int, days: int) -> dict:
    _django()
    from django.db import connection

    from amocrm.models import Account
    from bench import report_data
    from leads.models import LeadSource

    account = Account.objects.create(name="Bench", client_id="bench", client_secret="bench-secret", currency="RUB",
                                     redirect_uri="https://example.com/amocrm/oauth/callback/")
    source = LeadSource.objects.create(account=account, name="Форма на сайте")
    report_data.metadata(account=account)
    started = time.monotonic()
    with connection.cursor() as cursor:
        report_data.fill(cursor, account=account.pk, source=source.pk, leads=leads, campaigns=campaigns, days=days)
    return {"fill_seconds": time.monotonic() - started}


def _run_once(period: str, group_by: str, attribution: str) -> tuple[float, list[str]]:
    from datetime import timedelta

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from sales import report_output
    from sales.report import sales_report

    today = timezone.localdate()
    date_from = today.replace(day=1) if period == "month" else today - timedelta(days=364)
    with CaptureQueriesContext(connection) as queries:
        started = time.monotonic()
        report = sales_report(date_from=date_from, date_to=today, group_by=group_by, attribution=attribution)
        report_output.report_csv(report)
        report_output.charts(report)
        seconds = time.monotonic() - started
    return seconds, [query["sql"] for query in queries.captured_queries]


def child_measure(rounds: int, explain: bool) -> dict:
    _django()
    from django.db import connection

    results = []
    plans = []
    for period in TARGETS:
        for group_by in GROUPINGS:
            for attribution in (["last", "first"] if group_by == "utm_campaign" else ["last"]):
                _run_once(period, group_by, attribution)  # warm the caches, as a page viewed twice is
                times = [_run_once(period, group_by, attribution)[0] for _ in range(rounds)]
                results.append({"period": period, "group_by": group_by, "attribution": attribution,
                                "best": min(times), "median": statistics.median(times)})
    if explain:
        _, sqls = _run_once("year", "utm_campaign", "last")
        from django.db import transaction

        with transaction.atomic(), connection.cursor() as cursor:
            for sql in sqls:
                if sql.startswith("SET LOCAL"):  # as the report runs them
                    cursor.execute(sql)
                if sql.startswith("SELECT"):
                    cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING ON) " + sql)
                    plans.append({"sql": sql, "plan": [row[0] for row in cursor.fetchall()]})
    return {"results": results, "plans": plans}


def _child(env: dict, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "bench.report", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=3600)
    if result.returncode:
        raise RuntimeError(f"bench.report {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.report")
    parser.add_argument("--leads", type=int, default=1_000_000, help="leads (default 1,000,000; a tenth are won)")
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--days", type=int, default=365, help="days of leads and of spend (default 365)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--explain", action="store_true", help="print the plans of the year's queries")
    parser.add_argument("--child", choices=["fill", "measure"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "fill":
        print(json.dumps(child_fill(args.leads, args.campaigns, args.days)))
        return 0
    if args.child == "measure":
        print(json.dumps(child_measure(args.rounds, args.explain)))
        return 0

    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database = f"bench_report_{os.getpid()}"
    db_url = database_url(admin_url, database)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "false",
                "SECRET_KEY": "bench-" + "x" * 50, "TIME_ZONE": "Europe/Moscow",
                "FIELD_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE=", "ALLOWED_HOSTS": "127.0.0.1",
                "DATABASE_URL": db_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        manage(env, "migrate", "--noinput")
        fill = _child(env, "--child", "fill", "--leads", str(args.leads), "--campaigns", str(args.campaigns),
                      "--days", str(args.days))
        with psycopg.connect(db_url, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
            counts = {table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 — fixed names
                      for table in ("leads_lead", "sales_sale", "sales_dealloss", "sales_adspend")}
        print(f"filled in {fill['fill_seconds']:.0f}s: {counts}", flush=True)
        measured = _child(env, "--child", "measure", "--rounds", str(args.rounds), *(["--explain"] * args.explain))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return report(measured)


def report(measured: dict) -> int:
    print("\n| period | group by | attribution | best s | median s | target s |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    missed = []
    for row in measured["results"]:
        target = TARGETS[row["period"]]
        print(f"| {row['period']} | {row['group_by']} | {row['attribution']} | {row['best']:.3f} | "
              f"{row['median']:.3f} | {target} |")
        if row["median"] > target:
            missed.append(row)
    for plan in measured["plans"]:
        print("\n```sql\n" + plan["sql"][:600] + "\n```\n```\n" + "\n".join(plan["plan"]) + "\n```")
    print("\nTarget " + ("met." if not missed else f"MISSED by {len(missed)} runs."))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
