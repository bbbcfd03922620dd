"""The real entry points: `make run`'s bin/run-dev, and gunicorn with the container's configuration."""

import json
import secrets
import signal
import subprocess
import time

import pytest

from .support import (
    BASE_DIR,
    GUNICORN,
    PYTHON,
    alive,
    clean_env,
    free_port,
    http_get,
    json_lines,
    run_python,
    wait_for,
)

pytestmark = pytest.mark.slow

SEND_HEARTBEAT = "import django; django.setup(); from config.tasks import heartbeat; heartbeat.delay()"


def healthz(base: str) -> dict | None:
    try:
        status, _, body = http_get(f"{base}/healthz/", timeout=2)
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


def test_make_run_serves_admin_and_health_runs_a_worker_and_stops_everything_on_ctrl_c(start_process, tmp_path):
    """What `make run` does on a fresh machine with no DATABASE_URL/REDIS_URL, then Ctrl-C."""
    port = free_port()
    secret_key = secrets.token_urlsafe(50)
    password = secrets.token_urlsafe(12)
    env = clean_env(
        PORT=str(port), VAR_DIR=str(tmp_path / "var"), SECRET_KEY=secret_key, LOG_LEVEL="INFO",
        DJANGO_SUPERUSER_USERNAME="admin", DJANGO_SUPERUSER_PASSWORD=password,
    )
    del env["DJANGO_SETTINGS_MODULE"]  # as from a shell: manage.py and celery pick config.settings
    run = start_process("run-dev", ["bin/run-dev"], env)
    base = f"http://127.0.0.1:{port}"

    def up():
        run.assert_running()
        return healthz(base)

    body = wait_for(up, timeout=60, what="/healthz/ to answer 200", output=run.output)
    assert (body["database"], body["broker"]) == ("ok", "ok")
    assert http_get(f"{base}/admin/login/")[0] == 200

    sent = run_python(SEND_HEARTBEAT, dict(env, DEBUG="true", DJANGO_SETTINGS_MODULE="config.settings"))
    assert sent.returncode == 0, sent.stderr
    wait_for(lambda: (healthz(base) or {}).get("worker") == "ok", timeout=30,
             what="/healthz/ to show the worker", output=run.output)

    children = run.children()
    commands = " | ".join(children.values())
    for role in ("gunicorn", "worker", "beat"):
        assert role in commands, commands

    stopped_at = time.monotonic()
    run.popen.send_signal(signal.SIGINT)  # Ctrl-C: the terminal signals the script's process group
    run.popen.wait(timeout=30)
    wait_for(lambda: not run.children() and not any(alive(pid) for pid in children), timeout=5,
             what="every child to exit", output=run.output)
    assert time.monotonic() - stopped_at < 20

    output = run.output()
    assert f"Admin:    http://localhost:{port}/admin/" in output
    assert "Created superuser admin." in output
    assert secret_key not in output and password not in output
    task_log = next(record for record in json_lines(output) if record["logger"] == "config.tasks")
    assert task_log["request_id"] not in ("", "-")  # no web request behind it: the task id stands in


def test_gunicorn_with_the_container_config_logs_json_access_lines(subprocess_env, start_process):
    port = free_port()
    web = start_process(
        "gunicorn",
        [GUNICORN, "-c", "python:config.gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "config.wsgi"],
        dict(subprocess_env, SITE_URL=f"http://127.0.0.1:{port}"),
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        web.assert_running()
        return healthz(base)

    wait_for(up, timeout=30, what="gunicorn to answer", output=web.output)
    status, headers, _ = http_get(f"{base}/healthz/?code=one-time-oauth-code", {"X-Request-ID": "req-gunicorn-1"})
    assert status == 200 and headers["X-Request-ID"] == "req-gunicorn-1"
    healthcheck = subprocess.run(
        [PYTHON, "docker/healthcheck.py", str(port)], cwd=BASE_DIR, env=dict(subprocess_env, SITE_URL=base),
        capture_output=True, text=True, timeout=15, check=False,
    )
    assert healthcheck.returncode == 0, healthcheck.stderr

    def access_line():
        return next(
            (r for r in json_lines(web.output()) if r["logger"] == "gunicorn.access"
             and r["request_id"] == "req-gunicorn-1"),
            None,
        )

    record = wait_for(access_line, timeout=5, what="the JSON access line", output=web.output)
    assert (record["method"], record["path"], record["status"]) == ("GET", "/healthz/", 200)
    assert record["duration_ms"] >= 0
    assert "one-time-oauth-code" not in web.output()
