"""Machine connection settings (OctoPrint URL and API key), encrypted at rest.

The encryption is hub.crypto's (Fernet, key from FABHUB_ENCRYPTION_KEY or derived from
SECRET_KEY per purpose). Changing the key makes stored settings unreadable: the hub then
says so and asks for them again instead of failing.
"""

from __future__ import annotations

import json
from typing import Any

from hub.crypto import UnreadableSecret, decrypt_text, encrypt_text

PURPOSE = "machine connection settings"

__all__ = ["UnreadableSecret", "decrypt", "encrypt"]


def encrypt(values: dict[str, Any]) -> str:
    return encrypt_text(json.dumps(values, sort_keys=True), purpose=PURPOSE)


def decrypt(token: str) -> dict[str, Any]:
    try:
        return json.loads(decrypt_text(token, purpose=PURPOSE))
    except UnreadableSecret:
        raise UnreadableSecret("The connection settings were stored with another key.") from None
