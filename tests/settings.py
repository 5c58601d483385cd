"""Settings for the test suite: the real ones, with a throw-away secret and fast hashing."""

import os

os.environ.setdefault("SECRET_KEY", "only-for-the-test-suite")

from hub.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
