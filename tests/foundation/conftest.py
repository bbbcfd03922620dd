"""Fixtures for the foundation tests: background processes that are always cleaned up."""

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from .support import BASE_DIR, GUNICORN, alive, descendants, free_port, http_get, wait_for


def _default_signals() -> None:
    # A shell that was itself started in the background may have passed SIGINT on as ignored;
    # the process under test must see Ctrl-C as a terminal would deliver it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGQUIT, signal.SIG_DFL)


class Process:
    """A background process with its output in a file, in a session of its own."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._out = open(log, "wb")  # closed in stop()
        self.popen = subprocess.Popen(
            args, env=env, cwd=BASE_DIR, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_default_signals,
        )
        self.pid = self.popen.pid
        self.seen: dict[int, str] = {}  # every descendant ever observed (pid -> start time), killed at the end

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def children(self) -> dict[int, str]:
        """Live descendants, pid -> command line."""
        found = descendants(self.pid)
        self.seen.update({pid: started for pid, (started, _) in found.items()})
        return {pid: cmdline for pid, (_, cmdline) in found.items()}

    def assert_running(self) -> None:
        if self.popen.poll() is not None:
            raise AssertionError(f"{self.log.name} exited with {self.popen.returncode}:\n{self.output()}")

    def stop(self) -> None:
        """Kill the process, its session and every descendant seen (they may sit in groups of their own)."""
        if self.popen.poll() is None:
            self.children()
            # Our own child is not reaped yet, so its pid (and group) cannot have been reused.
            os.killpg(self.pid, signal.SIGKILL)
        for pid, started in self.seen.items():
            if alive(pid, started):  # only the very process we saw, never a reused pid
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            self.popen.wait(timeout=10)
        finally:
            self._out.close()
        deadline = time.monotonic() + 5
        while (leftovers := [pid for pid, started in self.seen.items() if alive(pid, started)]) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.1)
        assert not leftovers, f"processes left behind: {leftovers}"


@pytest.fixture
def start_process(request, tmp_path):
    """start_process(name, args, env) -> Process; all of them are killed when the test ends.

    A test that also uses the database must request this fixture after `subprocess_env`: pytest tears
    fixtures down in reverse order, and the test database is flushed at its teardown, which must come
    after the processes holding connections to it are stopped (else the flush waits on their locks).
    """
    names = request.fixturenames
    if "transactional_db" in names:
        assert names.index("transactional_db") < names.index("start_process"), (
            "request start_process after subprocess_env, so the processes stop before the database is flushed")
    started: list[Process] = []

    def start(name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(args, env, tmp_path / f"{name}.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def private_queue(settings):
    """A Celery queue of this test's own: a long-lived worker of another test (e2e) cannot take from it."""
    import uuid

    import redis

    name = f"{settings.CELERY_TASK_DEFAULT_QUEUE}.{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        client.unlink(name, f"_kombu.binding.{name}", *client.scan_iter(match=f"{name}\x06\x16*"))
    finally:
        client.close()


@pytest.fixture
def gunicorn(subprocess_env, start_process):
    """(port, process) of a gunicorn with the container's config (one worker) on this test's database."""
    port = free_port()
    web = start_process(
        "gunicorn",
        [GUNICORN, "-c", "python:config.gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1", "config.wsgi"],
        dict(subprocess_env, SITE_URL=f"http://127.0.0.1:{port}", LOG_LEVEL="INFO"),
    )

    def up():
        web.assert_running()
        try:
            return http_get(f"http://127.0.0.1:{port}/healthz/", timeout=2)[0] == 200
        except OSError:
            return False

    wait_for(up, timeout=30, what="gunicorn to answer", output=web.output)
    return port, web
