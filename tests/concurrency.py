"""Helpers for tests that race threads against each other, and that need PostgreSQL."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

# Row locks and SERIALIZABLE races behave as deployed only on PostgreSQL; SQLite takes one
# writer at a time.
on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (scripts/with-postgres)"
)


def race(count, action) -> tuple[int, list[Exception]]:
    """Run `action(n)` in `count` threads released at once; (how many returned, the
    exceptions the others raised). Each thread closes its own database connection."""
    barrier = threading.Barrier(count)
    won: list[int] = []
    lost: list[Exception] = []
    lock = threading.Lock()

    def attempt(n):
        try:
            barrier.wait(timeout=30)
            action(n)
            with lock:
                won.append(n)
        except Exception as exc:  # gathered and asserted on below
            with lock:
                lost.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return len(won), lost
