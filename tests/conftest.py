from __future__ import annotations

import ipaddress
import socket

import pytest

# -- no test reaches beyond this machine ---------------------------------------------------
#
# Tests of the hub's address policy check its decision before any connection; they never
# connect to a real private or public address. This guard makes that a rule: any socket
# of this process connecting to a non-loopback address fails the test at once (the
# servers the suite starts, in other processes, listen on loopback too).

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


class NonLoopbackConnection(AssertionError):
    pass


def _only_loopback(address) -> None:
    if not isinstance(address, tuple) or not address:
        return  # a Unix socket path
    host = str(address[0]).split("%", 1)[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise NonLoopbackConnection(f"a test connected to {host!r} by name, not a loopback address") from None
    if not ip.is_loopback:
        raise NonLoopbackConnection(f"a test tried to connect to {address!r}, off this machine")


def _guarded_connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _only_loopback(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _only_loopback(address)
    return _real_connect_ex(self, address)


socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
socket.socket.connect_ex = _guarded_connect_ex  # type: ignore[method-assign]


# -- a live server's background work and the test's flush --------------------------------
#
# Transactional tests end by emptying every table (TRUNCATE on PostgreSQL). A hub server
# the test started shares that database, and its embedded worker may still be finishing
# what the test's last push queued (a README render, an assembly read): on PostgreSQL
# the two can deadlock, and the database picks the flush as the victim. The worker's
# statements are short, so the flush is tried again. Production never truncates.


def _flush_retrying_deadlocks() -> None:
    import time

    from django.core.management.commands import flush
    from django.db import OperationalError

    handle = flush.Command.handle
    if getattr(handle, "retries_deadlocks", False):
        return

    def handle_retrying(self, **options):
        for attempt in range(5):
            try:
                return handle(self, **options)
            except flush.CommandError as exc:
                cause = exc.__cause__
                if attempt == 4 or not isinstance(cause, OperationalError) or "deadlock" not in str(cause):
                    raise
                time.sleep(0.2 * (attempt + 1))
        return None

    handle_retrying.retries_deadlocks = True  # type: ignore[attr-defined]
    flush.Command.handle = handle_retrying  # type: ignore[method-assign]


_flush_retrying_deadlocks()


def database_url_for_subprocesses() -> str:
    """DATABASE_URL of the test database, for the servers and workers tests start.

    Call it after the test database exists (with `django_db_setup`): Django then has
    renamed the database in the settings to the test one.
    """
    from urllib.parse import quote

    from django.conf import settings

    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{credentials}@{db.get('HOST') or 'localhost'}{port}/{quote(db['NAME'], safe='')}"


# Fixtures that start a process or a server outside the test: every test using one,
# however indirectly, is `slow` (or `browser`), so `-m "not slow and not browser"`
# (make test-fast) starts none. Marking here, from the fixtures a test uses, cannot be
# forgotten on a new test the way a marker on each module can.
SERVER_FIXTURES = {
    "hub_server": "slow",  # gunicorn serving the hub (git smart HTTP, LFS, mirrors)
    "hub_b": "slow",  # a second hub, for mirrors between hubs
    "octoprint_server": "slow",  # a real OctoPrint with its virtual printer
    "refusing_server": "slow",  # a second OctoPrint that refuses uploads
    "redis_url": "slow",  # redis-server, and the Celery workers run against it
    "live_server": "browser",  # Django's live server, for Chromium
    "browser": "browser",  # Chromium through Playwright
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker in sorted({SERVER_FIXTURES[name] for name in used & SERVER_FIXTURES.keys()}):
            item.add_marker(marker)


@pytest.fixture(autouse=True)
def repos_dir(request, tmp_path):
    """Every test gets its own data directory, so repositories never leak between tests."""
    if not request.config.pluginmanager.hasplugin("django"):
        return None  # pure unit tests run with `-p no:django`
    settings = request.getfixturevalue("settings")
    settings.REPOS_DIR = tmp_path / "repos"
    settings.DATA_DIR = tmp_path
    return settings.REPOS_DIR


@pytest.fixture
def alice(db):
    from tests.factories import UserFactory

    return UserFactory(username="alice", email="alice@example.org", first_name="Alice", last_name="Maker")


@pytest.fixture
def bob(db):
    from tests.factories import UserFactory

    return UserFactory(username="bob", email="bob@example.org")


@pytest.fixture
def api():
    from rest_framework.test import APIClient

    return APIClient()


def client_for(user, scope: str = "write"):
    """An API client authenticated with a real personal access token of `user`."""
    from rest_framework.test import APIClient

    from hub import services as hub_services

    _, raw = hub_services.token_create(user=user, name="test", scope=scope)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def alice_api(alice):
    return client_for(alice)


@pytest.fixture
def bob_api(bob):
    return client_for(bob)


@pytest.fixture
def background_tasks_run(monkeypatch):
    """Run queued background tasks at once, even inside a test's open transaction.

    Tests wrapped in a transaction never commit, so on_commit work would never run.
    """
    from hub import queue

    monkeypatch.setattr(queue.transaction, "on_commit", lambda fn, *args, **kwargs: fn())
