"""A token cannot make a token that outlives it or may do more than it may."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from hub import services
from hub.models import AccessToken

pytestmark = pytest.mark.django_db


def client_with(user, *, scope: str = "write", expires_at=None) -> APIClient:
    _, raw = services.token_create(user=user, name="parent", scope=scope, expires_at=expires_at)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def create(client: APIClient, **fields):
    return client.post(reverse("api-tokens"), {"name": "child", **fields}, format="json")


def test_a_read_token_cannot_mint_a_write_token(alice):
    response = create(client_with(alice, scope="read"), scope="write")
    assert response.status_code == 403
    assert "read access only" in response.json()["detail"]
    assert AccessToken.objects.filter(user=alice).count() == 1


def test_a_read_token_cannot_mint_a_read_token_either(alice):
    # Creating a token is a write, whatever the new token's scope.
    response = create(client_with(alice, scope="read"), scope="read")
    assert response.status_code == 403
    assert AccessToken.objects.filter(user=alice).count() == 1


def test_an_expiring_token_cannot_mint_one_that_never_expires(alice):
    parent_expiry = timezone.now() + timedelta(minutes=10)
    response = create(client_with(alice, expires_at=parent_expiry), scope="write")
    assert response.status_code == 400
    assert "cannot outlive" in response.json()["detail"]
    assert AccessToken.objects.filter(user=alice).count() == 1


def test_an_expiring_token_cannot_mint_one_that_expires_later(alice):
    parent_expiry = timezone.now() + timedelta(minutes=10)
    later = (parent_expiry + timedelta(seconds=1)).isoformat()
    response = create(client_with(alice, expires_at=parent_expiry), scope="write", expires_at=later)
    assert response.status_code == 400
    assert "cannot outlive" in response.json()["detail"]
    assert AccessToken.objects.filter(user=alice).count() == 1


def test_an_expiring_token_may_mint_one_that_expires_no_later(alice):
    parent_expiry = timezone.now() + timedelta(minutes=10)
    response = create(
        client_with(alice, expires_at=parent_expiry),
        scope="read",
        expires_at=parent_expiry.isoformat(),
    )
    assert response.status_code == 201, response.content
    assert AccessToken.objects.get(name="child").expires_at == parent_expiry


def test_a_write_token_without_expiry_may_mint_any_token(alice):
    response = create(client_with(alice), scope="write")
    assert response.status_code == 201, response.content
    assert AccessToken.objects.get(name="child").expires_at is None


def test_the_session_may_mint_a_token_without_expiry(alice, client):
    client.force_login(alice)
    response = client.post(
        reverse("api-tokens"), {"name": "laptop", "scope": "write"}, content_type="application/json"
    )
    assert response.status_code == 201
    assert AccessToken.objects.get(name="laptop").expires_at is None


def test_the_service_refuses_a_wider_token_than_the_creating_one(alice):
    from hub.auth import Credential
    from hub.exceptions import PermissionDenied

    parent, _ = services.token_create(user=alice, name="parent", scope=AccessToken.Scope.READ)
    with pytest.raises(PermissionDenied, match="read access only"):
        services.token_create(
            user=alice, name="child", scope=AccessToken.Scope.WRITE, credential=Credential.for_token(parent)
        )
