"""Settings for the test suite: the real ones, with a throw-away secret and fast hashing."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "only-for-the-test-suite")
# No print queue clock (machines/printing/ticker.py) in the servers the tests start through
# hub.wsgi (they inherit this environment): tests drive the queue themselves, and a
# server ticking on the test database would dispatch and poll the tests' printers.
os.environ.setdefault("FABHUB_PRINT_TICK_S", "0")

from hub.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A file, not memory: the git-over-HTTP tests run a real gunicorn server in another
# process, and it must see what the tests write. (PostgreSQL, with DATABASE_URL, keeps
# Django's test_<name> database, which other processes reach the same way.)
# The suite's threads (live servers, agents, pollers) close their connections when done:
# a connection kept open by a finished thread would hold up the test database's flush and
# teardown on PostgreSQL.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {  # noqa: F405
        "NAME": os.path.join(tempfile.gettempdir(), f"fabhub-test-{os.getpid()}.sqlite3")
    }

# Background tasks run inline and deterministically in tests (Celery eager mode).
FABHUB_EMBEDDED_WORKER = False
