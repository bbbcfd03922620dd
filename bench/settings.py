"""Settings of the servers a benchmark starts: the product's own, with the benchmark's URLconf (bench/urls.py)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
