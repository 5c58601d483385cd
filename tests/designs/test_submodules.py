"""A design may hold submodules (gitlinks: a folder pinned to a commit of another
repository), as pushed by git. Every page and API answer shows them as submodule entries
with the pinned commit, never as files, and never fails: assemblies build on this."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs.git import FileEdit, Person
from designs.services import proposals
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db

PINNED = "1234567890abcdef1234567890abcdef12345678"
GITMODULES = (
    '[submodule "modules/wheel"]\n\tpath = modules/wheel\n\turl = https://hub.example.org/ada/wheel.git\n'
)


def push_submodule(design, *, branch: str = "main", pinned: str = PINNED) -> str:
    """What a push adding a submodule leaves: a gitlink entry and its .gitmodules."""
    repo = design.repo
    head = repo.branch_head(branch)
    gitmodules = repo.write_blob(GITMODULES.encode())
    tree = repo.build_tree(
        head,
        [
            FileEdit(path=".gitmodules", sha=gitmodules, mode="100644"),
            FileEdit(path="modules/wheel", sha=pinned, mode="160000"),
        ],
    )
    who = Person(name="Ada", email="ada@example.org")
    sha = repo.commit_tree(tree, [head] if head else [], "Add the wheel module", author=who, committer=who)
    repo.update_ref(f"refs/heads/{branch}", sha, head)
    return sha


@pytest.fixture
def car(alice):
    design = DesignFactory(owner=alice, slug="car")
    commit_files(design, {"README.md": "# Car\n", "modules/README.md": "Modules live here.\n"})
    return design


def test_tree_pages_show_a_submodule_with_its_pinned_commit(client, car):
    push_submodule(car)
    root = client.get(reverse("design-detail", args=["alice", "car"]))
    assert root.status_code == 200
    folder = client.get(reverse("design-tree", args=["alice", "car", "modules"]))
    assert folder.status_code == 200
    text = folder.content.decode()
    assert "wheel" in text and PINNED[:10] in text and "submodule" in text.lower()
    # Its address is a submodule, not a folder or a file of this design.
    for name in ("design-tree", "design-blob", "design-raw"):
        response = client.get(reverse(name, args=["alice", "car", "modules/wheel"]))
        assert response.status_code == 404, (name, response.status_code)


def test_history_commit_and_compare_pages_show_the_submodule_change(client, car):
    base = car.repo.branch_head("main")
    sha = push_submodule(car)
    for response in (
        client.get(reverse("design-history", args=["alice", "car"])),
        client.get(reverse("design-commit", args=["alice", "car", sha])),
        client.get(reverse("design-compare", args=["alice", "car"]), {"base": base, "head": sha}),
    ):
        assert response.status_code == 200
    commit_page = client.get(reverse("design-commit", args=["alice", "car", sha])).content.decode()
    assert "modules/wheel" in commit_page and PINNED[:10] in commit_page


def test_a_moved_submodule_pin_is_a_change_of_commit(client, car):
    first = push_submodule(car)
    second = push_submodule(car, pinned="fedcba0987654321fedcba0987654321fedcba09")
    page = client.get(reverse("design-commit", args=["alice", "car", second])).content.decode()
    assert PINNED[:10] in page and "fedcba0987" in page
    assert first != second


def test_the_api_lists_submodules_as_such(alice_api, car):
    sha = push_submodule(car)
    tree = alice_api.get(reverse("api-design-tree", args=["alice", "car"]), {"path": "modules"})
    assert tree.status_code == 200, tree.content
    [wheel] = [e for e in tree.json()["entries"] if e["path"] == "modules/wheel"]
    assert wheel["kind"] == "submodule" and wheel["sha"] == PINNED
    for name, params in (
        ("api-design-commit", None),
        ("api-design-diff", {"base": car.repo.commit(sha).parents[0], "head": sha}),
    ):
        args = ["alice", "car", sha] if params is None else ["alice", "car"]
        response = alice_api.get(reverse(name, args=args), params or {})
        assert response.status_code == 200, (name, response.content)
    raw = alice_api.get(reverse("api-design-raw", args=["alice", "car"]), {"path": "modules/wheel"})
    assert raw.status_code == 404


def test_a_proposal_that_adds_a_submodule_can_be_reviewed(client, car, alice, bob):
    from designs import services

    fork = services.design_fork(design=car, user=bob)
    push_submodule(fork)
    proposal = proposals.proposal_create(
        target=car, user=bob, source=fork, source_branch="main", title="Wheel"
    )
    page = client.get(reverse("design-proposal", args=["alice", "car", proposal.number]))
    assert page.status_code == 200
    assert "modules/wheel" in page.content.decode()
