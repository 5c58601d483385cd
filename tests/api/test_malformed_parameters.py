"""A malformed query parameter is a 400 that names it, never a 500 nor a silent default."""

from __future__ import annotations

import pytest
from django.urls import reverse

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
