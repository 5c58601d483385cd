"""Queueing background work: `enqueue("app.tasks.name", *args)` after the transaction commits.

- With a broker (`CELERY_BROKER_URL`): Celery workers on any machine run it.
- Without one (the embedded default): a worker thread inside this process runs it, so
  a request never waits for the work it queued and no outside service is needed.
- In tests: Celery's eager mode runs it inline, deterministically.
The task functions are the same in all three.

Tasks are named, not imported: tasks are an interface (they call services), so a service
that imported them would make the import graph climb back up. The name is the task's
Celery name, which for `@shared_task` is its module path and function name.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from celery import Task
from django.conf import settings
from django.db import close_old_connections, connection, transaction

from hub.celery import app as celery_app

logger = logging.getLogger(__name__)
_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


class UnknownTask(LookupError):
    """`enqueue` was given a name that no task module registers (a typo or a move)."""


def task_named(name: str) -> Task:
    """The registered Celery task called `name`, importing its module if need be.

    A web process never runs Celery's autodiscovery (only a worker does), so the module
    that defines the task is imported here; importing it twice is free.
    """
    module, _, _ = name.rpartition(".")
    if name not in celery_app.tasks and module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise UnknownTask(f"No module {module!r} for task {name!r}.") from exc
    try:
        return celery_app.tasks[name]
    except KeyError:
        raise UnknownTask(f"No task is registered as {name!r}.") from None


def _embedded_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fabhub-worker")
        return _pool


def _run_embedded(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    close_old_connections()
    try:
        task.apply(args=args, kwargs=kwargs, throw=True)
    except Exception:
        logger.exception("background task %s failed", task.name)
    finally:
        connection.close()


def enqueue(name: str, *args: Any, **kwargs: Any) -> None:
    """Run the task called `name` with `(*args, **kwargs)` once the current transaction commits.

    The name is checked now, so a wrong one fails in the caller rather than in a worker.
    """
    task = task_named(name)

    def send() -> None:
        if settings.FABHUB_EMBEDDED_WORKER:
            _embedded_pool().submit(_run_embedded, task, args, kwargs)
        else:
            task.apply_async(args=args, kwargs=kwargs)

    transaction.on_commit(send)


def wait_for_embedded_worker() -> None:
    """Block until the embedded worker is idle (for management commands and demos)."""
    if _pool is not None:
        _pool.submit(lambda: None).result()


@contextmanager
def embedded_worker_held() -> Iterator[None]:
    """Hold the embedded worker for the block: what is queued meanwhile runs after it (a
    benchmark times a task apart from the work that task queues)."""
    release = threading.Event()
    _embedded_pool().submit(release.wait)
    try:
        yield
    finally:
        release.set()
