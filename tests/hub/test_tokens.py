"""Personal access tokens: created and revoked by their user, stored hashed, shown once."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.models import AccessToken, hash_token

pytestmark = pytest.mark.django_db


def test_a_token_is_shown_once_and_stored_only_as_a_digest(alice, client):
    client.force_login(alice)
    created = client.post(
        reverse("api-tokens"), {"name": "laptop", "scope": "read"}, content_type="application/json"
    )
    assert created.status_code == 201
    raw = created.json()["token"]
    assert raw.startswith("fh_") and len(raw) > 40
    stored = AccessToken.objects.get(user=alice)
    assert stored.digest == hash_token(raw)
    assert raw not in {stored.digest, stored.hint, stored.name}
    listed = client.get(reverse("api-tokens")).json()
    assert "token" not in listed[0] and listed[0]["hint"] == raw[:10]


def test_a_user_cannot_revoke_someone_elses_token(alice, bob, client):
    from hub import services

    token, _ = services.token_create(user=alice, name="a")
    client.force_login(bob)
    assert client.delete(reverse("api-token", args=[token.pk])).status_code == 404
    token.refresh_from_db()
    assert token.is_active


def test_a_password_is_not_a_token(alice, api):
    api.credentials(HTTP_AUTHORIZATION="Bearer correct horse battery")
    assert api.get(reverse("api-me")).status_code == 401


def test_the_same_token_sent_twice_is_one_credential_and_two_different_ones_are_refused(alice, bob):
    """git-lfs sends its extraHeader beside the header the batch answer echoes; servers join
    repeated headers with a comma."""
    from hub import services
    from hub.auth import BadCredentials, credential_from_header

    _, mine = services.token_create(user=alice, name="lfs")
    _, theirs = services.token_create(user=bob, name="lfs")
    user, _ = credential_from_header(f"Bearer {mine},Bearer {mine}")
    assert user == alice
    for ambiguous in (f"Bearer {mine},Bearer {theirs}", f"Bearer {mine}, Token {theirs}", f"Bearer {mine},"):
        with pytest.raises(BadCredentials):
            credential_from_header(ambiguous)
