"""Secrets the hub must use again later (mirror credentials, printer API keys), encrypted
at rest.

Fernet (AES-128-CBC + HMAC-SHA256). The key is `FABHUB_ENCRYPTION_KEY` (a Fernet key:
`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'`)
or, when that is empty, one derived from `SECRET_KEY` with HKDF, so an unconfigured hub
still never stores a credential in clear. Each `purpose` derives its own key from
SECRET_KEY, so a value encrypted for one use cannot be passed off as another.

A value encrypted under another key (the key or SECRET_KEY changed) raises
`UnreadableSecret`: callers say so and ask for the credential again.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings


class UnreadableSecret(Exception):
    """The stored value was encrypted with another key."""


def _fernet(purpose: str) -> Fernet:
    key = settings.FABHUB_ENCRYPTION_KEY
    if not key:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=f"fabhub {purpose}".encode()
        ).derive(settings.SECRET_KEY.encode())
        key = base64.urlsafe_b64encode(derived).decode()
    return Fernet(key)


def encrypt_text(value: str, *, purpose: str) -> str:
    return _fernet(purpose).encrypt(value.encode()).decode()


def decrypt_text(token: str, *, purpose: str) -> str:
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        raise UnreadableSecret(
            "This credential was stored with another encryption key; enter it again."
        ) from None
