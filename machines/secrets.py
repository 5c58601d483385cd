"""Encryption of machine connection settings (OctoPrint URL and API key) at rest.

Fernet (AES-128-CBC + HMAC-SHA256) with a key from `FABHUB_ENCRYPTION_KEY` (a Fernet
key, `Fernet.generate_key()`), or, when that is empty, derived from `SECRET_KEY` with
HKDF so that an unconfigured hub still never stores a key in clear. Changing the key
(or SECRET_KEY without an encryption key) makes stored settings unreadable: the hub then
says so and asks for them again instead of failing.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class UnreadableSecret(Exception):
    """The stored value was encrypted with another key."""


def _fernet() -> Fernet:
    key = settings.FABHUB_ENCRYPTION_KEY
    if not key:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"fabhub machine connection settings"
        ).derive(settings.SECRET_KEY.encode())
        key = base64.urlsafe_b64encode(derived).decode()
    return Fernet(key)


def encrypt(values: dict[str, Any]) -> str:
    return _fernet().encrypt(json.dumps(values, sort_keys=True).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    try:
        return json.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise UnreadableSecret("The connection settings were stored with another key.") from None
