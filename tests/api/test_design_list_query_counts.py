"""Every list endpoint of the designs API takes as many queries for many rows as for one."""

from __future__ import annotations

import base64
import itertools
import json

import pytest
from django.urls import reverse

from designs import services
from designs.models import PushMirror
from hub import services as hub_services
from tests.api.querycounts import MANY, assert_queries_do_not_grow_with_rows, plain_list, results
from tests.conftest import client_for
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db

numbers = itertools.count(1)


def new_user():
    return UserFactory(username=f"person{next(numbers)}")


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="bracket", tags=["jig"])
    commit_files(design, {"README.md": "# Bracket\n"}, "Start")
    return design


def design_url(name: str, design, *args) -> str:
    return reverse(name, args=[design.owner.username, design.slug, *args])


def test_listing_designs_takes_the_same_queries_for_one_design_as_for_many(api):
    def add(n):
        for _ in range(n):
            upstream = DesignFactory(owner=new_user(), tags=[f"t{next(numbers)}", "shared"])
            commit_files(upstream, {"a.txt": "1"})
            services.design_fork(design=upstream, user=new_user())

    assert_queries_do_not_grow_with_rows(api, reverse("api-design-list"), add=add, listed=results, per_row=2)


def test_listing_forks_takes_the_same_queries_for_one_fork_as_for_many(api, design):
    def add(n):
        for _ in range(n):
            services.design_fork(design=design, user=new_user())

    assert_queries_do_not_grow_with_rows(api, design_url("api-design-forks", design), add=add, listed=results)


def test_listing_commits_takes_the_same_queries_for_one_commit_as_for_many(api, design):
    def add(n):
        for _ in range(n):
            commit_files(design, {f"part-{next(numbers)}.txt": "x"}, "Another part")

    # The design's first commit is listed too.
    assert_queries_do_not_grow_with_rows(
        api, design_url("api-design-history", design), add=add, listed=results
    )


def test_listing_branches_takes_the_same_queries_for_one_branch_as_for_many(api, alice, design):
    def add(n):
        for _ in range(n):
            services.branch_create(design=design, user=alice, name=f"variant-{next(numbers)}")

    assert_queries_do_not_grow_with_rows(
        api, design_url("api-design-branches", design), add=add, listed=plain_list
    )


def test_listing_tags_takes_the_same_queries_for_one_tag_as_for_many(api, alice, design):
    def add(n):
        for _ in range(n):
            services.tag_create(design=design, user=alice, name=f"v{next(numbers)}", target=None, notes="x")

    assert_queries_do_not_grow_with_rows(
        api, design_url("api-design-tags", design), add=add, listed=plain_list
    )


def test_listing_a_folder_takes_the_same_queries_for_one_file_as_for_many(api, design):
    def add(n):
        commit_files(design, {f"parts/p{next(numbers)}.txt": "x" for _ in range(n)})

    assert_queries_do_not_grow_with_rows(
        api,
        design_url("api-design-tree", design),
        params={"path": "parts"},
        add=add,
        listed=lambda r: r.json()["entries"],
    )


def test_a_diff_takes_the_same_queries_for_one_changed_file_as_for_many(api, design):
    base = design.repo.branch_head("main")

    def add(n):
        commit_files(design, {f"notes/n{next(numbers)}.txt": "x\ny\n" for _ in range(n)})

    assert_queries_do_not_grow_with_rows(
        api,
        design_url("api-design-diff", design),
        params={"base": base, "head": "main"},
        add=add,
        listed=lambda r: r.json()["files"],
    )


def test_a_diff_takes_the_same_queries_for_one_added_mesh_as_for_many(api, design, background_tasks_run):
    from tests.printing.factories import box_stl

    base = design.repo.branch_head("main")

    def add(n):
        commit_files(
            design, {f"parts/box-{k}.stl": box_stl(x=10 + k) for k in (next(numbers) for _ in range(n))}
        )

    assert_queries_do_not_grow_with_rows(
        api,
        design_url("api-design-diff", design),
        params={"base": base, "head": "main"},
        add=add,
        listed=lambda r: r.json()["files"],
    )


def test_a_diff_takes_the_same_queries_for_one_changed_mesh_as_for_many(api, design, background_tasks_run):
    """Changed meshes also read their cached geometric diffs (BlobDiff): one query for all."""
    from tests.printing.factories import box_stl

    commit_files(design, {f"parts/box-{k}.stl": box_stl(x=10 + k) for k in range(MANY)})
    base = design.repo.branch_head("main")
    changed = iter(range(MANY))

    def add(n):
        commit_files(
            design, {f"parts/box-{k}.stl": box_stl(x=10 + k, y=12) for k in (next(changed) for _ in range(n))}
        )

    # The request before each count computes and caches the geometric diffs.
    assert_queries_do_not_grow_with_rows(
        api,
        design_url("api-design-diff", design),
        params={"base": base, "head": "main"},
        add=add,
        listed=lambda r: r.json()["files"],
    )


def test_listing_collaborators_takes_the_same_queries_for_one_as_for_many(alice, alice_api, design):
    def add(n):
        for _ in range(n):
            services.collaborator_set(design=design, actor=alice, user=new_user(), role="write")

    assert_queries_do_not_grow_with_rows(
        alice_api, design_url("api-design-collaborators", design), add=add, listed=plain_list
    )


def test_listing_meshes_takes_the_same_queries_for_one_mesh_as_for_many(api, design, background_tasks_run):
    from tests.printing.factories import box_stl

    def add(n):
        commit_files(
            design, {f"parts/box-{k}.stl": box_stl(x=10 + k) for k in (next(numbers) for _ in range(n))}
        )

    assert_queries_do_not_grow_with_rows(
        api, design_url("api-design-meshes", design), add=add, listed=lambda r: r.json()["files"]
    )


def propose_from_a_fork(design) -> None:
    """A new person forks the design, changes it and proposes the change through the API."""
    person = new_user()
    fork = services.design_fork(design=design, user=person)
    commit_files(fork, {f"idea-{person.username}.txt": "x"}, "An idea", author=person)
    response = client_for(person).post(
        design_url("api-design-proposals", design),
        {"title": f"Idea of {person.username}", "source": fork.full_name, "source_branch": "main"},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_listing_proposals_takes_the_same_queries_for_one_as_for_many(api, design):
    def add(n):
        for _ in range(n):
            propose_from_a_fork(design)

    assert_queries_do_not_grow_with_rows(
        api, design_url("api-design-proposals", design), add=add, listed=results
    )


def test_listing_a_proposal_s_commits_takes_the_same_queries_for_one_as_for_many(api, design, bob):
    fork = services.design_fork(design=design, user=bob)
    first = True

    def add(n):
        nonlocal first
        for _ in range(n):
            commit_files(fork, {f"step-{next(numbers)}.txt": "x"}, "A step", author=bob)
        if first:
            response = client_for(bob).post(
                design_url("api-design-proposals", design),
                {"title": "Steps", "source": fork.full_name, "source_branch": "main"},
                format="json",
            )
            assert response.status_code == 201, response.content
            first = False

    assert_queries_do_not_grow_with_rows(
        api, design_url("api-design-proposal-commits", design, 1), add=add, listed=plain_list
    )


def test_a_proposal_s_diff_takes_the_same_queries_for_one_changed_file_as_for_many(api, design, bob):
    fork = services.design_fork(design=design, user=bob)
    first = True

    def add(n):
        nonlocal first
        commit_files(fork, {f"notes/n{next(numbers)}.txt": "x\ny\n" for _ in range(n)}, author=bob)
        if first:
            response = client_for(bob).post(
                design_url("api-design-proposals", design),
                {"title": "Notes", "source": fork.full_name, "source_branch": "main"},
                format="json",
            )
            assert response.status_code == 201, response.content
            first = False

    assert_queries_do_not_grow_with_rows(
        api,
        design_url("api-design-proposal-diff", design, 1),
        add=add,
        listed=lambda r: r.json()["files"],
    )


def test_listing_a_proposal_s_comments_takes_the_same_queries_for_one_as_for_many(api, design):
    propose_from_a_fork(design)
    url = design_url("api-design-proposal-comments", design, 1)

    def add(n):
        for _ in range(n):
            response = client_for(new_user()).post(url, {"body": "Looks good."}, format="json")
            assert response.status_code == 201, response.content

    assert_queries_do_not_grow_with_rows(api, url, add=add, listed=plain_list)


def test_listing_push_mirrors_takes_the_same_queries_for_one_as_for_many(alice, alice_api, design):
    def add(n):
        for _ in range(n):
            PushMirror.objects.create(
                design=design, url=f"https://example.org/m{next(numbers)}.git", created_by=alice
            )

    assert_queries_do_not_grow_with_rows(
        alice_api, design_url("api-design-push-mirrors", design), add=add, listed=plain_list
    )


def test_listing_lfs_locks_takes_the_same_queries_for_one_lock_as_for_many(client, alice, design):
    def add(n):
        for _ in range(n):
            person = new_user()
            services.collaborator_set(design=design, actor=alice, user=person, role="write")
            services.lfs_lock_create(design=design, user=person, path=f"cad/p{next(numbers)}.step")

    _, token = hub_services.token_create(user=alice, name="lfs", scope="read")
    credentials = base64.b64encode(f"alice:{token}".encode()).decode()
    client.defaults["HTTP_AUTHORIZATION"] = f"Basic {credentials}"
    client.defaults["HTTP_ACCEPT"] = "application/vnd.git-lfs+json"
    assert_queries_do_not_grow_with_rows(
        client,
        f"/alice/{design.slug}.git/info/lfs/locks",
        add=add,
        listed=lambda r: json.loads(r.content)["locks"],
    )
