"""Where each process writes its Prometheus samples: one directory per process group, all read by /metrics.

prometheus-client's multiprocess mode has every process write its samples to memory-mapped files
named after its pid, in the directory `PROMETHEUS_MULTIPROC_DIR`; `/metrics` merges the files. The
web processes (gunicorn) and the workers (Celery) of one host share `METRICS_DIR` (a volume shared
by the web and worker containers in docker compose), so `/metrics` shows the pushes a worker made
next to the deliveries the web answered. Each process group writes into a directory of its own,
`<METRICS_DIR>/<group>-<host name>`:

- pids of different containers (separate pid namespaces) never share a file;
- a group wipes only its own directory when it starts (gunicorn's master, the Celery worker's main
  process, before they fork), never the files of the other group's live processes.

Processes that are neither (runserver, beat, manage.py commands, the tests) write into the group
`other`. They come and go, so when one starts, the counters and histograms of the group's ended
processes are folded into one archive file per type (`counter_archive.db`): their counts stay on
/metrics while the directory stays small.

No Django import here: gunicorn's master calls this before the application is loaded.
"""

import fcntl
import os
import re
import shutil
import socket
from collections import defaultdict
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
# Stands where a pid would in the name of the files that hold the counts of ended processes.
ARCHIVE = "archive"


def host_name() -> str:
    """The host (or container) name, reduced to what a directory name may safely carry."""
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()) or "host"


def group_dir(root: str | os.PathLike, group: str) -> Path:
    return Path(root) / f"{group}-{host_name()}"


def use_group(root: str | os.PathLike, group: str, *, wipe: bool) -> Path:
    """Point this process (and the children it forks) at the group's directory; wipe it first when asked.

    Called by a group's parent process before it forks its workers: a wiped directory then holds
    only the files of this run's processes (prometheus-client's advice for a restart).
    """
    path = group_dir(root, group)
    if wipe and path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    os.environ[ENV] = str(path)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def fold_dead_processes(path: str | os.PathLike) -> int:
    """Add the counters and histograms of ended processes into the archive files; returns how many files were folded.

    Serialised by a lock file, so two processes starting at once never fold the same file twice. Gauges are
    left to prometheus-client's own bookkeeping (mark_process_dead); this product records none per process.
    """
    from prometheus_client.mmap_dict import MmapedDict

    path = Path(path)
    with open(path / ".fold.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        dead: dict[str, list[Path]] = defaultdict(list)
        for file in path.glob("*.db"):
            kind, _, ident = file.stem.partition("_")
            if kind in ("counter", "histogram", "summary") and ident.isdigit() and not _alive(int(ident)):
                dead[kind].append(file)
        for kind, files in dead.items():
            totals: dict[str, float] = defaultdict(float)
            for file in files:
                for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(str(file)):
                    totals[key] += value
            archive = MmapedDict(str(path / f"{kind}_{ARCHIVE}.db"))
            try:
                for key, value in totals.items():
                    current, _timestamp = archive.read_value(key)
                    archive.write_value(key, current + value, 0.0)
            finally:
                archive.close()
            for file in files:
                file.unlink(missing_ok=True)
    return sum(len(files) for files in dead.values())


def default_group(root: str | os.PathLike) -> Path:
    """What settings do at start: keep a directory a parent process chose, else join the `other` group."""
    chosen = os.environ.get(ENV)
    if chosen and Path(chosen).parent == Path(root):
        Path(chosen).mkdir(parents=True, exist_ok=True)
        return Path(chosen)
    path = use_group(root, OTHER, wipe=False)
    fold_dead_processes(path)
    return path


def all_files(root: str | os.PathLike) -> list[str]:
    """Every sample file of every group under the root (what /metrics merges)."""
    return sorted(str(file) for file in Path(root).glob("*/*.db"))


def mark_process_dead(pid: int) -> None:
    """Drop a finished process's live gauges (gunicorn's child_exit, Celery's worker_process_shutdown)."""
    path = os.environ.get(ENV)
    if path and os.path.isdir(path):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)
