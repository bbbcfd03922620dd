"""Prune benchmark: 3 M sync-log rows (2.8 M past the retention) linked to leads, then the periodic prune.

Target (issue 10, item 17): the prune runs in constant memory — the process that runs it stays under
TARGET_PEAK_RSS_MB at its peak — and holds no lock for long: every batch commits on its own. The
collector-based prune it replaced took 159 s and 8.5 GB of RSS on the same data.

Run: `python -m bench.prune` (or `make bench BENCH_ARGS=prune`); `--rows`, `--old` and `--links-per-row` change
the data, `--batch` the prune's batch size, `--legacy` runs Django's `QuerySet.delete()` instead (the old
prune: needs ~9 GB of free memory at the default size). It creates and drops its own database
(`BENCH_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres, is where it connects to create it):
never point it at a database that matters. The fill is server-side (INSERT … SELECT generate_series); the
prune runs in a process of its own, which reports its own peak RSS.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import psycopg

from amocrm_sandbox.harness import ROOT
from bench._support import database_url, manage

TARGET_PEAK_RSS_MB = 250
RETENTION_DAYS = 30
LEADS = 10_000

FILL_SYNC_LOG = """
INSERT INTO amocrm_synclog (account_id, created_at, operation, direction, status, method, path, http_status,
                            duration_ms, amocrm_request_id, request_body, response_body, error, context)
SELECT %(account)s,
       -- the first `old` rows spread over the 60 days before the retention, the rest over the last day
       CASE WHEN g <= %(old)s THEN now() - make_interval(days => %(retention)s + 1 + g %% 60, secs => g %% 86400)
            ELSE now() - make_interval(secs => g %% 86400) END,
       'leads.complex', 'outbound', 'ok', 'POST', '/api/v4/leads/complex', 200, 120 + g %% 300,
       md5(g::text), '[{"name": "' || repeat('Заявка с сайта ', 30) || '", "price": ' || g || '}]',
       '[{"id": ' || g || ', "contact_id": ' || (g * 7) || ', "request_id": ["' || g || '"]}]', '',
       jsonb_build_object('leads', jsonb_build_array(md5(g::text)))
FROM generate_series(1, %(rows)s) AS g
"""
FILL_LINKS = """
INSERT INTO leads_lead_sync_logs (lead_id, synclog_id)
SELECT lead.id, log.id
FROM amocrm_synclog AS log
CROSS JOIN generate_series(0, %(links)s - 1) AS k
JOIN (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM leads_lead) AS lead
  ON lead.n = (log.id * %(links)s + k) %% %(leads)s
"""


# ---------------------------------------------------------------------------- child processes (Django set up)


def _django():
    import django

    django.setup()


def child_fill(rows: int, old: int, links: int) -> dict:
    """Create an account, a lead source and LEADS leads through the ORM; the sync log and its links in SQL."""
    _django()
    from django.db import connection

    from amocrm.models import Account
    from leads.models import Lead, LeadSource

    account = Account.objects.create(name="Bench", client_id="bench", client_secret="bench-secret",
                                     redirect_uri="https://example.com/amocrm/oauth/callback/")
    source = LeadSource.objects.create(account=account, name="Bench form")
    Lead.objects.bulk_create([Lead(account=account, source=source, name=f"Клиент {i}", phone=f"+7913{i:07d}")
                              for i in range(LEADS)], batch_size=2000)
    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(FILL_SYNC_LOG, {"account": account.pk, "old": old, "rows": rows, "retention": RETENTION_DAYS})
        cursor.execute(FILL_LINKS, {"links": links, "leads": LEADS})
    seconds = time.monotonic() - started
    connection.close()
    return {"fill_seconds": seconds}


def child_prune(batch: int, legacy: bool) -> dict:
    """Run the prune as the periodic task does; report its time, the longest DELETE and this process's peak RSS."""
    import resource

    _django()  # (again: a no-op) the baseline below is measured with Django and the models loaded
    from amocrm import services
    from amocrm.models import SyncLog

    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    longest = [0.0]
    real_delete = services._delete_ids

    def timed_delete(cursor, table, column, ids):
        started = time.monotonic()
        real_delete(cursor, table, column, ids)
        longest[0] = max(longest[0], time.monotonic() - started)

    services._delete_ids = timed_delete
    started = time.monotonic()
    if legacy:
        from datetime import timedelta

        from django.utils import timezone

        _, by_model = SyncLog.objects.filter(created_at__lt=timezone.now() - timedelta(days=RETENTION_DAYS)).delete()
        deleted = by_model.get(SyncLog._meta.label, 0)  # the total counts the link rows too
    else:
        deleted = services.sync_log_prune(older_than_days=RETENTION_DAYS, batch_size=batch)
    seconds = time.monotonic() - started
    return {"deleted": deleted, "prune_seconds": seconds, "longest_delete_seconds": None if legacy else longest[0],
            "baseline_rss_mb": baseline, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


# ---------------------------------------------------------------------------- orchestration


def _child(env: dict, *args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "bench.prune", *args], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=3600)
    if result.returncode:
        raise RuntimeError(f"bench.prune {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _count(db_url: str, sql: str) -> int:
    with psycopg.connect(db_url) as db:
        return db.execute(sql).fetchone()[0]


def _size_mb(db_url: str) -> float:
    with psycopg.connect(db_url) as db:
        return db.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.prune")
    parser.add_argument("--rows", type=int, default=3_000_000, help="sync-log rows (default 3,000,000)")
    parser.add_argument("--old", type=int, default=2_800_000, help="of which past the retention (default 2,800,000)")
    parser.add_argument("--links-per-row", type=int, default=1, help="lead links per sync-log row (default 1)")
    parser.add_argument("--batch", type=int, default=None, help="prune batch size (default: the service's)")
    parser.add_argument("--legacy", action="store_true", help="prune with QuerySet.delete(), as before issue 10")
    parser.add_argument("--child", choices=["fill", "prune"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child == "fill":
        print(json.dumps(child_fill(args.rows, args.old, args.links_per_row)))
        return 0
    if args.child == "prune":
        _django()
        from amocrm.services import PRUNE_BATCH

        print(json.dumps(child_prune(args.batch or PRUNE_BATCH, args.legacy)))
        return 0

    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    database = f"bench_prune_{os.getpid()}"
    db_url = database_url(admin_url, database)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    # DEBUG off, as in production: with it on, Django keeps the last 9,000 queries in memory.
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "false",
                "SECRET_KEY": "bench-" + "x" * 50,
                "FIELD_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE=", "ALLOWED_HOSTS": "127.0.0.1",
                "DATABASE_URL": db_url, "REDIS_URL": "", "LOG_LEVEL": "WARNING", "PYTHONPATH": str(ROOT)})
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        manage(env, "migrate", "--noinput")
        common = ["--rows", str(args.rows), "--old", str(args.old), "--links-per-row", str(args.links_per_row)]
        fill = _child(env, "--child", "fill", *common)
        with psycopg.connect(db_url, autocommit=True) as db:
            db.execute("VACUUM ANALYZE")
        before = {"rows": _count(db_url, "SELECT count(*) FROM amocrm_synclog"),
                  "links": _count(db_url, "SELECT count(*) FROM leads_lead_sync_logs"), "size_mb": _size_mb(db_url)}
        print(f"filled: {before} in {fill['fill_seconds']:.0f}s", flush=True)
        prune_args = ["--child", "prune", *(["--batch", str(args.batch)] if args.batch else []),
                      *(["--legacy"] if args.legacy else [])]
        pruned = _child(env, *prune_args)
        after = {"rows": _count(db_url, "SELECT count(*) FROM amocrm_synclog"),
                 "links": _count(db_url, "SELECT count(*) FROM leads_lead_sync_logs"),
                 "leads": _count(db_url, "SELECT count(*) FROM leads_lead")}
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return report(args, fill, before, pruned, after)


def report(args, fill: dict, before: dict, pruned: dict, after: dict) -> int:
    expected_rows = args.rows - args.old
    ok_rows = pruned["deleted"] == args.old and after["rows"] == expected_rows
    ok_links = after["links"] == expected_rows * args.links_per_row and after["leads"] == LEADS
    ok_memory = pruned["peak_rss_mb"] <= TARGET_PEAK_RSS_MB
    method = "QuerySet.delete() (legacy)" if args.legacy else f"batches of {args.batch or 'the default size'}"
    longest = pruned["longest_delete_seconds"]
    columns = [
        ("sync-log rows", f"{before['rows']:,}"),
        ("of them old", f"{args.old:,}"),
        ("lead links", f"{before['links']:,}"),
        ("database", f"{before['size_mb']:,.0f} MB"),
        ("fill s", f"{fill['fill_seconds']:.0f}"),
        ("deleted", f"{pruned['deleted']:,}"),
        ("prune s", f"{pruned['prune_seconds']:.1f}"),
        ("rows/s", f"{pruned['deleted'] / max(pruned['prune_seconds'], 1e-9):,.0f}"),
        ("longest DELETE s", "—" if longest is None else f"{longest:.3f}"),
        ("peak RSS MB (at start)", f"{pruned['peak_rss_mb']:.0f} ({pruned['baseline_rss_mb']:.0f})"),
    ]
    print(f"\n## Prune ({method})\n")
    print("| " + " | ".join(name for name, _ in columns) + " |")
    print("| " + " | ".join("---:" for _ in columns) + " |")
    print("| " + " | ".join(value for _, value in columns) + " |")
    print(f"""
- Old rows and their links deleted, recent ones and every lead kept: {'yes' if ok_rows and ok_links else 'NO'}
  ({after['rows']:,} rows, {after['links']:,} links, {after['leads']:,} leads left).
- Peak RSS of the pruning process ≤ {TARGET_PEAK_RSS_MB} MB: {'met' if ok_memory else 'MISSED'}.
""", flush=True)
    return 0 if ok_rows and ok_links and ok_memory else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
