"""A file name that is not UTF-8. git takes any bytes in a name; the hub's rules refuse
such names on every way in (pushes, mirrors, imports), but a history written before
them may hold one. The design must still work: its follow-ups (README, search, cover)
run, its pages render, and the odd name is shown with U+FFFD, as every listing shows it.
"""

from __future__ import annotations

import subprocess

import pytest
from django.test import Client

from designs import services
from designs.models import Design, SearchDocument
from designs.selectors import design_readme
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.django_db(transaction=True)

STL = b"solid part\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid part\n"


@pytest.fixture
def follow_ups_raise():
    """The tests run queued tasks inline; here a failing one fails the test."""
    from hub.celery import app

    before = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = True
    yield
    app.conf.task_eager_propagates = before


def add_as_is(design: Design, name: bytes, data: bytes) -> None:
    """A commit adding `name` at the top, written with plumbing, as an old history has it."""

    def git(*args: str, stdin: bytes | None = None) -> bytes:
        return subprocess.run(
            ["git", *args], cwd=design.repo_path, input=stdin, check=True, capture_output=True
        ).stdout

    head = git("rev-parse", "refs/heads/main").decode().strip()
    blob = git("hash-object", "-w", "--stdin", stdin=data).strip()
    entries = git("ls-tree", "-z", head) + b"100644 blob " + blob + b"\t" + name + b"\0"
    tree = git("mktree", "-z", stdin=entries).decode().strip()
    commit = git("commit-tree", tree, "-p", head, "-m", "From before the rules").decode().strip()
    git("update-ref", "refs/heads/main", commit, head)


def test_a_name_that_is_not_utf8_leaves_the_follow_ups_and_pages_working(alice, follow_ups_raise):
    design = DesignFactory(owner=alice, slug="old-rover")
    commit_files(design, {"README.md": "# Old rover\n"}, "Start")
    add_as_is(design, b"caf\xe9.stl", STL)

    # The next commit's follow-ups read the whole head (README, search paths, cover).
    commit_files(design, {"wheel.scad": "cylinder(5);\n"}, "Wheel")

    design.refresh_from_db()
    head = design.repo.branch_head("main")
    assert design_readme(design, sha=head)[0] == "README.md"
    paths = SearchDocument.objects.get(design=design).paths.splitlines()
    assert "caf\ufffd.stl" in paths and "wheel.scad" in paths
    client = Client()
    page = client.get("/alice/old-rover/")
    assert page.status_code == 200
    assert "caf\ufffd.stl" in page.content.decode()
    tree = client.get("/api/designs/alice/old-rover/tree/")
    assert tree.status_code == 200
    assert "caf\ufffd.stl" in [entry["path"] for entry in tree.json()["entries"]]
    assert client.get("/alice/old-rover/blob/wheel.scad").status_code == 200


def test_a_name_shown_with_u_fffd_is_never_taken_for_the_real_one(alice):
    """The page shows the name, it cannot address it: git is asked for the bytes the
    path names, so a rename or a delete of the shown name finds nothing, and nothing is
    copied or lost."""
    design = DesignFactory(owner=alice, slug="old-rover")
    commit_files(design, {"README.md": "# Old rover\n"}, "Start")
    add_as_is(design, b"caf\xe9.stl", STL)
    head = design.repo.branch_head("main")
    assert "caf\ufffd.stl" in [entry.path for entry in design.repo.ls_tree(head)]
    assert design.repo.entry(head, "caf\ufffd.stl") is None

    with pytest.raises(Exception) as refused:
        services.design_commit(
            design=design,
            author=alice,
            message="Rename",
            renames=[services.Rename("caf\ufffd.stl", "cafe.stl")],
        )
    assert "caf" in str(refused.value)
    assert design.repo.branch_head("main") == head
    assert sorted(entry.path for entry in design.repo.ls_tree(head)) == ["README.md", "caf\ufffd.stl"]
