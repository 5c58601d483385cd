"""Periodic work in the embedded set-up, where no Celery beat runs.

`start_ticker(name, interval_s=…, tick=…)` starts, once per process, a thread that calls
`tick(round_number)` every `interval_s` seconds. Only one process of a server ticks a
given name at a time: each holds a non-blocking lock on `<data>/<name>-ticker.lock` while
it ticks and the others skip that round; a process that dies releases its lock with it.
Ticks must be claims anyway (two would be harmless), the lock only avoids double work.
With a broker, Celery beat runs the same functions from CELERY_BEAT_SCHEDULE instead.

The hub knows no feature app: each app registers its ticker in its `AppConfig.ready()`
with `register_ticker`, and the web server (hub/wsgi.py) calls `start_registered_tickers()`.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)
_started: set[str] = set()
_lock = threading.Lock()
_registered: dict[str, tuple[str, Callable[[int], None]]] = {}


def register_ticker(name: str, *, interval_setting: str, tick: Callable[[int], None]) -> None:
    """Make `tick` the `name` ticker, run every `settings.<interval_setting>` seconds."""
    _registered[name] = (interval_setting, tick)


def start_registered_tickers() -> list[str]:
    """Start every registered ticker the set-up wants; the names of those started."""
    return [
        name
        for name, (interval_setting, tick) in sorted(_registered.items())
        if start_ticker(name, interval_s=getattr(settings, interval_setting), tick=tick)
    ]


def start_ticker(name: str, *, interval_s: float, tick: Callable[[int], None]) -> bool:
    """Start the `name` ticker thread unless there is a broker, it is off (0 s) or running."""
    if not settings.FABHUB_EMBEDDED_WORKER or interval_s <= 0:
        return False
    with _lock:
        if name in _started:
            return False
        _started.add(name)
    threading.Thread(
        target=run_ticker,
        args=(name,),
        kwargs={"interval_s": interval_s, "tick": tick},
        name=f"fabhub-{name}-ticker",
        daemon=True,
    ).start()
    return True


def run_ticker(name: str, *, interval_s: float, tick: Callable[[int], None]) -> None:
    path = Path(settings.DATA_DIR) / f"{name}-ticker.lock"
    count = 0
    while True:
        time.sleep(interval_s)
        count += 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process of this server is ticking
                close_old_connections()
                tick(count)
        except Exception:
            logger.exception("%s tick failed", name)
        finally:
            connection.close()
