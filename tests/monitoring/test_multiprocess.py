"""/metrics across processes: gunicorn's workers show what a Celery pool process and another process counted."""

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from monitoring import multiprocess
from monitoring.models import AlertChannel
from tests.foundation.support import CELERY, GUNICORN, clean_env, free_port, http_get, run_python, wait_for

TOKEN = "metrics-token-for-the-process-test"


def sample(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        Hook.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hook_server():
    Hook.received = []
    server = HTTPServer(("127.0.0.1", free_port()), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_wiping_a_group_leaves_the_other_groups_files(tmp_path):
    web, worker = tmp_path / f"web-{multiprocess.host_name()}", tmp_path / f"worker-{multiprocess.host_name()}"
    for path in (web, worker):
        path.mkdir()
        (path / "counter_123.db").write_bytes(b"")
    saved = os.environ.get(multiprocess.ENV)
    try:
        assert multiprocess.use_group(tmp_path, "web", wipe=True) == web
    finally:
        os.environ[multiprocess.ENV] = saved
    assert not (web / "counter_123.db").exists() and (worker / "counter_123.db").exists()


def test_the_other_group_folds_the_counts_of_ended_processes_into_its_archive(tmp_path):
    script = (
        "import os, sys; os.environ['PROMETHEUS_MULTIPROC_DIR'] = sys.argv[1]\n"
        "from prometheus_client import Counter, Histogram\n"
        "Counter('jobs', 'Jobs.', ['kind']).labels(kind='a').inc(int(sys.argv[2]))\n"
        "Histogram('wait_seconds', 'Wait.', buckets=(1, 10)).observe(5)\n"
    )
    for count in ("2", "5"):
        subprocess.run([sys.executable, "-c", script, str(tmp_path), count], check=True)
    assert len(list(tmp_path.glob("counter_*.db"))) == 2
    live = tmp_path / f"counter_{os.getpid()}.db"
    live.write_bytes(b"")  # a running process's file is not touched

    assert multiprocess.fold_dead_processes(tmp_path) == 4
    assert {p.name for p in tmp_path.glob("*.db")} == {"counter_archive.db", live.name, "histogram_archive.db"}
    live.unlink()
    text = "\n".join(f"{s.name}{s.labels} {s.value}" for metric in MultiProcessCollector.merge(
        [str(p) for p in tmp_path.glob("*.db")]) for s in metric.samples)
    assert "jobs_total{'kind': 'a'} 7.0" in text
    assert "wait_seconds_count{} 2.0" in text and "wait_seconds_bucket{'le': '10.0'} 2.0" in text
    assert multiprocess.fold_dead_processes(tmp_path) == 0, "folding twice adds nothing"


@pytest.mark.slow
def test_two_gunicorn_workers_serve_what_a_celery_pool_process_and_another_process_counted(
        subprocess_env, private_queue, hook_server, start_process, tmp_path):
    metrics_dir = tmp_path / "metrics"
    stale = metrics_dir / f"web-{multiprocess.host_name()}" / "counter_999999.db"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"left from an earlier run")
    env = dict(subprocess_env, METRICS_DIR=str(metrics_dir), METRICS_TOKEN=TOKEN, LOG_LEVEL="WARNING")
    env.pop(multiprocess.ENV, None)
    channel = AlertChannel.objects.create(name="Local hook", kind=AlertChannel.Kind.WEBHOOK, language="en",
                                          webhook_url=hook_server)

    worker = start_process("worker", [
        CELERY, "-A", "config", "worker", "--pool", "prefork", "--concurrency", "2", "-Q", private_queue,
        "--loglevel", "WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"], env)
    port = free_port()
    web = start_process("gunicorn", [GUNICORN, "-c", "python:config.gunicorn", "--bind", f"127.0.0.1:{port}",
                                     "--workers", "2", "config.wsgi"], env)
    base = f"http://127.0.0.1:{port}"

    def scrape() -> str | None:
        web.assert_running()
        try:
            status, _, body = http_get(f"{base}/metrics", {"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        except OSError:
            return None
        return body.decode() if status == 200 else None

    wait_for(scrape, timeout=60, what="gunicorn to serve /metrics", output=web.output)
    assert not stale.exists(), "gunicorn's master wipes the web group's directory at start"
    wait_for(lambda: list(metrics_dir.glob("worker-*")) or worker.assert_running(), timeout=60,
             what="the worker to choose its metrics directory", output=worker.output)

    counted = run_python(
        "import django; django.setup(); from monitoring import metrics\n"
        "for _ in range(3): metrics.lead_accepted('new')", env)
    assert counted.returncode == 0, counted.stderr

    sent = run_python(
        "import sys, django; django.setup(); from monitoring.tasks import send_test_message\n"
        f"send_test_message.apply_async(args=[{channel.pk}], queue={private_queue!r})", env)
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: Hook.received or worker.assert_running(), timeout=60, what="the worker to post the test message",
             output=worker.output)

    wanted = ('amocrm_alert_notifications_total{channel="webhook",outcome="sent"}',
              'amocrm_leads_intake_total{outcome="accepted",reason="new"}')
    seen = set()
    for _ in range(10):  # new connections, spread over both workers
        text = wait_for(scrape, timeout=10, what="/metrics")
        seen.add(tuple(sample(text, name) for name in wanted))
    assert seen == {(1.0, 3.0)}, seen
    assert Hook.received[0]["status"] == "test"
    assert list(metrics_dir.glob("worker-*/counter_*.db")), "the pool process wrote to the worker group's directory"
    assert len([pid for pid, command in web.children().items() if "gunicorn" in command]) == 2


CREATE_CHANNEL_AND_SEND = """
import django
django.setup()
from monitoring.models import AlertChannel
from monitoring.tasks import send_test_message
channel = AlertChannel.objects.create(name="Local hook", kind="webhook", language="en", webhook_url="{url}")
send_test_message.delay(channel.pk)
"""


@pytest.mark.slow
def test_make_run_serves_on_metrics_what_its_worker_counted_without_redis(start_process, hook_server, tmp_path):
    """The embedded mode: runserver, a prefork worker and beat on one machine, SQLite and the filesystem broker."""
    port = free_port()
    env = clean_env(PORT=str(port), VAR_DIR=str(tmp_path / "var"), LOG_LEVEL="WARNING")
    del env["DJANGO_SETTINGS_MODULE"]
    run = start_process("run-dev", ["bin/run-dev"], env)
    base = f"http://127.0.0.1:{port}"

    def scrape() -> str | None:
        run.assert_running()
        try:
            status, _, body = http_get(f"{base}/metrics", timeout=5)  # loopback is allowed with DEBUG
        except OSError:
            return None
        return body.decode() if status == 200 else None

    wait_for(scrape, timeout=90, what="/metrics from make run", output=run.output)
    created = run_python(CREATE_CHANNEL_AND_SEND.format(url=hook_server),
                         dict(env, DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings"))
    assert created.returncode == 0, created.stderr
    wait_for(lambda: Hook.received or run.assert_running(), timeout=60, what="the worker to post the test message",
             output=run.output)
    name = 'amocrm_alert_notifications_total{channel="webhook",outcome="sent"}'
    text = wait_for(lambda: (text := scrape()) and sample(text, name) == 1.0 and text, timeout=10,
                    what="the worker's count on /metrics")
    assert "amocrm_celery_queue_length" not in text, "no Redis: no queue length"
    groups = {path.name.split("-")[0] for path in (tmp_path / "var" / "metrics").iterdir()}
    assert {"worker", "other"} <= groups
