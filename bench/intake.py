"""Intake benchmark: POST /api/leads/ and the form-builder hook at 32 concurrent clients against gunicorn +
PostgreSQL + Redis, side by side with a bare one-INSERT view in the same run.
Targets (DESIGN.md): ≥ 70 % of the bare view's requests/s, p99 < 50 ms.

Run: `python -m bench.intake` (or `make bench BENCH_ARGS=intake`). It creates and drops its own database
(`BENCH_DATABASE_URL`, default postgres://postgres@127.0.0.1:5432/postgres, is where it connects to create it),
uses Redis database 13 (`BENCH_REDIS_URL`), starts gunicorn with the production config (config/gunicorn.py) and
the benchmark's settings (bench/settings.py: the product's, plus the bare view's URL), and prints a Markdown
report. The load comes from 2 processes × 16 keep-alive connections of raw HTTP/1.1. `--rounds`, `--seconds`,
`--fixed-seconds` and `--warmup` shorten a run that only has to prove the benchmark still works
(`python -m bench.intake --rounds 1 --seconds 2 --fixed-seconds 2 --warmup 1`); its figures mean nothing.
`--only hook` measures just the bare view and the hook variants (the /api/leads/ ones are skipped).
"""

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

from amocrm_sandbox.harness import ROOT, Processes, free_port, wait_until
from bench._support import clear_redis, database_url, manage

CLIENTS = 32
LOAD_PROCESSES = 2
WARMUP_SECONDS = 3.0
MEASURE_SECONDS = 10.0
# The fixed-load run is longer: its p99 is the 60th worst of ~6000 answers, not one stall of the shared host.
FIXED_SECONDS = 30.0
# Endpoints take turns, round after round: a slow spell of the shared host falls on all of them alike.
ROUNDS = 4
# Latency is judged at a fixed offered load well under either endpoint's capacity: with 32 clients that
# never pause, every request waits behind the 31 others, so latency is just 32 / throughput.
FIXED_RATE = 200.0
TARGET_SHARE = 0.70
TARGET_P99_MS = 50.0

HOOK = "/api/leads/hook/{secret}/"
VARIANTS = [
    # (label, path, send an Idempotency-Key like the embed snippet does, body: our JSON or Tilda's form)
    ("bare view: one INSERT", "/bench/bare-insert/", False, "json"),
    ("POST /api/leads/ (JSON)", "/api/leads/", False, "json"),
    ("POST /api/leads/ (JSON + Idempotency-Key, as the embed snippet)", "/api/leads/", True, "json"),
    ("POST hook (our JSON)", HOOK, False, "json"),
    ("POST hook (Tilda's form body with tranid and COOKIES)", HOOK, False, "tilda"),
]
TILDA_COOKIES = ("_ym_uid%3D1700000000123456789%3B+_ga%3DGA1.1.123456789.1700000000%3B+TILDAUTM%3Dutm_source"
                 "%253Dbench%257C%257C%257Cutm_medium%253Dcpc%257C%257C%257C")


def request_body(key: str, phone: str, tag: str, sequence: int, style: str) -> tuple[bytes, str]:
    """One lead's body and content type; a unique message each, so no two are collapsed as a double click."""
    if style == "tilda":
        body = (f"Name=Bench+Visitor&Phone={phone.replace('+', '%2B').replace(' ', '+')}&Email=v{tag}%40example.com"
                f"&Textarea=Benchmark+lead+{tag}-{sequence}&formid=form1&tranid={tag}:{sequence}"
                f"&COOKIES={TILDA_COOKIES}")
        return body.encode(), "application/x-www-form-urlencoded"
    body = (f'{{"source": "{key}", "name": "Bench Visitor", "phone": "{phone}", "email": "v{tag}@example.com", '
            f'"message": "Benchmark lead {tag}-{sequence}", "utm_source": "bench", '
            f'"page_url": "https://shop.example/"}}')
    return body.encode(), "application/json"


def lead_tag(run: str, variant: int) -> str:
    """What makes a run's leads its own: the variant too, or an endpoint would post the leads the one measured
    just before it posted (same phone, e-mail and message) and, within the 10 s double-click window, have them
    collapsed into those instead of storing its own (a keyed one then also looks its key up)."""
    return f"{run}v{variant}p"


# ---------------------------------------------------------------------------- load generator


async def _one_client(host: str, port: int, path: str, key: str, with_key: bool, style: str, tag: str,
                      start_measuring: float, stop_at: float, samples: list, interval: float | None,
                      offset: float) -> None:
    """Closed loop (`interval` None: the next request as soon as the answer is in), or one request every
    `interval` seconds, its latency counted from when it was due (a late answer delays the next one,
    and that delay counts too)."""
    reader = writer = None
    sequence = 0
    due = time.perf_counter() + offset
    while time.perf_counter() < stop_at:
        if interval is not None:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if writer is None:
            reader, writer = await asyncio.open_connection(host, port)
        sequence += 1
        phone = f"+7 912 {sequence % 1000:03d}-{sequence // 1000 % 100:02d}-{sequence % 97:02d}"
        body, content_type = request_body(key, phone, tag, sequence, style)
        headers = f"Idempotency-Key: {uuid.uuid4().hex}\r\n" if with_key else ""
        request = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
                   f"Content-Length: {len(body)}\r\n{headers}\r\n").encode() + body
        started = due if interval is not None else time.perf_counter()
        due += interval or 0
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:  # the server closed the connection (worker recycled): reconnect, send again
            writer.close()
            reader = writer = None
            continue
        length, close = 0, False
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
        finished = time.perf_counter()
        if started >= start_measuring:
            samples.append((finished - started, int(status_line.split()[1])))
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


def _load_process(base_url: str, path: str, key: str, with_key: bool, style: str, connections: int, process: int,
                  tag: str, start_at: float, rate: float | None, seconds: float, warmup: float, queue) -> None:
    parts = urlsplit(base_url)
    samples: list = []

    async def run():
        # Every process starts its clock at the same wall time, so the measured windows line up.
        await asyncio.sleep(max(0.0, start_at - time.time()))
        now = time.perf_counter()
        measure_from, stop_at = now + warmup, now + warmup + seconds
        interval = CLIENTS / rate if rate else None
        await asyncio.gather(*[_one_client(parts.hostname, parts.port, path, key, with_key, style, f"{tag}.{index}",
                                           measure_from, stop_at, samples, interval,
                                           (interval or 0) * (process * connections + index) / CLIENTS)
                             for index in range(connections)])

    asyncio.run(run())
    queue.put(samples)


CPU_GROUPS = (("gunicorn", "web"), ("postgres", "postgres"), ("redis-server", "redis"))


def cpu_seconds() -> dict[str, float]:
    """CPU time used so far by every process on the machine, summed by what it is: web (gunicorn), postgres,
    redis, and other (the load generator, mostly)."""
    ticks = os.sysconf("SC_CLK_TCK")
    totals = dict.fromkeys([group for _, group in CPU_GROUPS] + ["other"], 0.0)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it exited meanwhile
            continue
        name, fields = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()
        group = next((group for prefix, group in CPU_GROUPS if name.startswith(prefix)), "other")
        totals[group] += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return totals


def _cpu_during(start: float, stop: float, into: dict) -> None:
    time.sleep(max(0.0, start - time.time()))
    before = cpu_seconds()
    time.sleep(max(0.0, stop - time.time()))
    after = cpu_seconds()
    into.update({group: after[group] - before[group] for group in before})


def measure(base_url: str, path: str, key: str, with_key: bool, tag: str, rate: float | None = None,
            seconds: float = MEASURE_SECONDS, warmup: float = WARMUP_SECONDS, style: str = "json") -> dict:
    queue = multiprocessing.Queue()
    start_at = time.time() + 1.0
    cpu: dict[str, float] = {}
    # The load processes start their clocks at `start_at`: the CPU is read over the same measured window.
    sampler = threading.Thread(target=_cpu_during, args=(start_at + warmup, start_at + warmup + seconds, cpu))
    sampler.start()
    workers = [multiprocessing.Process(target=_load_process, args=(
        base_url, path, key, with_key, style, CLIENTS // LOAD_PROCESSES, index, f"{tag}{index}", start_at, rate,
        seconds, warmup, queue))
        for index in range(LOAD_PROCESSES)]
    for worker in workers:
        worker.start()
    samples = [sample for _ in workers for sample in queue.get()]
    for worker in workers:
        worker.join()
    sampler.join()
    latencies = sorted(latency * 1000 for latency, _ in samples)
    errors = sum(1 for _, status in samples if status != 201)
    return {
        "rps": len(samples) / seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "errors": errors,
        "requests": len(samples),
        # CPU milliseconds per answered request, by process group
        "cpu_ms": {group: seconds * 1000 / max(1, len(samples)) for group, seconds in cpu.items()},
    }


# ---------------------------------------------------------------------------- setup


SETUP = """
from amocrm.models import Account
from leads.models import LeadSource
account = Account.objects.create(name="Bench", host="https://bench.amocrm.ru", client_id="c", client_secret="s",
                                 redirect_uri="https://example.com/cb")
source = LeadSource.objects.create(account=account, name="Bench form")
print(source.public_key, source.hook_secret)
"""


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="closed-loop rounds per endpoint")
    parser.add_argument("--seconds", type=float, default=MEASURE_SECONDS, help="measured seconds of one round")
    parser.add_argument("--fixed-seconds", type=float, default=FIXED_SECONDS, help="seconds of the fixed-load run")
    parser.add_argument("--warmup", type=float, default=WARMUP_SECONDS, help="warm-up seconds before each run")
    parser.add_argument("--only", choices=["hook"], help="only the bare view and the hook variants")
    options = parser.parse_args(argv)
    variants = [v for v in VARIANTS if not options.only or v[1] in (HOOK, VARIANTS[0][1])]
    admin_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
    database = f"bench_intake_{os.getpid()}"
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTEST", "DJANGO_"))}
    env.update({
        "DJANGO_SETTINGS_MODULE": "bench.settings", "ENV_FILE": "", "DEBUG": "false",
        "SECRET_KEY": "bench-" + "x" * 50, "FIELD_ENCRYPTION_KEY": "ZGV2ZWxvcG1lbnQtb25seS1rZXktMzItYnl0ZXMtISE=",
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "false", "SITE_URL": base_url,
        "DATABASE_URL": database_url(admin_url, database), "REDIS_URL": redis_url, "LOG_LEVEL": "WARNING",
        # The throttles still run on every request; they just must not stop a single-IP, single-source benchmark.
        "LEAD_INTAKE_THROTTLE": "100000000/min", "LEAD_HOOK_THROTTLE": "100000000/min", "PYTHONPATH": str(ROOT),
        # Production recycles a worker every ~5000 requests; in a benchmark that restart lands on whichever
        # endpoint happens to be measured then, so it is off here (both endpoints run the same workers).
        "GUNICORN_CMD_ARGS": "--max-requests 0 " + os.environ.get("BENCH_GUNICORN_ARGS", ""),
    })
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{database}"')
    processes = Processes()
    try:
        manage(env, "migrate", "--noinput")
        key, secret = manage(env, "shell", "-c", SETUP).strip().splitlines()[-1].split()
        processes.start("bench-gunicorn", [str(ROOT / ".venv" / "bin" / "gunicorn"), "-c", "python:config.gunicorn",
                                           "config.wsgi", "--bind", f"127.0.0.1:{port}"], env)
        wait_until(lambda: requests.get(base_url + "/healthz/", timeout=2).status_code == 200, timeout=30,
                   what="gunicorn")
        saturated: dict[str, list[dict]] = {label: [] for label, _, _, _ in variants}
        for round_number in range(options.rounds):
            for number, (label, path, with_key, style) in enumerate(variants):
                saturated[label].append(measure(base_url, path.format(secret=secret), key, with_key,
                                                lead_tag(f"r{round_number}", number), seconds=options.seconds,
                                                warmup=options.warmup, style=style))
                print(f"round {round_number + 1}, closed loop, {label}: {saturated[label][-1]}", flush=True)
        fixed: dict[str, dict] = {}
        for number, (label, path, with_key, style) in enumerate(variants):
            fixed[label] = measure(base_url, path.format(secret=secret), key, with_key, lead_tag("f", number),
                                   rate=FIXED_RATE, seconds=options.fixed_seconds, warmup=options.warmup, style=style)
            print(f"{FIXED_RATE:.0f} req/s offered, {label}: {fixed[label]}", flush=True)
        with psycopg.connect(env["DATABASE_URL"]) as db:
            stored = db.execute("SELECT count(*) FROM leads_lead").fetchone()[0]
        return report(saturated, fixed, stored, options, variants)
    finally:
        processes.stop()
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        clear_redis(redis_url)


def report(saturated: dict[str, list[dict]], fixed: dict[str, dict], stored: int, options: argparse.Namespace,
           variants: list[tuple]) -> int:
    """Closed loop: medians of the rounds; each round's share is the intake against the bare view of the same
    round. Fixed load: latency. Then where each endpoint's CPU went."""

    def median_of(runs, key):
        return statistics.median(run[key] for run in runs)

    bare_runs = saturated[variants[0][0]]
    print(f"\n| endpoint | closed loop: requests/s | share of bare | p50 ms | p99 ms | at {FIXED_RATE:.0f} req/s: "
          "p50 ms | p99 ms | non-201 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    ok = True
    for label, *_ in variants:
        runs = saturated[label]
        errors = sum(run["errors"] for run in runs) + fixed[label]["errors"]
        share = statistics.median(run["rps"] / bare["rps"] for run, bare in zip(runs, bare_runs, strict=True))
        print(f"| {label} | {median_of(runs, 'rps'):.0f} | {share:.0%} | {median_of(runs, 'p50'):.1f} | "
              f"{median_of(runs, 'p99'):.1f} | {fixed[label]['p50']:.1f} | {fixed[label]['p99']:.1f} | {errors} |")
        if label != variants[0][0]:
            ok &= share >= TARGET_SHARE and fixed[label]["p99"] < TARGET_P99_MS and errors == 0
    print(f"\n{CLIENTS} concurrent clients; closed loop: {options.rounds} rounds of {options.seconds:.0f} s (after "
          f"{options.warmup:.0f} s warm-up) per endpoint, medians; fixed load: {FIXED_RATE:.0f} req/s offered for "
          f"{options.fixed_seconds:.0f} s. {stored} rows inserted in all. Targets: ≥ {TARGET_SHARE:.0%} of the bare "
          f"view's requests/s, p99 < {TARGET_P99_MS:.0f} ms: {'met' if ok else 'MISSED'}.")
    groups = list(bare_runs[0]["cpu_ms"])
    print(f"\n| CPU ms per request, closed loop (median of rounds) | {' | '.join(groups)} | all |")
    print(f"| --- |{' ---: |' * (len(groups) + 1)}")
    for label, *_ in variants:
        cells = [statistics.median(run["cpu_ms"][group] for run in saturated[label]) for group in groups]
        print(f"| {label} | {' | '.join(f'{cell:.2f}' for cell in cells)} | {sum(cells):.2f} |")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
