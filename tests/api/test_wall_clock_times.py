"""Opening hours are wall-clock times in the lab's zone: the schema's pattern is what the
API reads and writes (JSON Schema's `format: time` would demand an offset)."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.conftest import client_for
from tests.machines.factories import make_lab

pytestmark = pytest.mark.django_db


def hours_url() -> str:
    return reverse("api-lab-hours", args=["fablab"])


def test_the_hours_read_back_match_the_schema_pattern(alice, api):
    make_lab(alice)
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    opens = schema["components"]["schemas"]["OpeningHoursItem"]["properties"]["opens"]
    assert "format" not in opens
    rows = api.get(hours_url()).json()
    assert rows
    for row in rows:
        assert re.match(opens["pattern"], row["opens"]) and re.match(opens["pattern"], row["closes"])


@pytest.mark.parametrize("opens", ["09:00+01:00", "09:00Z", "9am", "24:00"])
def test_a_time_with_an_offset_or_out_of_the_day_is_refused(alice, opens):
    make_lab(alice)
    response = client_for(alice).put(
        hours_url(), {"hours": [{"weekday": 0, "opens": opens, "closes": "18:00"}]}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "opens" in str(response.json())


def test_a_wall_clock_time_is_accepted(alice):
    make_lab(alice)
    response = client_for(alice).put(
        hours_url(), {"hours": [{"weekday": 0, "opens": "09:30", "closes": "18:00:00"}]}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json() == [{"weekday": 0, "opens": "09:30:00", "closes": "18:00:00"}]
