"""`make bench`: run every benchmark script in bench/ (or the ones named) and print their reports.

Each benchmark is a module (`bench/<name>.py`, run as `python -m bench.<name>`) that starts what it needs (sandbox,
gunicorn, a Celery worker against PostgreSQL and Redis), measures, prints a Markdown report
and exits non-zero when a target is missed. Results are recorded by hand in bench/README.md.
"""

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Modules of bench/ that are not benchmarks: this runner, the Django site the benchmarks serve, the volume generators.
NOT_BENCHMARKS = {"run", "settings", "urls", "views", "volume", "report_data"}
# Short names for `make bench BENCH_ARGS=<name>`.
ALIASES = {"admin": "admin_pages"}


def benchmark_names() -> list[str]:
    return sorted(p.stem for p in BENCH_DIR.glob("*.py") if p.stem not in NOT_BENCHMARKS and not p.stem.startswith("_"))


def main(argv: list[str]) -> int:
    names = argv or benchmark_names()
    if not names:
        print("No benchmarks found in bench/.")
        return 1
    failed = []
    for name in (ALIASES.get(name, name) for name in names):
        script = BENCH_DIR / f"{name}.py"
        if not script.exists() or name in NOT_BENCHMARKS:
            print(f"Unknown benchmark {name!r}: expected {script}")
            failed.append(name)
            continue
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        # As a module, so the project root is importable (amocrm_sandbox and its harness, the product).
        result = subprocess.run([sys.executable, "-m", f"bench.{name}"], cwd=BENCH_DIR.parent)
        print(f"--- {name}: exit {result.returncode} in {time.monotonic() - started:.0f}s", flush=True)
        if result.returncode:
            failed.append(name)
    if failed:
        print(f"\nMissed or failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
