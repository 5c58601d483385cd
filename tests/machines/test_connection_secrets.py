"""OctoPrint connection settings are write-only: stored encrypted, never shown."""

from __future__ import annotations

import pytest
from django.urls import reverse

from machines import services
from machines.models import Machine
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

KEY = "B0A1C2D3E4F5-octoprint-api-key"
URL = "http://octopi.local:5000/"


@pytest.fixture
def networked(lab, alice):
    response = client_for(alice).post(
        reverse("api-machine-list", args=["fablab"]),
        {
            "name": "Prusa Net",
            "slug": "prusa-net",
            "kind": "fdm_printer",
            "connection_url": URL,
            "connection_api_key": KEY,
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    return response


def test_the_api_never_returns_the_connection_settings(lab, alice, member, networked):
    assert KEY not in networked.content.decode() and "octopi" not in networked.content.decode()
    assert networked.json()["has_connection"] is True
    for client in (client_for(alice), client_for(member)):
        for name, args in [("api-machine-detail", ["fablab", "prusa-net"]), ("api-machine-list", ["fablab"])]:
            body = client.get(reverse(name, args=args)).content.decode()
            assert KEY not in body and "octopi" not in body and "connection_secret" not in body
    schema = client_for(alice).get(reverse("api-schema"), {"format": "json"}).content.decode()
    assert "connection_secret" not in schema


def test_the_pages_never_show_the_connection_settings(lab, alice, networked, client):
    client.force_login(alice)
    for name in ("machine-detail", "machine-edit"):
        body = client.get(reverse(name, args=["fablab", "prusa-net"])).content.decode()
        assert KEY not in body and "octopi" not in body


def test_the_settings_are_stored_encrypted_and_readable_by_drivers(lab, networked):
    machine = Machine.objects.get(slug="prusa-net")
    assert KEY not in machine.connection_secret and "octopi" not in machine.connection_secret
    assert machine.connection_secret.startswith("gAAAA")  # a Fernet token
    assert services.machine_connection(machine) == {"driver": "octoprint", "url": URL, "api_key": KEY}


def test_another_key_cannot_read_them(lab, networked, settings):
    settings.FABHUB_ENCRYPTION_KEY = "x" * 43 + "="
    assert services.machine_connection(Machine.objects.get(slug="prusa-net")) is None


def test_an_empty_url_clears_them_and_a_bad_one_is_refused(lab, alice, networked):
    url = reverse("api-machine-detail", args=["fablab", "prusa-net"])
    bad = client_for(alice).patch(
        url, {"connection_url": "file:///etc/passwd", "connection_api_key": "k"}, format="json"
    )
    assert bad.status_code == 400 and "http://" in bad.json()["detail"]
    cleared = client_for(alice).patch(url, {"connection_url": ""}, format="json")
    assert cleared.json()["has_connection"] is False
