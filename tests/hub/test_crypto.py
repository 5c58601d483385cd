"""Credentials kept for later use are encrypted at rest, and a changed key is said plainly."""

from __future__ import annotations

import pytest

from hub.crypto import UnreadableSecret, decrypt_text, encrypt_text


def test_a_value_round_trips_and_is_not_stored_in_clear(settings):
    token = encrypt_text("fh_secret-token", purpose="mirror credentials")
    assert "fh_secret" not in token
    assert decrypt_text(token, purpose="mirror credentials") == "fh_secret-token"


def test_each_purpose_has_its_own_key_when_derived_from_secret_key(settings):
    settings.FABHUB_ENCRYPTION_KEY = ""
    token = encrypt_text("x", purpose="mirror credentials")
    with pytest.raises(UnreadableSecret):
        decrypt_text(token, purpose="something else")


def test_a_changed_key_makes_stored_values_unreadable_not_an_error_500(settings):
    settings.FABHUB_ENCRYPTION_KEY = ""
    token = encrypt_text("x", purpose="mirror credentials")
    settings.SECRET_KEY = "another secret key entirely"
    with pytest.raises(UnreadableSecret, match="enter it again"):
        decrypt_text(token, purpose="mirror credentials")


def test_an_explicit_key_is_used(settings):
    from cryptography.fernet import Fernet

    settings.FABHUB_ENCRYPTION_KEY = Fernet.generate_key().decode()
    token = encrypt_text("x", purpose="mirror credentials")
    assert Fernet(settings.FABHUB_ENCRYPTION_KEY.encode()).decrypt(token.encode()) == b"x"
