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


@pytest.mark.parametrize("minutes", ["²", "0", "", "1.5"])
def test_a_malformed_slot_length_is_a_400(alice, minutes):
    from tests.machines.factories import make_lab

    make_lab(alice)
    url = reverse("api-lab-first-free-slot", args=["fablab"])
    response = client_for(alice).get(url, {"kind": "fdm_printer", "minutes": minutes})
    assert response.status_code == 400, response.content
    assert "minutes" in response.json()["detail"]


@pytest.mark.parametrize("start", ["", " 2026-03-28", "2026-03-28 10:00Z", "tomorrow"])
def test_a_malformed_range_start_is_a_400_not_today(alice, start):
    from tests.machines.factories import make_lab

    make_lab(alice)
    query = {"kind": "fdm_printer", "start": start}
    response = client_for(alice).get(reverse("api-lab-availability", args=["fablab"]), query)
    assert response.status_code == 400, response.content
    assert "'start'" in response.json()["detail"]


def test_the_schema_states_the_formats_the_views_check(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    paths = schema["paths"]
    start = next(
        p for p in paths["/api/labs/{lab}/availability/"]["get"]["parameters"] if p["name"] == "start"
    )
    assert start["schema"]["pattern"].startswith("^[0-9]{4}-")
    read = paths["/api/notifications/read/"]["post"]["parameters"]
    assert read[0]["schema"] == {"type": "integer", "minimum": 1}
    delete = schema["components"]["schemas"]["DeleteInputRequest"]["properties"]["paths"]
    assert delete["minItems"] == 1
    upload = paths["/api/designs/{owner}/{slug}/upload/"]["post"]["requestBody"]["content"]
    assert set(upload) == {"multipart/form-data"}
    hours = paths["/api/labs/{lab}/hours/"]["put"]["requestBody"]["content"]
    assert set(hours) == {"application/json"}


@pytest.mark.parametrize("start", ["0000-00-00", "2026-02-30", "2026-13-01T10:00Z"])
def test_a_well_formed_day_that_does_not_exist_is_a_400_not_a_500(alice, start):
    from tests.machines.factories import make_lab

    make_lab(alice)
    query = {"kind": "fdm_printer", "start": start}
    response = client_for(alice).get(reverse("api-lab-availability", args=["fablab"]), query)
    assert response.status_code == 400, response.content


def test_the_history_is_documented_as_the_page_it_is(api):
    schema = api.get(reverse("api-schema"), {"format": "json"}).json()
    ok = schema["paths"]["/api/designs/{owner}/{slug}/commits/"]["get"]["responses"]["200"]
    page = ok["content"]["application/json"]["schema"]
    assert page == {"$ref": "#/components/schemas/CommitPageOutput"}
    raw = schema["paths"]["/api/designs/{owner}/{slug}/raw/"]["get"]["responses"]["200"]
    assert set(raw["content"]) == {"*/*"}


@pytest.mark.parametrize("name", ["visibility", "licence"])
def test_an_empty_enum_filter_is_a_400_not_no_filter(api, alice, name):
    response = api.get(reverse("api-design-list"), {name: ""})
    assert response.status_code == 400, response.content
    assert response.json() == {name: ["Give one of the values, or leave the parameter out."]}


@pytest.mark.parametrize(
    "name",
    [
        "api-design-meshes",
        "api-design-tree",
        "api-design-readme",
        "api-design-history",
        "api-design-assembly",
    ],
)
@pytest.mark.parametrize("ref", ["main\0", "\x0eNG\u00b8\0\u009b"])
def test_a_ref_holding_a_nul_byte_names_nothing(api, alice, name, ref):
    """Git holds no name with a NUL byte, and none can be passed to a process: a 404 that
    says the ref names nothing, never a 500 (the API fuzzer found the meshes list's)."""
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"a.txt": "1"})
    response = api.get(reverse(name, args=["alice", "bracket"]), {"ref": ref})
    assert response.status_code == 404, response.content


@pytest.mark.parametrize(
    "url",
    [
        "/api/designs/alice/bracket/tree/?path=docs%00",
        "/api/designs/alice/bracket/raw/?path=a.txt%00",
        "/api/designs/alice/bracket/commits/?path=a.txt%00",
        "/alice/bracket/blob/a.txt%00",
        "/alice/bracket/tree/docs%00/",
        "/alice/bracket/raw/a.txt%00",
        "/alice/bracket/commits/?path=a.txt%00",
    ],
)
def test_a_path_holding_a_nul_byte_names_nothing(client, alice, url):
    """The same class as the NUL ref: a path with a NUL byte is in no tree (a 404), where
    it used to reach the git process start and fail it (a 500)."""
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"a.txt": "1", "docs/b.txt": "2"})
    assert client.get(url).status_code == 404
