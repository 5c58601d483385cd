"""The hub's Ed25519 signing keys and the encodings signed records use.

One key signs at a time: the newest that is not retired. Rotation makes a new key and
retires the old one from signing, but every key stays published (hub.records'
DID document), so what an old key signed still verifies.

Keys are named the way the W3C Multikey form writes them: multibase base58btc ('z') of
the multicodec ed25519-pub header (0xed 0x01) followed by the 32 key bytes; such a name
starts "z6Mk". The name is the key itself, so a verifier that reads a key name in a
record still has to find that key in a source it trusts (the issuer's published keys or
its trust list): a record never vouches for itself.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from django.db import transaction
from django.utils import timezone

from hub.crypto import decrypt_text, encrypt_text
from hub.models import SigningKey

ED25519_PUB_MULTICODEC = b"\xed\x01"
KEY_PURPOSE = "record signing key"
BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


class BadEncoding(ValueError):
    """A key, signature or document is not in the form the records use."""


# -- encodings ---------------------------------------------------------------------------


def base58btc_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    digits = []
    while number:
        number, rest = divmod(number, 58)
        digits.append(BASE58_ALPHABET[rest])
    leading_zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * leading_zeros + "".join(reversed(digits))


def base58btc_decode(text: str) -> bytes:
    number = 0
    for char in text:
        position = BASE58_ALPHABET.find(char)
        if position < 0:
            raise BadEncoding(f"{char!r} is not a base58btc character")
        number = number * 58 + position
    leading_zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * leading_zeros + body


def multibase_decode(text: str, *, max_chars: int = 256) -> bytes:
    """Only base58btc ('z'), the one base the records use for keys and signatures."""
    if not isinstance(text, str) or not text.startswith("z") or len(text) > max_chars:
        raise BadEncoding("not a multibase base58btc value")
    return base58btc_decode(text[1:])


def public_key_name(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    return "z" + base58btc_encode(ED25519_PUB_MULTICODEC + raw)


def public_key_from_name(name: str) -> Ed25519PublicKey:
    raw = multibase_decode(name)
    if len(raw) != 34 or not raw.startswith(ED25519_PUB_MULTICODEC):
        raise BadEncoding("not an Ed25519 Multikey")
    return Ed25519PublicKey.from_public_bytes(raw[2:])


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) canonical form, for the JSON the records hold.

    Objects' members sorted by their names' UTF-16 code units, no insignificant space,
    strings escaped as JSON requires and no more. Numbers other than integers within
    ±2**53 are refused rather than given ECMAScript's float formatting: the records
    never need them, and refusing is safer than formatting them almost right.
    """
    return _canonical(value).encode("utf-8")


def _canonical(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > 2**53:
            raise BadEncoding("an integer beyond ±2**53")
        return str(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise BadEncoding("a string with a lone surrogate") from None
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        members = []
        for name in sorted(value, key=lambda key: key.encode("utf-16-be") if isinstance(key, str) else b""):
            if not isinstance(name, str):
                raise BadEncoding("an object member whose name is not a string")
            members.append(_canonical(name) + ":" + _canonical(value[name]))
        return "{" + ",".join(members) + "}"
    raise BadEncoding(f"a {type(value).__name__} cannot be signed (only integers, no fractions)")


def signing_input(document: dict, proof_options: dict) -> bytes:
    """What eddsa-jcs-2022 signs: SHA-256 of the canonical proof options (with the
    document's @context) followed by SHA-256 of the canonical document without its proof."""
    unsecured = {key: value for key, value in document.items() if key != "proof"}
    options = {key: value for key, value in proof_options.items() if key != "proofValue"}
    if "@context" in unsecured:
        options["@context"] = unsecured["@context"]
    return (
        hashlib.sha256(canonical_json(options)).digest() + hashlib.sha256(canonical_json(unsecured)).digest()
    )


def signature_valid(public_key: Ed25519PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        public_key.verify(signature, message)
    except InvalidSignature:
        return False
    return True


# -- the hub's keys ----------------------------------------------------------------------


def signing_key_current() -> SigningKey:
    """The key that signs now; the hub's first key is made on first use."""
    key = SigningKey.objects.filter(retired_at__isnull=True).first()
    return key if key is not None else signing_key_rotate()


def signing_key_rotate() -> SigningKey:
    """A new signing key; the one before it is retired from signing and stays published."""
    private = Ed25519PrivateKey.generate()
    name = public_key_name(private.public_key())
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    # Two first uses at once may each make a key; the newest signs and both are
    # published, so nothing either signed stops verifying.
    with transaction.atomic():
        SigningKey.objects.filter(retired_at__isnull=True).update(retired_at=timezone.now())
        return SigningKey.objects.create(
            key_id=name, public_key=name, private_key=encrypt_text(pem, purpose=KEY_PURPOSE)
        )


def sign(key: SigningKey, message: bytes) -> bytes:
    private = load_pem_private_key(decrypt_text(key.private_key, purpose=KEY_PURPOSE).encode(), password=None)
    if not isinstance(private, Ed25519PrivateKey):
        raise BadEncoding("the stored signing key is not an Ed25519 key")
    return private.sign(message)


def published_keys() -> list[SigningKey]:
    """Every key the hub ever signed with, newest first."""
    return list(SigningKey.objects.all())
