"""Helpers for tests that race threads against each other, and that need PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

import pytest
from django.db import connection

# Row locks and SERIALIZABLE races behave as deployed only on PostgreSQL; SQLite takes one
# writer at a time.
T = TypeVar("T")

on_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (scripts/with-postgres)"
)


def race(count: int, action: Callable[[int], T]) -> tuple[list[T], list[Exception]]:
    """Run `action(n)` in `count` threads released at once; (what the calls that returned
    gave, the exceptions the others raised). Each thread closes its own database connection."""
    barrier = threading.Barrier(count)
    won: list[T] = []
    lost: list[Exception] = []
    lock = threading.Lock()

    def attempt(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            result = action(n)
            with lock:
                won.append(result)
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
    return won, lost
