"""Helpers for tests that run the project in subprocesses: clean environments, free ports, process trees."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.fernet import Fernet

BASE_DIR = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CELERY = str(Path(sys.executable).with_name("celery"))
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))


def clean_env(**values: str) -> dict[str, str]:
    """A minimal environment: none of the developer's or the test run's settings, no .env file."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "ENV_FILE": "",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    env.update(values)
    return env


def production_env(**values: str) -> dict[str, str]:
    """What a real deployment sets (see .env.example): DEBUG off, real keys, https, PostgreSQL, Redis."""
    env = clean_env(
        DEBUG="false",
        SECRET_KEY="k7Hq2vXw9Lm4Pz8Rt1Nc6Bj3Fy5Dg0Sa-Qe_Uo7Wi2Xr4Zt9Vb1Mn3Kp8Lh6Jd5",
        FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="crm-bridge.example.com",
        SITE_URL="https://crm-bridge.example.com",
        DATABASE_URL="postgres://amocrm:amocrm@db.internal:5432/amocrm",
        REDIS_URL="redis://redis.internal:6379/0",
    )
    env.update(values)
    return env


def run_python(code: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "-c", code], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=timeout, check=False
    )


def manage(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, capture_output=True, text=True, timeout=timeout,
        check=False,
    )


def settings_in(env: dict[str, str], *names: str) -> dict:
    """The named settings as a fresh process with this environment sees them."""
    code = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{name: getattr(settings, name) for name in {list(names)!r}}}, default=str))"
    )
    result = run_python(code, env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def wait_for(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition", output=None):
    """Poll until predicate() is truthy; fail with `what` (and the process output, when given)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            details = f"\n--- output ---\n{output()}" if output else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{details}")
        time.sleep(interval)


def _stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state, ppid, ...), or None when gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """The kernel's start time of a live process: with the pid, it names one process even if pids are reused."""
    fields = _stat(pid)
    return fields[19] if fields and fields[0] != "Z" else None


def descendants(pid: int) -> dict[int, tuple[str, str]]:
    """Every live process below pid: pid -> (start time, command line), read from /proc."""
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(entry.name)
        if not fields or fields[0] == "Z":
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        info[int(entry.name)] = (fields[19], cmdline)
    found: dict[int, tuple[str, str]] = {}
    stack = list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found[child] = info[child]
        stack.extend(children.get(child, []))
    return found


def alive(pid: int, started: str | None = None) -> bool:
    """Whether the process runs (and, given its start time, is still that same process)."""
    current = start_time(pid)
    return current is not None and (started is None or current == started)


def json_lines(text: str) -> list[dict]:
    """The log records among a process's output (Celery's banner and the like are plain text)."""
    records = []
    for line in text.splitlines():
        if line.startswith("{"):
            records.append(json.loads(line))
    return records
