"""A task sent through the configured broker is consumed by a real worker process, request id included."""

import uuid

import pytest
from django.core.cache import cache

from config.requestid import request_id_var
from config.tasks import HEARTBEAT_KEY, heartbeat

from .support import CELERY, clean_env, json_lines, run_python, wait_for

pytestmark = pytest.mark.slow

# The solo pool runs tasks in the worker's main process: one process to start and to kill.
WORKER = [CELERY, "-A", "config", "worker", "--pool", "solo", "--loglevel", "INFO",
          "--without-gossip", "--without-mingle", "--without-heartbeat"]

SEND_AND_WAIT = """
import sys, time
import django
django.setup()
from django.core.cache import cache
from config.requestid import request_id_var
from config.tasks import HEARTBEAT_KEY, heartbeat

request_id_var.set(sys.argv[1])
heartbeat.delay()
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    if cache.get(HEARTBEAT_KEY):
        print("consumed")
        break
    time.sleep(0.2)
else:
    sys.exit("the worker did not consume the heartbeat within 30 s")
"""


def heartbeat_logged_with(request_id: str, output: str) -> bool:
    return any(
        record.get("logger") == "config.tasks" and record.get("request_id") == request_id
        for record in json_lines(output)
    )


def test_a_task_sent_through_redis_is_consumed_by_a_real_worker(subprocess_env, private_queue, start_process):
    worker = start_process(
        "worker",
        [*WORKER, "--queues", private_queue, "--hostname", f"test-{uuid.uuid4().hex[:8]}@%h"],
        dict(subprocess_env, LOG_LEVEL="INFO"),
    )
    token = request_id_var.set("req-redis-1")
    try:
        heartbeat.apply_async(queue=private_queue)
    finally:
        request_id_var.reset(token)

    wait_for(lambda: cache.get(HEARTBEAT_KEY), timeout=30, what="a heartbeat recorded", output=worker.output)
    wait_for(
        lambda: heartbeat_logged_with("req-redis-1", worker.output()),
        timeout=5, what="the task's log line with the request id", output=worker.output,
    )


def test_a_task_sent_through_the_embedded_broker_is_consumed_by_a_real_worker(start_process, tmp_path):
    # No DATABASE_URL, no REDIS_URL: SQLite, the filesystem broker and the file cache under VAR_DIR,
    # shared by the worker and the sender through the folder alone.
    env = clean_env(DEBUG="true", VAR_DIR=str(tmp_path / "var"), LOG_LEVEL="INFO")
    worker = start_process("worker", WORKER, env)

    sent = run_python(SEND_AND_WAIT.replace("sys.argv[1]", "'req-embedded-1'"), env, timeout=45)

    assert sent.returncode == 0, f"{sent.stderr}\n--- worker ---\n{worker.output()}"
    assert "consumed" in sent.stdout
    wait_for(
        lambda: heartbeat_logged_with("req-embedded-1", worker.output()),
        timeout=5, what="the task's log line with the request id", output=worker.output,
    )
    worker.assert_running()
