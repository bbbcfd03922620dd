"""The sandbox stays out of the product: not in the image, never imported by it; bench/ never imports tests/."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands

from tests.foundation.support import production_env

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("amocrm", "config", "leads", "sales")


def imported_modules(folder: Path) -> dict[str, set[str]]:
    """Every module each Python file under `folder` imports (absolute names), by file."""
    found = {}
    for path in folder.rglob("*.py"):
        names = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module)
        found[str(path.relative_to(ROOT))] = names
    return found


def test_the_benchmarks_never_import_the_tests():
    offending = {path: sorted(name for name in names if name == "tests" or name.startswith("tests."))
                 for path, names in imported_modules(ROOT / "bench").items()}
    assert not {path: names for path, names in offending.items() if names}


def test_the_product_never_imports_the_sandbox():
    offending = {path: sorted(name for name in names if name.split(".")[0] == "amocrm_sandbox")
                 for app in PRODUCT for path, names in imported_modules(ROOT / app).items()}
    assert not {path: names for path, names in offending.items() if names}


def dockerignore_rules() -> list[tuple[bool, re.Pattern]]:
    """.dockerignore as Docker reads it: one pattern a line, `#` comments, `!` re-includes, `**` any folders."""
    rules = []
    for line in (ROOT / ".dockerignore").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        include, pattern = line.startswith("!"), line.lstrip("!").strip("/")
        regex = ""
        index = 0
        while index < len(pattern):
            if pattern.startswith("**/", index):
                regex, index = regex + "(?:.*/)?", index + 3
            elif pattern.startswith("**", index):
                regex, index = regex + ".*", index + 2
            else:
                char = pattern[index]
                regex += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
                index += 1
        rules.append((include, re.compile(regex)))
    return rules


def build_context() -> list[str]:
    """The files `docker build .` sends: the checkout's files minus what .dockerignore leaves out.

    A pattern that matches a folder leaves out everything in it; the last matching rule wins.
    """
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    rules = dockerignore_rules()
    kept = []
    for path in listed:
        parts = path.split("/")
        prefixes = ["/".join(parts[: length]) for length in range(1, len(parts) + 1)]
        ignored = False
        for include, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                ignored = not include
        if not ignored and (ROOT / path).is_file():
            kept.append(path)
    return kept


def test_the_docker_build_context_leaves_out_the_sandbox_the_tests_and_the_benchmarks():
    context = build_context()
    assert "manage.py" in context and "config/settings.py" in context and ".env.example" in context
    assert not [path for path in context if path.split("/")[0] in ("amocrm_sandbox", "tests", "bench")]
    assert not [path for path in context if "sandbox" in path]
    dockerfile = (ROOT / "Dockerfile").read_text()
    copies = re.findall(r"^(?:COPY|ADD)\s+(.+)$", dockerfile, flags=re.MULTILINE)
    assert copies == ["requirements.txt .", ". ."]  # nothing named past .dockerignore


@pytest.mark.slow
def test_the_product_runs_from_the_image_files_without_the_sandbox(tmp_path):
    image = tmp_path / "app"
    for path in build_context():
        (image / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, image / path)
    env = production_env()

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, *args], cwd=image, env=env, capture_output=True, text=True,
                              timeout=60, check=False)

    checked = run("manage.py", "check")
    assert checked.returncode == 0, checked.stderr
    apps = run("-c", "import django; django.setup(); from django.conf import settings; "
                     "print(','.join(settings.INSTALLED_APPS))")
    assert apps.returncode == 0, apps.stderr
    assert "amocrm_sandbox" not in apps.stdout and "amocrm.apps.AmocrmConfig" in apps.stdout
    sandbox = run("manage.py", "amocrm_sandbox", "--help")
    assert sandbox.returncode != 0 and "Unknown command: 'amocrm_sandbox'" in sandbox.stderr


def test_in_a_checkout_the_sandbox_is_an_app_with_its_command(settings):
    assert "amocrm_sandbox" in settings.INSTALLED_APPS
    assert get_commands()["amocrm_sandbox"] == "amocrm_sandbox"
