"""The history API's design lookup (selectors.design_get_for_history) runs a statement
compiled once per process; it finds exactly what design_get finds, for every viewer."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from designs import selectors
from designs.models import Collaborator
from hub.exceptions import NotFound
from tests.factories import DesignFactory, UserFactory, commit_files


def _found(get, **kwargs):
    try:
        design = get(**kwargs)
    except NotFound:
        return None
    return (design.pk, design.owner.username, design.slug, design.default_branch)


@pytest.mark.django_db
def test_the_history_lookup_finds_what_design_get_finds_for_every_viewer_and_name():
    owner = UserFactory(username="ada")
    writer, reader, stranger = UserFactory(username="w"), UserFactory(username="r"), UserFactory(username="s")
    public = DesignFactory(owner=owner, slug="open_frame")
    private = DesignFactory(owner=owner, slug="secret.box", visibility="private")
    Collaborator.objects.create(design=private, user=writer, role="write")
    Collaborator.objects.create(design=public, user=reader, role="read")
    names = [
        ("ada", "open_frame"),
        ("ada", "OPEN_FRAME"),  # slugs are matched without regard to case
        ("ada", "open%frame"),  # LIKE's wildcards match only themselves
        ("ada", "open-frame"),
        ("ada", "secret.box"),
        ("ada", "Secret.Box"),
        ("Ada", "open_frame"),  # owners are matched exactly
        ("nobody", "open_frame"),
    ]
    found = set()
    for viewer in (AnonymousUser(), owner, writer, reader, stranger):
        for owner_name, slug in names:
            expected = _found(selectors.design_get, user=viewer, owner=owner_name, slug=slug)
            got = _found(selectors.design_get_for_history, user=viewer, owner=owner_name, slug=slug)
            assert got == expected, (viewer, owner_name, slug)
            if expected is not None:
                found.add((viewer.username or "anonymous", slug))
    everyone = {
        (who, slug) for who in ("anonymous", "ada", "w", "r", "s") for slug in ("open_frame", "OPEN_FRAME")
    }
    assert found == everyone | {(who, slug) for who in ("ada", "w") for slug in ("secret.box", "Secret.Box")}


@pytest.mark.django_db
@pytest.mark.parametrize("owner_name, slug", [("ada", "frame\x00"), ("ada\x00", "frame"), ("ada", "\x00")])
def test_a_name_holding_a_nul_byte_names_no_design_on_any_database(owner_name, slug):
    DesignFactory(owner=UserFactory(username="ada"), slug="frame")

    with pytest.raises(NotFound):
        selectors.design_get_for_history(user=AnonymousUser(), owner=owner_name, slug=slug)


@pytest.mark.django_db
def test_the_history_lookup_reads_one_statement_and_defers_what_it_does_not_read(
    django_assert_num_queries,
):
    owner = UserFactory(username="ada")
    DesignFactory(owner=owner, slug="frame")

    with django_assert_num_queries(1):
        design = selectors.design_get_for_history(user=owner, owner="ada", slug="frame")
        assert design.full_name == "ada/frame" and design.repo_path.name == "frame.git"
    with django_assert_num_queries(1):
        assert design.title  # a deferred field is read when asked for, as with only()


def test_a_private_history_is_not_found_for_strangers_and_found_for_collaborators(alice, bob, bob_api, api):
    design = DesignFactory(owner=alice, slug="secret", visibility="private")
    commit_files(design, {"README.md": "# Secret"})
    history = reverse("api-design-history", args=["alice", "secret"])

    assert bob_api.get(history).status_code == 404
    assert api.get(history).status_code == 404
    Collaborator.objects.create(design=design, user=bob, role="read")
    assert bob_api.get(history).status_code == 200
