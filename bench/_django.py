"""Boots Django on a throw-away data directory for a benchmark run."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path


def setup() -> Path:
    data_dir = Path(tempfile.mkdtemp(prefix="fabhub-bench-"))
    # Each run's data (the history bench's repository alone is 1,000 commits) went on
    # piling up in /tmp. Removed when the bench ends; only by the process that made it,
    # not by a child forked from it that ends first.
    atexit.register(_remove, data_dir, os.getpid())
    # As deployed: DEBUG off (with it on, Django logs every statement and keeps the log,
    # which costs the hub's side 15-25 % in the database-heavy benches).
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("SECRET_KEY", "bench")
    os.environ["FABHUB_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")
    os.environ["FABHUB_MAX_REQUEST_BYTES"] = str(4 * 1024**3)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return data_dir


def _remove(data_dir: Path, owner: int) -> None:
    if os.getpid() == owner:
        shutil.rmtree(data_dir, ignore_errors=True)


def best_of(runs: int, fn) -> float:
    """The fastest of `runs` timings, in seconds: the least disturbed by other work."""
    import time

    timings = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        timings.append(time.perf_counter() - start)
    return min(timings)
