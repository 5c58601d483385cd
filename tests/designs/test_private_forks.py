"""Private means private, forks included: a fork's access is always a subset of its
upstream's, and whoever loses access to a private design loses what they held below it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs import services
from designs.models import Collaborator, Design
from hub.exceptions import ValidationError
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db


@pytest.fixture
def secret(alice, bob):
    design = DesignFactory(owner=alice, slug="secret", visibility=Design.Visibility.PRIVATE)
    commit_files(design, {"README.md": "# Not yet public\n"})
    services.collaborator_set(design=design, actor=alice, user=bob, role="read")
    return design


def test_a_fork_of_a_private_design_is_private(secret, bob):
    fork = services.design_fork(design=secret, user=bob)
    assert fork.visibility == Design.Visibility.PRIVATE


def test_a_read_only_collaborator_cannot_make_their_fork_public(secret, bob):
    fork = services.design_fork(design=secret, user=bob)
    response = client_for(bob).patch(
        reverse("api-design-detail", args=["bob", fork.slug]), {"visibility": "public"}, format="json"
    )
    assert response.status_code == 400, response.content
    assert "stays private while alice/secret" in response.json()["detail"]
    fork.refresh_from_db()
    assert fork.visibility == Design.Visibility.PRIVATE
    # Nor can a fork of the fork, two steps down.
    carol = UserFactory(username="carol")
    services.collaborator_set(design=secret, actor=secret.owner, user=carol, role="read")
    services.collaborator_set(design=fork, actor=bob, user=carol, role="read")
    grandchild = services.design_fork(design=fork, user=carol, slug="secret-c")
    assert grandchild.visibility == Design.Visibility.PRIVATE
    with pytest.raises(ValidationError, match="bob/secret"):
        services.design_update(design=grandchild, visibility="public")


def test_a_fork_may_go_public_once_its_upstream_is(secret, alice, bob):
    fork = services.design_fork(design=secret, user=bob)
    services.design_update(design=secret, visibility="public")
    services.design_update(design=fork, visibility="public")
    fork.refresh_from_db()
    assert fork.visibility == Design.Visibility.PUBLIC


def test_a_private_fork_takes_no_collaborator_who_cannot_see_the_upstream(secret, bob):
    fork = services.design_fork(design=secret, user=bob)
    stranger = UserFactory(username="mallory")
    with pytest.raises(ValidationError, match="mallory cannot see alice/secret"):
        services.collaborator_set(design=fork, actor=bob, user=stranger, role="read")
    assert not Collaborator.objects.filter(design=fork, user=stranger).exists()
    assert client_for(stranger).get(reverse("api-design-detail", args=["bob", fork.slug])).status_code == 404


def test_losing_access_to_a_private_design_deletes_ones_forks_and_ends_collaborations_below_it(
    secret, alice, bob, django_capture_on_commit_callbacks
):
    carol = UserFactory(username="carol")
    services.collaborator_set(design=secret, actor=alice, user=carol, role="read")
    bobs = services.design_fork(design=secret, user=bob)
    services.collaborator_set(design=bobs, actor=bob, user=carol, role="write")
    carols = services.design_fork(design=bobs, user=carol, slug="secret-c")
    unrelated = DesignFactory(owner=carol, slug="own-work", visibility=Design.Visibility.PRIVATE)

    with django_capture_on_commit_callbacks(execute=True):
        services.collaborator_remove(design=secret, actor=alice, user=carol)

    assert not Design.objects.filter(pk=carols.pk).exists()
    assert not carols.repo_path.exists()
    assert not Collaborator.objects.filter(design=bobs, user=carol).exists()
    assert Design.objects.filter(pk=bobs.pk).exists()  # Bob still has access: his fork stays
    assert Design.objects.filter(pk=unrelated.pk).exists()
    assert client_for(carol).get(reverse("api-design-detail", args=["bob", bobs.slug])).status_code == 404


def test_forks_made_while_the_design_was_public_are_not_taken_back(alice, bob):
    design = DesignFactory(owner=alice, slug="once-open")
    commit_files(design, {"README.md": "# Open\n"})
    services.collaborator_set(design=design, actor=alice, user=bob, role="write")
    fork = services.design_fork(design=design, user=bob)
    services.design_update(design=design, visibility="private")
    services.collaborator_remove(design=design, actor=alice, user=bob)
    fork.refresh_from_db()
    assert fork.visibility == Design.Visibility.PUBLIC


def test_lfs_objects_of_a_private_upstream_stay_invisible_to_strangers(secret, alice, bob, settings):
    from designs.selectors import lfs_objects_readable
    from designs.services.lfs import lfs_object_link

    oid = "a" * 64
    lfs_object_link(design=secret, oid=oid, size=10)
    fork = services.design_fork(design=secret, user=bob)
    assert fork.lfs_links.filter(lfs_object__oid=oid).exists()
    stranger = UserFactory(username="eve")
    assert lfs_objects_readable(stranger, [oid]) == {}
    assert lfs_objects_readable(bob, [oid]) == {oid: 10}


def test_objects_added_after_the_upstream_turned_private_never_reach_an_older_public_fork(alice, bob):
    from designs.selectors import lfs_objects_readable
    from designs.services.lfs import lfs_object_link

    design = DesignFactory(owner=alice, slug="was-open")
    commit_files(design, {"README.md": "# Open\n"})
    early = "b" * 64
    lfs_object_link(design=design, oid=early, size=5)
    fork = services.design_fork(design=design, user=bob)  # public, made while it was public
    services.design_update(design=design, visibility="private")
    later = "c" * 64
    lfs_object_link(design=design, oid=later, size=7)
    stranger = UserFactory(username="eve")
    assert lfs_objects_readable(stranger, [early, later]) == {early: 5}  # the fork has only what it took
    assert not fork.lfs_links.filter(lfs_object__oid=later).exists()
