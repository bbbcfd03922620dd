"""Webhook benchmark: ingest of 250-deal deliveries (one sender, then 16 concurrent) and processing into sales.

Targets (DESIGN.md / issue 6): a 250-deal delivery stored and answered in under 100 ms at p99.
Reported besides: deliveries/s at 16 concurrent senders, and processing throughput including the
API re-read under the 7 requests/second limit — one-deal deliveries (one read each) and one
250-deal delivery (one list request for all its deals).

Run: `python -m bench.webhook_ingest` (or `make bench BENCH_ARGS=webhook_ingest`). It creates and drops
its own database (`BENCH_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres, is where it
connects to create it), uses Redis database 12 (`BENCH_REDIS_URL`), starts the amoCRM sandbox in-process,
gunicorn with the production config (config/gunicorn.py) and, for the processing part, one Celery worker,
and prints a Markdown report.
"""

import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import time
from urllib.parse import urlencode, urlsplit

import psycopg
import redis
import requests

from amocrm_sandbox.control import SandboxControl
from amocrm_sandbox.harness import ROOT, Processes, free_port, wait_until
from amocrm_sandbox.server import Sandbox
from amocrm_sandbox.state import default_accounts
from bench._support import clear_redis, database_url, manage

CLIENT_ID = "bench-client-id"
CLIENT_SECRET = "bench-client-secret-0123456789abcdef"
DEALS_PER_DELIVERY = 250
SEQUENTIAL_WARMUP, SEQUENTIAL_REQUESTS = 20, 300
SENDERS, LOAD_PROCESSES = 16, 2
WARMUP_SECONDS, MEASURE_SECONDS = 3.0, 15.0
SINGLE_DEAL_MOVES = 100
TARGET_P99_MS = 100.0
WORKER_CONCURRENCY = 4


# ---------------------------------------------------------------------------- the delivery


def delivery_body(account_id: int, deal_ids: list[int], *, pipeline_id: int, last_modified: int) -> bytes:
    """A full-shape `leads[status]` delivery as amoCRM sends a bulk stage change: ~14 fields, 3 custom
    fields and 2 tags per deal, percent-encoded (about 1 KB per deal)."""
    pairs = []
    for index, deal_id in enumerate(deal_ids):
        prefix = f"leads[status][{index}]"
        pairs += [(f"{prefix}[{key}]", value) for key, value in (
            ("id", deal_id), ("name", f"Заявка с сайта: клиент {index}"), ("status_id", 142),
            ("old_status_id", 60000012), ("price", 15000 + index), ("responsible_user_id", 9000001),
            ("last_modified", last_modified), ("modified_user_id", 9000001), ("created_user_id", 0),
            ("date_create", last_modified - 86400), ("pipeline_id", pipeline_id), ("account_id", account_id),
            ("created_at", last_modified - 86400), ("updated_at", last_modified))]
        for position, (field_id, name, value) in enumerate(((7001, "utm_source", "google"),
                                                            (7002, "utm_campaign", f"spring-{index % 7}"),
                                                            (7003, "Источник", "Сайт"))):
            pairs += [(f"{prefix}[custom_fields][{position}][id]", field_id),
                      (f"{prefix}[custom_fields][{position}][name]", name),
                      (f"{prefix}[custom_fields][{position}][values][0][value]", value)]
        pairs += [(f"{prefix}[tags][0][id]", 11), (f"{prefix}[tags][0][name]", "сайт"),
                  (f"{prefix}[tags][1][id]", 12), (f"{prefix}[tags][1][name]", "bench")]
    pairs += [("account[subdomain]", "sandbox"), ("account[id]", account_id),
              ("account[_links][self]", "https://sandbox.amocrm.ru")]
    return urlencode(pairs).encode()


# ---------------------------------------------------------------------------- load generator


async def _post(reader, writer, host: str, port: int, path: str, body: bytes) -> tuple[int, bool]:
    writer.write((f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: amoCRM-WebHook-client/1.0\r\n"
                  f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n")
                 .encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        return 0, True
    length, close = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
        elif name.strip().lower() == b"connection" and value.strip().lower() == b"close":
            close = True
    await reader.readexactly(length)
    return int(status_line.split()[1]), close


async def _sender(url: str, body: bytes, *, measure_from: float, stop_at: float, samples: list,
                  max_requests: int | None = None) -> None:
    parts = urlsplit(url)
    reader = writer = None
    sent = 0
    while time.perf_counter() < stop_at and (max_requests is None or sent < max_requests):
        if writer is None:
            reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        started = time.perf_counter()
        status, close = await _post(reader, writer, parts.hostname, parts.port, parts.path, body)
        finished = time.perf_counter()
        if status == 0:  # the worker closed a kept-alive connection: reconnect and send again
            writer.close()
            reader = writer = None
            continue
        sent += 1
        if started >= measure_from:
            samples.append((finished - started, status))
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _load_process(url: str, body: bytes, senders: int, start_at: float, queue) -> None:
    samples: list = []

    async def run():
        await asyncio.sleep(max(0.0, start_at - time.time()))
        now = time.perf_counter()
        await asyncio.gather(*[_sender(url, body, measure_from=now + WARMUP_SECONDS,
                                       stop_at=now + WARMUP_SECONDS + MEASURE_SECONDS, samples=samples)
                               for _ in range(senders)])

    asyncio.run(run())
    queue.put(samples)


def _summary(samples: list, seconds: float | None = None) -> dict:
    latencies = sorted(latency * 1000 for latency, _ in samples)
    result = {"requests": len(samples), "p50": statistics.median(latencies),
              "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)], "max": latencies[-1],
              "non_200": sum(1 for _, status in samples if status != 200)}
    if seconds:
        result["per_second"] = len(samples) / seconds
    return result


def measure_sequential(url: str, body: bytes) -> dict:
    samples: list = []
    asyncio.run(_sender(url, body, measure_from=0, stop_at=float("inf"), samples=[],
                        max_requests=SEQUENTIAL_WARMUP))
    asyncio.run(_sender(url, body, measure_from=0, stop_at=float("inf"), samples=samples,
                        max_requests=SEQUENTIAL_REQUESTS))
    return _summary(samples)


def measure_concurrent(url: str, body: bytes) -> dict:
    queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    loaders = [multiprocessing.Process(target=_load_process, args=(url, body, SENDERS // LOAD_PROCESSES, start_at,
                                                                    queue)) for _ in range(LOAD_PROCESSES)]
    for loader in loaders:
        loader.start()
    samples = [sample for _ in loaders for sample in queue.get()]
    for loader in loaders:
        loader.join()
    return _summary(samples, MEASURE_SECONDS)


# ---------------------------------------------------------------------------- setup


def _api(token: str) -> requests.Session:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _create_deals(session: requests.Session, origin: str, count: int, **fields) -> list[int]:
    """Deals created through the API before the webhook is subscribed (so they send nothing)."""
    ids = []
    for start in range(0, count, 250):
        batch = [{"name": f"Bench deal {start + i}", "price": 10000 + start + i, **fields}
                 for i in range(min(250, count - start))]
        answer = session.post(origin + "/api/v4/leads", json=batch, timeout=30)
        answer.raise_for_status()
        ids += [item["id"] for item in answer.json()["_embedded"]["leads"]]
        time.sleep(0.2)  # stay far below the sandbox's 7 requests/second
    return ids


def _count(db_url: str, sql: str, *params) -> int:
    with psycopg.connect(db_url) as db:
        return db.execute(sql, params).fetchone()[0]


def main() -> int:
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
    database = f"bench_webhook_{os.getpid()}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    sandbox = Sandbox(accounts=default_accounts(1), client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                      redirect_uri=base_url + "/amocrm/oauth/callback/").start()
    account = sandbox.accounts[0]
    control = SandboxControl(account.origin)
    db_url = database_url(admin_url, database)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "config.settings", "ENV_FILE": "", "DEBUG": "false",
        "SECRET_KEY": "bench-" + "x" * 50, "FIELD_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE=",
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false", "SITE_URL": base_url,
        "DATABASE_URL": db_url, "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
        "AMOCRM_TRUSTED_HOSTS": account.origin, "AMOCRM_RATE_LIMIT": "7", "PYTHONPATH": str(ROOT),
    })
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    processes = Processes()
    try:
        # Deals first (no webhook subscribed yet): open ones to move one by one, won ones for the bulk delivery.
        setup_token = control.long_lived_token(client_id=CLIENT_ID)
        api = _api(setup_token)
        pipelines = api.get(account.origin + "/api/v4/leads/pipelines", timeout=10).json()["_embedded"]["pipelines"]
        main_pipeline = next(p["id"] for p in pipelines if p["is_main"])
        open_deals = _create_deals(api, account.origin, SINGLE_DEAL_MOVES)
        won_deals = _create_deals(api, account.origin, DEALS_PER_DELIVERY, status_id=142, pipeline_id=main_pipeline)

        manage(env, "migrate", "--noinput")
        processes.start("bench-gunicorn", [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "python:config.gunicorn",
                                           "config.wsgi", "--bind", f"127.0.0.1:{port}"], env)
        wait_until(lambda: requests.get(base_url + "/healthz/", timeout=2).status_code in (200, 503), timeout=30,
                   what="gunicorn")
        connected = json.loads(manage(env, "amocrm_connect", "--host", account.origin, "--client-id", CLIENT_ID,
                                       "--client-secret", CLIENT_SECRET, "--redirect-uri",
                                       base_url + "/amocrm/oauth/callback/", "--long-lived-token",
                                       control.long_lived_token(client_id=CLIENT_ID), "--json")
                               .strip().splitlines()[-1])
        webhook_url = connected["webhook_url"]

        # 1. Ingest, no worker running (processing would only compete for the 2 cores).
        body = delivery_body(account.account_id, list(range(90_000_000, 90_000_000 + DEALS_PER_DELIVERY)),
                             pipeline_id=main_pipeline, last_modified=int(time.time()))
        sequential = measure_sequential(webhook_url, body)
        print(f"sequential: {sequential}", flush=True)
        concurrent = measure_concurrent(webhook_url, body)
        print(f"{SENDERS} senders: {concurrent}", flush=True)
        stored = _count(db_url, "SELECT count(*) FROM amocrm_webhookevent")
        # Drop what ingest queued (fake deals), so the worker starts on the processing workload only.
        with psycopg.connect(db_url) as db:
            db.execute("UPDATE amocrm_webhookevent SET state = 'ignored'")
        queue_client = redis.Redis.from_url(redis_url)
        queue_client.delete("default")

        # 2. Processing: one worker; single-deal moves (one re-read each), then one 250-deal delivery.
        processes.start("bench-worker", [str(ROOT / ".venv" / "bin" / "celery"), "-A", "config", "worker",
                                         "--loglevel", "WARNING", "--concurrency", str(WORKER_CONCURRENCY),
                                         "--without-gossip", "--without-mingle", "--hostname",
                                         f"bench-{os.getpid()}@%h"], {**env, "LOG_LEVEL": "INFO"})
        wait_until(lambda: "ready." in processes.log("bench-worker"), timeout=60, what="the Celery worker")
        control.reset(parts=["stats", "deliveries"])
        started = time.monotonic()
        for deal_id in open_deals:
            control.move_deal(deal_id, status_id=142)
        control.deliveries(wait=True)
        wait_until(lambda: _count(db_url, "SELECT count(*) FROM sales_sale WHERE state = 'won'") == len(open_deals),
                   timeout=300, interval=0.1, what="sales from the single-deal deliveries")
        single_seconds = time.monotonic() - started
        single_stats = control.stats()

        control.reset(parts=["stats"])
        bulk = delivery_body(account.account_id, won_deals, pipeline_id=main_pipeline, last_modified=int(time.time()))
        started = time.monotonic()
        answer = requests.post(webhook_url, data=bulk, timeout=10,
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        answer.raise_for_status()
        wait_until(lambda: _count(db_url, "SELECT count(*) FROM sales_sale WHERE state = 'won'")
                   == len(open_deals) + len(won_deals), timeout=300, interval=0.05, what="sales from the bulk delivery")
        bulk_seconds = time.monotonic() - started
        bulk_stats = control.stats()
        failed = _count(db_url, "SELECT count(*) FROM amocrm_webhookevent WHERE state IN ('failed', 'rejected')")
        return report(sequential, concurrent, stored, single_seconds, single_stats, bulk_seconds, bulk_stats, failed)
    finally:
        processes.stop()
        sandbox.stop()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        clear_redis(redis_url)


def report(sequential, concurrent, stored, single_seconds, single_stats, bulk_seconds, bulk_stats, failed) -> int:
    size_kb = len(delivery_body(1, list(range(DEALS_PER_DELIVERY)), pipeline_id=1, last_modified=1)) / 1024
    ok = sequential["p99"] < TARGET_P99_MS and sequential["non_200"] == 0 and concurrent["non_200"] == 0
    print(f"\n### Ingest: {DEALS_PER_DELIVERY}-deal deliveries ({size_kb:.0f} KiB each), stored and answered\n")
    print("| senders | deliveries | deliveries/s | p50 ms | p99 ms | max ms | non-200 |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print(f"| 1 | {sequential['requests']} | — | {sequential['p50']:.1f} | {sequential['p99']:.1f} | "
          f"{sequential['max']:.1f} | {sequential['non_200']} |")
    print(f"| {SENDERS} | {concurrent['requests']} | {concurrent['per_second']:.0f} | {concurrent['p50']:.1f} | "
          f"{concurrent['p99']:.1f} | {concurrent['max']:.1f} | {concurrent['non_200']} |")
    print(f"\n{stored} deliveries stored in all. Target p99 < {TARGET_P99_MS:.0f} ms for one delivery: "
          f"{'met' if sequential['p99'] < TARGET_P99_MS else 'MISSED'}"
          f"{'' if concurrent['p99'] < TARGET_P99_MS else ' (over it while 16 senders saturate the 2 cores)'}.")
    print(f"\n### Processing into sales (one Celery worker, concurrency {WORKER_CONCURRENCY}, 7 requests/s limit)\n")
    print("| workload | deals | seconds | deals/s | amoCRM requests | 429s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(f"| {SINGLE_DEAL_MOVES} one-deal deliveries (status + update), one re-read each | {SINGLE_DEAL_MOVES} | "
          f"{single_seconds:.1f} | {SINGLE_DEAL_MOVES / single_seconds:.1f} | {single_stats['requests']} | "
          f"{single_stats['responses_429']} |")
    print(f"| one {DEALS_PER_DELIVERY}-deal delivery, one list request | {DEALS_PER_DELIVERY} | {bulk_seconds:.1f} | "
          f"{DEALS_PER_DELIVERY / bulk_seconds:.0f} | {bulk_stats['requests']} | {bulk_stats['responses_429']} |")
    print(f"\nFailed or rejected deliveries: {failed}.")
    ok &= failed == 0 and single_stats["responses_429"] == 0 and bulk_stats["responses_429"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
