"""A lab's place (latitude, longitude), for "nearest" in where-can-I-make-this: set on the
settings page and through the API, both or neither, within range."""

from __future__ import annotations

import pytest

from machines.models import Lab
from tests.conftest import client_for
from tests.machines.factories import make_lab

pytestmark = pytest.mark.django_db


def test_a_manager_sets_the_labs_place_through_the_api(alice):
    make_lab(alice, slug="lyon")
    api = client_for(alice)
    response = api.patch("/api/labs/lyon/", {"latitude": 45.7578, "longitude": 4.832}, format="json")
    assert response.status_code == 200, response.content
    assert (response.json()["latitude"], response.json()["longitude"]) == (45.7578, 4.832)
    for bad in ({"latitude": 91, "longitude": 0}, {"latitude": 10, "longitude": None}, {"longitude": "east"}):
        assert api.patch("/api/labs/lyon/", bad, format="json").status_code == 400, bad
    assert (
        api.patch("/api/labs/lyon/", {"latitude": None, "longitude": None}, format="json").status_code == 200
    )
    assert Lab.objects.get(slug="lyon").latitude is None


def test_the_settings_page_has_the_place(alice, client):
    make_lab(alice, slug="lyon")
    client.force_login(alice)
    page = client.get("/labs/lyon/manage/").content.decode()
    assert 'name="latitude"' in page and 'name="longitude"' in page
