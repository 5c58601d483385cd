"""Search (designs/search/) finds a design by any word of its title, summary, README or
file paths, ranked, filtered, paginated, and only among what the searcher may see.

The suite runs on SQLite (FTS5) in `make test` and on PostgreSQL (tsvector) under
scripts/with-postgres: every test here runs on whichever back-end the database is."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from designs import services
from designs.models import Design, Licence, SearchDocument
from designs.search import design_search
from designs.services import search as search_service
from designs.tasks import search_index_refresh
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("background_tasks_run")]


def found(viewer, text: str, **filters) -> list[str]:
    within = Design.objects.filter(**filters) if filters else None
    return [d.slug for d in design_search(viewer=viewer, text=text, within=within)[0:50]]


def api_search(client, **params) -> dict:
    response = client.get(reverse("api-design-list"), params)
    assert response.status_code == 200, response.content[:500]
    return response.json()


@pytest.fixture
def car(alice):
    design = DesignFactory(owner=alice, slug="go-kart", title="Go-kart", summary="A small racing car.")
    commit_files(
        design,
        {
            "README.md": "# Go-kart\n\nThe **front axle** holds two [steering knuckles](docs/knuckle.md).\n",
            "chassis/suspension-arm_v2.stl": "solid arm\nendsolid arm\n",
            "chassis/wishboneArm.STL": "solid w\nendsolid w\n",
        },
        "Start",
    )
    return design


def test_a_word_only_in_a_file_name_finds_the_design(car, bob):
    for word in ("suspension", "arm", "v2", "wishbone", "wishboneArm", "wishbonearm", "stl"):
        assert found(bob, word + " ") == ["go-kart"], word


def test_the_api_finds_a_design_by_a_file_name_and_shows_the_matched_path(car, api):
    body = api_search(api, q="wishbone")
    assert body["count"] == 1
    [result] = body["results"]
    assert result["full_name"] == "alice/go-kart"
    assert result["matched_paths"] == ["chassis/<mark>wishbone</mark>Arm.STL"]


def test_a_readme_word_finds_the_design_with_a_snippet_of_the_readme(car, api):
    [result] = api_search(api, q="knuckles")["results"]
    assert "<mark>knuckles</mark>" in result["snippet"]
    # Markdown is read as the text a person sees: no asterisks, no link target.
    assert "**" not in result["snippet"] and "docs/knuckle.md" not in result["snippet"]


def test_every_word_must_match(car, bob):
    assert found(bob, "front axle") == ["go-kart"]
    assert found(bob, "front gearbox") == []


def test_the_last_word_matches_as_a_prefix(car, bob):
    assert found(bob, "suspen") == ["go-kart"]
    assert found(bob, "suspen ") == []


def test_a_multi_part_word_must_appear_as_a_phrase(alice, bob):
    design = DesignFactory(owner=alice, slug="loose")
    commit_files(design, {"v/notes.txt": "x", "part-2.txt": "y"})
    assert found(bob, "v2 ") == []


def test_a_title_match_ranks_above_a_path_only_match(alice, bob):
    by_path = DesignFactory(owner=alice, slug="rover", title="Rover")
    commit_files(by_path, {"parts/gearbox.scad": "cube(1);"})
    by_title = DesignFactory(owner=alice, slug="box", title="Gearbox")
    commit_files(by_title, {"notes.txt": "nothing"})
    # The path-only match is the newer one, so only the rank puts the title first.
    commit_files(by_path, {"parts/other.scad": "cube(2);"})
    assert found(bob, "gearbox ") == ["box", "rover"]
    assert found(bob, "gearb") == ["box", "rover"]


def test_private_designs_do_not_change_the_order_a_stranger_sees(alice, bob):
    def order() -> list[str]:
        return found(bob, "alpha zyxcodename ")

    DesignFactory(owner=bob, slug="a", title="A", summary="alpha alpha alpha alpha zyxcodename")
    DesignFactory(owner=bob, slug="b", title="B", summary="alpha zyxcodename zyxcodename zyxcodename")
    for n in range(5):
        DesignFactory(owner=bob, slug=f"filler-{n}", title=f"F{n}", summary="alpha")
    before = order()
    # Many private designs holding one of the words would make it common, not rare, if
    # the rank took word statistics from the whole index.
    for n in range(20):
        DesignFactory(
            owner=alice,
            slug=f"secret-{n}",
            title=f"S{n}",
            summary="zyxcodename",
            visibility=Design.Visibility.PRIVATE,
        )
    assert order() == before


def test_filters_narrow_a_search_by_tag_licence_and_owner(alice, bob, api):
    mine = DesignFactory(owner=alice, slug="a", title="Wheel", tags=["kart"], licence=Licence.MIT)
    DesignFactory(owner=bob, slug="b", title="Wheel", tags=["bike"], licence=Licence.CERN_OHL_S)

    def names(**params):
        return [r["full_name"] for r in api_search(api, q="wheel", **params)["results"]]

    assert sorted(names()) == ["alice/a", "bob/b"]
    assert names(tag="kart") == [mine.full_name]
    assert names(licence=Licence.MIT) == [mine.full_name]
    assert names(owner="bob") == ["bob/b"]


def test_the_design_list_page_searches_and_shows_snippets_escaped(alice, client):
    design = DesignFactory(owner=alice, slug="probe", title="Probe", summary="<b>Probe</b> for the wishbone")
    commit_files(design, {"wishbone-jig.stl": "solid\nendsolid\n"})
    response = client.get(reverse("design-list"), {"q": "wishbone"})
    page = response.content.decode()
    assert "alice/probe" in page or "/alice/probe/" in page
    assert "&lt;b&gt;Probe&lt;/b&gt; for the <mark>wishbone</mark>" in page
    assert "<code><mark>wishbone</mark>-jig.stl</code>" in page
    assert "1 design" in page


# -- visibility ----------------------------------------------------------------------------


@pytest.fixture
def secret(alice):
    design = DesignFactory(
        owner=alice,
        slug="secret",
        title="Zeppelin",
        summary="zeppelin summary",
        visibility=Design.Visibility.PRIVATE,
    )
    commit_files(design, {"README.md": "The zeppelin gondola.\n", "zeppelin-fin.stl": "solid\nendsolid\n"})
    return design


def test_a_private_design_never_shows_in_anyone_elses_results_snippets_or_counts(secret, alice, bob, client):
    public = DesignFactory(owner=bob, slug="blimp", title="Blimp", summary="Not a zeppelin")
    assert found(bob, "zeppelin ") == ["blimp"]
    for client_ in (client_for(bob), client_for(UserFactory()), None):
        body = api_search(client_ or client, q="zeppelin")
        assert body["count"] == 1
        assert [r["full_name"] for r in body["results"]] == [public.full_name]
        assert "gondola" not in str(body) and "fin.stl" not in str(body)
    page = client.get(reverse("design-list"), {"q": "zeppelin"}).content.decode()
    assert "gondola" not in page and "zeppelin-fin" not in page and "secret" not in page
    assert "1 design" in page
    # A word only the private design has finds nothing, and counts nothing.
    assert api_search(client, q="gondola")["count"] == 0


def test_the_owner_and_a_collaborator_find_the_private_design(secret, alice, bob):
    assert found(alice, "gondola ") == ["secret"]
    assert found(bob, "gondola ") == []
    services.collaborator_set(design=secret, actor=alice, user=bob, role="read")
    assert found(bob, "gondola ") == ["secret"]


# -- the index follows every change ---------------------------------------------------------


def test_the_index_follows_a_commit(car, bob):
    assert found(bob, "differential ") == []
    commit_files(car, {"drivetrain/differential.step": "ISO-10303-21;"}, "Add the differential")
    assert found(bob, "differential ") == ["go-kart"]


def test_the_index_follows_a_readme_edit(car, bob):
    commit_files(car, {"README.md": "# Go-kart\n\nNow with a roll cage.\n"}, "Rewrite")
    assert found(bob, "cage ") == ["go-kart"]
    assert found(bob, "knuckles ") == []


def test_the_index_follows_title_summary_and_visibility_changes(car, bob):
    services.design_update(design=car, title="Soapbox racer", summary="Gravity only")
    assert found(bob, "soapbox ") == ["go-kart"]
    assert found(bob, "gravity ") == ["go-kart"]
    services.design_update(design=car, visibility=Design.Visibility.PRIVATE)
    assert found(bob, "soapbox ") == []
    services.design_update(design=car, visibility=Design.Visibility.PUBLIC)
    assert found(bob, "soapbox ") == ["go-kart"]


def test_a_deleted_design_leaves_the_index(car, bob):
    services.design_delete(design=car)
    assert not SearchDocument.objects.exists()
    assert found(bob, "wishbone ") == []
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM designs_search_fts WHERE designs_search_fts MATCH 'wishbone'"
            )
            assert cursor.fetchone()[0] == 0


def test_the_index_follows_a_default_branch_change(car, alice, bob):
    services.branch_create(design=car, user=alice, name="electric")
    commit_files(car, {"battery-pack.step": "ISO-10303-21;"}, "Electric", branch="electric")
    assert found(bob, "battery ") == []
    services.design_update(design=car, default_branch="electric")
    assert found(bob, "battery ") == ["go-kart"]
    services.design_update(design=car, default_branch="main")
    assert found(bob, "battery ") == []


def test_a_full_refresh_keeps_a_title_changed_while_it_read_git(car, bob, monkeypatch):
    """The order of a race: the background refresh reads the row, then git; meanwhile a
    design_update commits and its own refresh finishes; then the first refresh writes."""
    read_entry = search_service.readme_among
    renamed = []

    def update_while_git_is_read(entries):
        if not renamed:
            renamed.append(True)
            services.design_update(design=Design.objects.get(pk=car.pk), title="Soapbox racer")
        return read_entry(entries)

    monkeypatch.setattr(search_service, "readme_among", update_while_git_is_read)
    search_service.search_document_refresh(design_id=car.pk)
    assert renamed
    assert found(bob, "soapbox ") == ["go-kart"]
    assert found(bob, "wishbone ") == ["go-kart"]


def test_the_refresh_task_gives_up_long_before_the_default_hour():
    assert search_index_refresh.time_limit <= 5 * 60


def test_a_fork_is_found_by_its_files(car, bob):
    services.design_fork(design=car, user=bob, slug="my-kart")
    assert sorted(found(bob, "wishbone ")) == ["go-kart", "my-kart"]


def test_reindex_search_rebuilds_every_document(car, bob):
    from django.core.management import call_command

    SearchDocument.objects.all().delete()
    assert found(bob, "wishbone ") == []
    call_command("reindex_search", verbosity=0)
    assert found(bob, "wishbone ") == ["go-kart"]


# -- pages of results --------------------------------------------------------------------


def test_results_are_paginated(alice, api):
    for n in range(5):
        DesignFactory(owner=alice, slug=f"wheel-{n}", title=f"Wheel {n}")
    first = api_search(api, q="wheel", per_page=2)
    third = api_search(api, q="wheel", per_page=2, page=3)
    assert first["count"] == third["count"] == 5
    assert len(first["results"]) == 2 and len(third["results"]) == 1
    seen = {r["slug"] for p in (1, 2, 3) for r in api_search(api, q="wheel", per_page=2, page=p)["results"]}
    assert seen == {f"wheel-{n}" for n in range(5)}


def test_a_page_of_results_takes_the_same_queries_whatever_its_size(alice, bob):
    for n in range(8):
        design = DesignFactory(
            owner=UserFactory(), slug=f"kart-{n}", title=f"Kart {n}", tags=[f"t{n}", "kart"]
        )
        commit_files(design, {f"parts/wheel-{n}.stl": "solid\nendsolid\n"})
    services.design_fork(design=design, user=bob, slug="forked-kart")
    client = client_for(bob)

    def queries(per_page: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            body = api_search(client, q="kart wheel", per_page=per_page)
        assert len(body["results"]) == min(per_page, 9)
        return len(captured.captured_queries)

    queries(9)  # the token's first use is recorded once
    assert queries(1) == queries(9)


def test_the_design_list_page_takes_the_same_queries_whatever_the_number_of_results(alice, client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(reverse("design-list"), {"q": "kart"})
        assert response.status_code == 200
        return len(captured.captured_queries)

    DesignFactory(owner=alice, slug="kart-0", title="Kart", tags=["a"])
    one = queries()
    for n in range(1, 6):
        DesignFactory(owner=UserFactory(), slug=f"kart-{n}", title="Kart", tags=["b", f"c{n}"])
    assert queries() == one
