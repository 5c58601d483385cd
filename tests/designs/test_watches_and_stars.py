"""Watching and starring designs (designs/services/watches.py): the API and the page's
buttons, the counts on pages and lists, lists sorted by update, stars, forks and makes,
and private designs: nothing to star or watch, no count that tells of them."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs import services
from designs.models import Make, Watch
from designs.services import watches
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def ada(db):
    return UserFactory(username="ada")


@pytest.fixture
def mia(db):
    return UserFactory(username="mia")


@pytest.fixture
def rover(ada):
    design = DesignFactory(owner=ada, slug="rover")
    commit_files(design, {"README.md": "# Rover\n"})
    return design


def url(name, design):
    return reverse(name, args=[design.owner.username, design.slug])


def test_the_owner_watches_a_new_design_with_every_activity(rover, ada):
    assert Watch.objects.get(design=rover, user=ada).level == "all"


def test_watch_levels_are_set_read_and_removed_through_the_api(rover, mia):
    client = client_for(mia)
    assert client.get(url("api-design-watch", rover)).json() == {"level": None, "watchers": 1}
    response = client.put(url("api-design-watch", rover), {"level": "releases"}, format="json")
    assert response.json() == {"level": "releases", "watchers": 2}
    response = client.put(url("api-design-watch", rover), {"level": "ignore"}, format="json")
    assert response.json() == {"level": "ignore", "watchers": 1}  # ignoring is not watching
    assert client.delete(url("api-design-watch", rover)).json() == {"level": None, "watchers": 1}
    bad = client.put(url("api-design-watch", rover), {"level": "loudly"}, format="json")
    assert bad.status_code == 400


def test_stars_are_counted_once_per_person(rover, ada, mia):
    for person in (mia, mia, ada):
        response = client_for(person).put(url("api-design-star", rover))
        assert response.status_code == 200
    assert client_for(mia).get(url("api-design-star", rover)).json() == {"starred": True, "stars": 2}
    assert client_for(mia).delete(url("api-design-star", rover)).json() == {"starred": False, "stars": 1}


def test_anonymous_requests_read_the_counts_but_cannot_star(rover, api):
    assert api.get(url("api-design-star", rover)).json() == {"starred": False, "stars": 0}
    assert api.put(url("api-design-star", rover)).status_code == 401
    assert api.put(url("api-design-watch", rover), {"level": "all"}, format="json").status_code == 401


def test_a_private_design_cannot_be_starred_or_watched_by_those_who_cannot_see_it(ada, mia):
    secret = DesignFactory(owner=ada, slug="secret", visibility="private")
    client = client_for(mia)
    assert client.put(url("api-design-star", secret)).status_code == 404
    assert client.put(url("api-design-watch", secret), {"level": "all"}, format="json").status_code == 404
    assert client.get(url("api-design-star", secret)).status_code == 404


def test_a_fork_count_never_counts_a_private_fork_for_those_who_cannot_see_it(rover, ada, mia):
    services.design_fork(design=rover, user=mia)
    hidden = services.design_fork(design=rover, user=UserFactory(username="zed"))
    services.design_update(design=hidden, visibility="private")
    [listed] = [
        d for d in client_for(ada).get(reverse("api-design-list"), {"owner": "ada"}).json()["results"]
    ]
    assert listed["forks"] == 1
    [own] = client_for(hidden.owner).get(reverse("api-design-list"), {"owner": "ada"}).json()["results"]
    assert own["forks"] == 2


def test_design_lists_sort_by_update_stars_forks_and_makes(ada, mia):
    older, newer, starred = (DesignFactory(owner=ada, slug=name) for name in ("older", "newer", "starred"))
    for design in (older, newer, starred):
        commit_files(design, {"README.md": f"# {design.slug}\n"})
    commit_files(newer, {"notes.txt": "latest\n"})
    for person in (mia, UserFactory(username="theo")):
        watches.star_add(design=starred, user=person)
    watches.star_add(design=older, user=mia)
    services.design_fork(design=older, user=mia)
    services.design_fork(design=older, user=UserFactory(username="zed"))
    Make.objects.create(design=starred, commit_sha=starred.repo.branch_head("main"), maker=mia)

    def order(sort):
        response = client_for(ada).get(reverse("api-design-list"), {"owner": "ada", "sort": sort})
        assert response.status_code == 200, response.content
        return [d["slug"] for d in response.json()["results"]]

    assert order("updated") == ["newer", "starred", "older"]
    assert order("stars") == ["starred", "older", "newer"]
    assert order("forks") == ["older", "newer", "starred"]
    assert order("makes") == ["starred", "newer", "older"]
    rows = (
        client_for(ada).get(reverse("api-design-list"), {"owner": "ada", "sort": "stars"}).json()["results"]
    )
    assert [(d["stars"], d["forks"], d["makes"]) for d in rows] == [(2, 0, 1), (1, 2, 0), (0, 0, 0)]
    assert client_for(ada).get(reverse("api-design-list"), {"sort": "random"}).status_code == 400


def test_the_list_page_sorts_and_shows_the_counts(ada, mia, client):
    plain, starred = DesignFactory(owner=ada, slug="plain"), DesignFactory(owner=ada, slug="starred")
    commit_files(starred, {"README.md": "# S\n"})
    commit_files(plain, {"README.md": "# P\n"})
    watches.star_add(design=starred, user=mia)
    page = client.get(reverse("design-list"), {"sort": "stars"}).content.decode()
    assert page.index("/ada/starred/") < page.index("/ada/plain/")
    assert 'data-stars="1"' in page and "<strong>stars</strong>" in page
    page = client.get(reverse("design-list")).content.decode()
    assert page.index("/ada/plain/") < page.index("/ada/starred/")


def test_the_design_page_s_buttons_star_and_watch(rover, mia, client):
    client.force_login(mia)
    page = client.get(url("design-detail", rover)).content.decode()
    assert "0 stars" in page and 'id="star"' in page
    assert client.post(url("design-star", rover)).status_code == 302
    page = client.get(url("design-detail", rover)).content.decode()
    assert "1 star<" in page and 'id="unstar"' in page
    client.post(url("design-watch", rover), {"level": "releases"})
    assert Watch.objects.get(design=rover, user=mia).level == "releases"
    client.post(url("design-star", rover), {"star": "false"})
    assert not rover.stars.exists()


def test_the_buttons_need_a_signed_in_person_and_a_post(rover, mia, client):
    response = client.post(url("design-star", rover))
    assert response.status_code == 302 and reverse("login") in response["Location"]
    client.force_login(mia)
    assert client.get(url("design-star", rover)).status_code == 405
