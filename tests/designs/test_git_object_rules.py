"""Every tree the hub writes passes git's own object checks (receive.fsckObjects), so a name
git would refuse from a push is refused from the web and the API too, with git's words; and
names that render deceptively (invisible or direction-changing characters) are refused in
file, branch and tag names."""

from __future__ import annotations

import pytest
from django.urls import reverse

from designs import services
from designs.git import TreeRefused
from hub.exceptions import ValidationError
from tests.factories import DesignFactory, commit_files, upload

pytestmark = pytest.mark.django_db

EVIL_GITMODULES = '[submodule "x"]\n\tpath = x\n\turl = --upload-pack=touch /tmp/fabhub-pwned\n'


@pytest.fixture
def design(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    commit_files(design, {"README.md": "# Bracket\n"})
    return design


def assert_unchanged_and_fsck_clean(design, head: str) -> None:
    assert design.repo.branch_head("main") == head, "a refused write must not move the branch"
    ok, report = design.repo.fsck()
    assert ok, report
    assert not list((design.repo_path / "objects").glob("incoming-*")), "the quarantine was left behind"


@pytest.mark.parametrize(
    ("files", "git_says"),
    [
        # NTFS reads these as .git (8.3 short name; alternate data stream).
        ({"git~1/config": "x"}, "hasDotgit"),
        ({"GIT~1/hooks/post-checkout": "x"}, "hasDotgit"),
        ({"parts/.git::$INDEX_ALLOCATION/config": "x"}, "hasDotgit"),
        # A submodule URL that git would run as an option of git-upload-pack.
        ({".gitmodules": EVIL_GITMODULES}, "gitmodulesUrl"),
        ({"parts/.gitmodules": EVIL_GITMODULES}, "gitmodulesUrl"),  # git checks it at any depth
    ],
)
def test_web_and_api_writes_get_the_checks_git_gives_a_push(design, alice, files, git_says):
    head = design.repo.branch_head("main")
    with pytest.raises(
        ValidationError, match=f"Git refuses these files, as it would in a push: .*{git_says}"
    ):
        commit_files(design, files)
    assert_unchanged_and_fsck_clean(design, head)


def test_the_api_answers_git_s_refusal_with_a_400(design, alice_api):
    head = design.repo.branch_head("main")
    response = alice_api.post(
        reverse("api-design-upload", args=["alice", "bracket"]),
        {"files": [upload("GIT~1/config", b"x").content], "paths": ["GIT~1/config"], "message": "sneak"},
        format="multipart",
    )
    assert response.status_code == 400, response.content
    assert "hasDotgit" in response.json()["detail"]
    assert_unchanged_and_fsck_clean(design, head)


def test_a_rename_into_a_name_git_refuses_is_refused(design, alice):
    commit_files(design, {"notes/a.txt": "a\n"})
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match="hasDotgit"):
        services.design_commit(
            design=design,
            author=alice,
            message="rename",
            renames=[services.Rename(old_path="notes/a.txt", new_path="git~1/a.txt")],
        )
    assert_unchanged_and_fsck_clean(design, head)


def test_the_repository_layer_names_the_problem(design):
    repo = design.repo
    blob = repo.write_blob(b"x")
    from designs.git import FileEdit

    with pytest.raises(TreeRefused) as refused:
        repo.build_tree(repo.branch_head("main"), [FileEdit(path="git~1", sha=blob, mode="100644")])
    assert refused.value.problems == ["hasDotgit: contains '.git'"]


@pytest.mark.parametrize(
    "name",
    [
        "invoice\u202etxt.exe",  # RIGHT-TO-LEFT OVERRIDE: shows as "invoiceexe.txt"
        "parts/\u2066left\u2069.stl",  # directional isolates
        "zero\u200bwidth.stl",  # ZERO WIDTH SPACE
        "\ufeffbom.stl",  # ZERO WIDTH NO-BREAK SPACE
        "soft\u00adhyphen.stl",
    ],
)
def test_file_names_with_invisible_or_direction_changing_characters_are_refused(design, name):
    head = design.repo.branch_head("main")
    with pytest.raises(ValidationError, match="invisible or direction-changing"):
        commit_files(design, {name: "x"})
    assert_unchanged_and_fsck_clean(design, head)


@pytest.mark.parametrize("name", ["fix\u202e", "re\u200blease", "\u2067v1"])
def test_branch_and_tag_names_with_invisible_characters_are_refused(design, alice_api, name):
    from designs.git import valid_ref_name

    assert not valid_ref_name("heads", name)
    assert not valid_ref_name("tags", name)
    response = alice_api.post(
        reverse("api-design-branches", args=["alice", "bracket"]),
        {"name": name, "start": "main"},
        format="json",
    )
    assert response.status_code == 400, response.content
