"""Process plumbing shared by the end-to-end tests and the benchmarks: free ports, polling, managed subprocesses."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOGS = ROOT / "var" / "e2e-logs"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, *, timeout: float, interval: float = 0.2, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # noqa: BLE001 — keep polling until the deadline
            last = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last!r})")


class Processes:
    """Subprocesses with their logs in var/e2e-logs/, all stopped at teardown."""

    def __init__(self, logs: Path = LOGS):
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.logs = logs
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict) -> subprocess.Popen:
        # The child inherits its own copy of the descriptor; ours can close at once.
        with open(self.logs / f"{name}.log", "w") as log:
            proc = subprocess.Popen(args, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def log(self, name: str) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str | None = None):
        """Stop one process (by name) or all of them: SIGTERM to the whole group, SIGKILL after 15 s."""
        for proc_name, proc in list(self.procs):
            if name is not None and proc_name != name:
                continue
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(5)
            self.procs.remove((proc_name, proc))
