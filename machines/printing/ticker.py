"""The print queue's clock in the embedded set-up: no Celery beat, so a thread of the web
server runs the dispatcher, the printer poller and the sweeper every
FABHUB_PRINT_TICK_S seconds (0 turns it off; with a broker, beat runs them instead).

Only one process of a server ticks at a time: each holds a non-blocking lock on a file in
FABHUB_DATA_DIR while it ticks, and the others skip that round. A process that dies
releases its lock with it, so the next tick of another process takes over. Two tickers
would be harmless anyway (every step is a claim); the lock only avoids double polling.
"""

from __future__ import annotations

from django.conf import settings

from hub.ticker import start_ticker
from machines.printing import dispatch
from machines.services.bookings import bookings_settle

SWEEP_EVERY = 12  # ticks


def start_embedded_ticker() -> bool:
    """Start the print queue's ticker thread once per process, if the set-up wants one."""
    return start_ticker("print", interval_s=settings.FABHUB_PRINT_TICK_S, tick=embedded_tick)


def embedded_tick(round_number: int) -> None:
    tick(sweep=round_number % SWEEP_EVERY == 0)


def tick(*, sweep: bool) -> None:
    """One round: poll the printers, give idle ones their next job, and now and then sweep
    (and charge the priced bookings that ended)."""
    dispatch.printers_poll()
    dispatch.dispatch_tick()
    if sweep:
        dispatch.print_queue_sweep()
        bookings_settle()
