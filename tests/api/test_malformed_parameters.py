"""A malformed query parameter is a 400 that names it, never a 500 nor a silent default."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import client_for
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("value", ["true", "abc", "0", "-1", "", "1.5", "²"])
def test_a_malformed_per_page_is_a_400(api, alice, value):
    response = api.get(reverse("api-design-list"), {"per_page": value})
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("per_page must be a positive whole number")


@pytest.mark.parametrize("value", ["abc", "true", "0", "", "last"])
def test_a_malformed_page_is_a_400(api, alice, value):
    response = api.get(reverse("api-lab-list"), {"page": value})
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith("page must be a positive whole number")


def test_a_page_past_the_last_is_a_404(api, alice):
    DesignFactory(owner=alice, slug="bracket")
    assert api.get(reverse("api-design-list"), {"page": "2"}).status_code == 404


def test_more_than_the_largest_page_gives_the_largest_page(api, alice):
    for n in range(3):
        DesignFactory(owner=alice, slug=f"part-{n}")
    response = api.get(reverse("api-design-list"), {"per_page": "1000"})
    assert response.status_code == 200
    assert response.json()["count"] == 3


def test_a_malformed_per_page_of_the_history_is_a_400(alice_api, alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"a.txt": "1"})
    response = alice_api.get(reverse("api-design-history", args=["alice", "bracket"]), {"per_page": "true"})
    assert response.status_code == 400
    assert response.json()["detail"] == "per_page must be a positive whole number, got 'true'."


def test_the_schema_says_pages_start_at_one(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    for path in ("/api/designs/", "/api/designs/{owner}/{slug}/commits/"):
        parameters = {p["name"]: p["schema"] for p in schema["paths"][path]["get"]["parameters"]}
        assert parameters["page"] == {"type": "integer", "minimum": 1}
        assert parameters["per_page"] == {"type": "integer", "minimum": 1}


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("api-booking-list", {"status": "AAA"}),
        ("api-print-jobs", {"status": "AAA"}),
        ("api-notifications", {"unread": "yes"}),
        ("api-notifications", {"unread": "null"}),
    ],
)
def test_a_filter_outside_its_enum_or_boolean_is_a_400(alice, name, query):
    response = client_for(alice).get(reverse(name), query)
    assert response.status_code == 400, response.content
    assert response.json()["detail"].startswith(f"{next(iter(query))} must be")


def test_a_filter_given_twice_is_a_400(alice):
    response = client_for(alice).get(reverse("api-notifications"), {"unread": ["true", "true"]})
    assert response.status_code == 400
    assert response.json()["detail"] == "Give unread once, not 2 times."


def test_a_malformed_notification_id_marks_nothing_read(alice):
    from machines.notifications import notify

    note = notify(user=alice, subject="Your booking is confirmed")
    response = client_for(alice).post(reverse("api-notifications-read") + "?id=abc")
    assert response.status_code == 400
    note.refresh_from_db()
    assert note.read_at is None


def test_a_machine_kind_outside_the_enum_is_a_400(alice):
    from tests.machines.factories import make_lab

    make_lab(alice)
    response = client_for(alice).get(reverse("api-machine-list", args=["fablab"]), {"kind": "AAA"})
    assert response.status_code == 400
    assert "kind must be one of" in response.json()["detail"]


def test_an_address_no_api_route_matches_is_a_json_404(api):
    response = api.delete("/api/labs/fablab/closures/null,null/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": "Not found.", "code": "not_found"}


def test_an_address_no_page_matches_is_still_the_html_404(client):
    response = client.get("/no-such-page/at/all/here/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
