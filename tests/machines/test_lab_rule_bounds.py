"""A lab's booking rules through the API: bounds that keep dates dates, and a PATCH of one
bound that crosses the other is a 400, not the database's CHECK constraint as a 500."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import client_for
from tests.machines.factories import make_lab

pytestmark = pytest.mark.django_db


def patch_lab(user, **fields):
    return client_for(user).patch(reverse("api-lab-detail", args=["fablab"]), fields, format="json")


def test_a_shortest_booking_above_the_longest_is_a_400(alice):
    make_lab(alice)
    response = patch_lab(alice, min_booking_minutes=100000)
    assert response.status_code == 400, response.content
    assert "cannot be longer than the longest" in response.json()["detail"]


def test_a_new_lab_with_crossed_bounds_is_a_400(alice):
    response = client_for(alice).post(
        reverse("api-lab-list"),
        {"name": "Club", "slug": "club", "min_booking_minutes": 300, "max_booking_minutes": 60},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert "cannot be longer than the longest" in response.json()["detail"]


def test_a_horizon_past_the_calendar_is_a_400_and_availability_still_answers(alice, api):
    make_lab(alice)
    assert patch_lab(alice, max_horizon_days=10**9).status_code == 400
    response = api.get(reverse("api-lab-availability", args=["fablab"]), {"kind": "fdm_printer"})
    assert response.status_code == 200, response.content


def test_the_schema_states_the_bounds(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    horizon = schema["components"]["schemas"]["PatchedLabUpdateInputRequest"]["properties"][
        "max_horizon_days"
    ]
    assert horizon["maximum"] == 3660
