"""The createsuperuser command `make run` (bin/run-dev) and the README print works exactly as printed."""

import fcntl
import os
import pty
import re
import secrets
import select
import signal
import subprocess
import termios
import time

import pytest

from .support import BASE_DIR, clean_env, free_port, run_python, wait_for

pytestmark = pytest.mark.slow

# The field prompts follow LANGUAGE_CODE (Russian by default), the password prompts are Django's own English.
PROMPTS = (("Username", "hint-admin"), ("Имя пользователя", "hint-admin"), ("Email address", "hint@example.com"),
           ("Адрес электронной почты", "hint@example.com"), ("Password (again)", None), ("Password", None))


def printed_createsuperuser(output: str) -> str:
    """The createsuperuser command among the hints, as a developer would copy it."""
    line = next(line for line in output.splitlines() if "manage.py createsuperuser" in line)
    return line.strip().removeprefix("(or:").removesuffix(")").strip()


def _take_terminal() -> None:
    """Make the pseudo-terminal on stdin the controlling terminal, as in a real shell: getpass reads /dev/tty."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def run_in_terminal(command: str, env: dict[str, str], password: str) -> tuple[int, str]:
    """Run `command` in bash on a pseudo-terminal, answering createsuperuser's prompts as a person would."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(["bash", "-c", command], cwd=BASE_DIR, env=env, stdin=terminal, stdout=terminal,
                               stderr=terminal, start_new_session=True, preexec_fn=_take_terminal)
    os.close(terminal)
    seen = ""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([controller], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(controller, 4096).decode(errors="replace")
                except OSError:  # the command exited and closed the terminal
                    break
                seen += chunk
                waiting = seen.split("\n")[-1].strip()  # a prompt ends with ": " and no newline
                for prompt, answer in PROMPTS:
                    if waiting.startswith(prompt) and waiting.endswith(":"):
                        os.write(controller, f"{answer or password}\n".encode())
                        seen += "\n"
                        break
            elif process.poll() is not None:
                break
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        os.close(controller)
    return process.returncode, seen


def test_the_createsuperuser_command_make_run_prints_creates_the_superuser_as_printed(start_process, tmp_path):
    # A shell on a laptop: no DEBUG, no keys, no .env; make run's own defaults (SQLite in VAR_DIR).
    shell = clean_env(PORT=str(free_port()), VAR_DIR=str(tmp_path / "var"))
    run = start_process("run-dev", ["bin/run-dev"], shell)
    wait_for(lambda: "Admin:" in run.output(), timeout=60, what="bin/run-dev to start", output=run.output)
    run.popen.send_signal(signal.SIGINT)
    run.popen.wait(timeout=30)
    command = printed_createsuperuser(run.output())

    password = secrets.token_urlsafe(16)
    returncode, transcript = run_in_terminal(command, shell, password)

    assert returncode == 0, f"{command!r} failed:\n{transcript}"
    assert "Superuser created successfully." in transcript
    found = run_python("import django; django.setup(); from django.contrib.auth import get_user_model; "
                       "user = get_user_model().objects.get(username='hint-admin'); "
                       f"print(user.is_superuser, user.check_password({password!r}))",
                       dict(shell, DEBUG="true"))
    assert found.stdout.split() == ["True", "True"], found.stderr


def test_the_readme_prints_the_same_createsuperuser_command_as_make_run():
    hint = re.search(r"^\s*echo \"\s*(?:\(or: )?(.*manage\.py createsuperuser)\)?\"", (BASE_DIR / "bin" / "run-dev")
                     .read_text(), flags=re.MULTILINE)
    assert hint, "bin/run-dev prints no createsuperuser command"
    assert f"`{hint.group(1)}`" in (BASE_DIR / "README.md").read_text()
