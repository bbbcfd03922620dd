"""What every benchmark needs around its measurement: its database URL, manage.py, a clean Redis DB."""

import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import redis

from amocrm_sandbox.harness import ROOT


def database_url(admin_url: str, name: str) -> str:
    """`admin_url` with its database replaced by `name`."""
    parts = urlsplit(admin_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def manage(env: dict, *args: str) -> str:
    """Run manage.py with `env`; its stdout, or RuntimeError with both streams."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    if result.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def clear_redis(redis_url: str) -> None:
    """Drop the run's cache and limiter keys and the default Celery queue from the benchmark's Redis DB."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter("amo:*")) + [b"default", b"_kombu.binding.default"]
        client.delete(*keys)
    finally:
        client.close()
