"""A calendar feed's secret address is a credential like a token: read-only, and void
once its owner is deactivated."""

from __future__ import annotations

import pytest
from django.urls import reverse

from hub.auth import Credential, CredentialKind, require_write
from hub.exceptions import PermissionDenied
from machines import services

pytestmark = pytest.mark.django_db


def test_a_feed_secret_answers_while_its_owner_is_active(lab, member, client):
    feed = services.calendar_feed_get(owner=member)
    assert client.get(reverse("calendar-feed", args=[feed.token])).status_code == 200


def test_a_feed_secret_stops_working_when_its_owner_is_deactivated(lab, member, client):
    feed = services.calendar_feed_get(owner=member)
    member.is_active = False
    member.save(update_fields=["is_active"])
    assert client.get(reverse("calendar-feed", args=[feed.token])).status_code == 404


def test_a_feed_secret_can_never_write(lab, member):
    credential = Credential.for_feed_secret(member)
    assert credential is not None and credential.kind == CredentialKind.FEED_SECRET
    with pytest.raises(PermissionDenied, match="read access only"):
        require_write(credential)
