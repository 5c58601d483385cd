"""The print queue's clock in the embedded set-up: no Celery beat, so a thread of the web
server runs the dispatcher, the printer poller and the sweeper every
FABHUB_PRINT_TICK_S seconds (0 turns it off; with a broker, beat runs them instead).

Only one process of a server ticks at a time: each holds a non-blocking lock on a file in
FABHUB_DATA_DIR while it ticks, and the others skip that round. A process that dies
releases its lock with it, so the next tick of another process takes over. Two tickers
would be harmless anyway (every step is a claim); the lock only avoids double polling.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections, connection

logger = logging.getLogger(__name__)
_started = False
_lock = threading.Lock()
SWEEP_EVERY = 12  # ticks


def start_embedded_ticker() -> bool:
    """Start the ticker thread once per process, if the set-up wants one."""
    global _started
    if not settings.FABHUB_EMBEDDED_WORKER or settings.FABHUB_PRINT_TICK_S <= 0:
        return False
    with _lock:
        if _started:
            return False
        _started = True
    threading.Thread(target=_run, name="fabhub-print-ticker", daemon=True).start()
    return True


def tick(*, sweep: bool) -> None:
    """One round: poll the printers, give idle ones their next job, and now and then sweep."""
    from machines import dispatch

    dispatch.printers_poll()
    dispatch.dispatch_tick()
    if sweep:
        dispatch.print_queue_sweep()


def _run() -> None:
    path = Path(settings.DATA_DIR) / "print-ticker.lock"
    count = 0
    while True:
        time.sleep(settings.FABHUB_PRINT_TICK_S)
        count += 1
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # another process of this server is ticking
                close_old_connections()
                tick(sweep=count % SWEEP_EVERY == 0)
        except Exception:
            logger.exception("print queue tick failed")
        finally:
            connection.close()
