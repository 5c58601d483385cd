"""A real `git push` reaches search: the hub's post-receive follow-up queues the design's
reindex, and a word only in a pushed file's name then finds it."""

from __future__ import annotations

import time

import pytest

from designs.models import SearchDocument
from designs.search import design_search
from hub import services as hub_services
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def found_by(viewer, text: str) -> list[str]:
    return [d.slug for d in design_search(viewer=viewer, text=text)[0:10]]


def wait_for_index(design, *, word: str, timeout: float = 90) -> None:
    """The server's embedded worker reindexes after the push's response: wait for it."""
    deadline = time.monotonic() + timeout
    while (
        word
        not in SearchDocument.objects.filter(design=design)
        .values_list("path_words", flat=True)
        .first()
        .split()
    ):
        if time.monotonic() > deadline:
            raise AssertionError(f"the pushed file's words never reached the index ({word!r})")
        time.sleep(0.3)


def test_a_pushed_file_name_finds_the_design(hub_server, git):
    maker = UserFactory()
    _, token = hub_services.token_create(user=maker, name="git")
    design = DesignFactory(owner=maker, slug="rover")
    commit_files(design, {"README.md": "# Rover\n"}, "Start")
    stranger = UserFactory()
    assert found_by(stranger, "rocker ") == []

    url = hub_server.repo_url(maker.username, design.slug, user=maker.username, token=token)
    git("clone", url, "work")
    work = git.home / "work"
    (work / "suspension").mkdir()
    (work / "suspension" / "rockerBogie_v3.scad").write_text("cube(1);\n")
    git("add", ".", cwd=work)
    git("commit", "-m", "Add the rocker-bogie", cwd=work)
    git("push", "origin", "main", cwd=work)

    wait_for_index(design, word="bogie")
    for word in ("rocker ", "bogie ", "v3 ", "rockerbogie "):
        assert found_by(stranger, word) == ["rover"], word
