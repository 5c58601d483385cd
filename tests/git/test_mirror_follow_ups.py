"""A pull mirror's refresh tells `refs_changed` what it changed (`RefMove`: the files that
differ between the default branch's head before and after, and whether a tag went), and
the follow-ups that read nothing it changed are skipped: the cover, the README, the
assembly check, the search document, the release files. Skipping must never leave
them other than running every follow-up would: after each kind of change on the remote,
what the refresh left equals what all of them, run again, leave.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from designs import services
from designs.models import AssemblyCheck, Design, ModuleUse, PullMirror, ReleaseAsset, SearchDocument
from designs.selectors import design_readme
from designs.services import mirrors
from tests.factories import DesignFactory, UserFactory, commit_files
from tests.git.conftest import PLAIN_GIT_ENV, HubServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STL = "solid cube\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\nvertex 0 1 0\nendloop\nendfacet\nendsolid\n"


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    settings.FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS = True


def git_in(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, env={**PLAIN_GIT_ENV, "HOME": str(repo)}
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode().strip()


@pytest.fixture
def remote(hub_server: HubServer):
    design = DesignFactory(owner=UserFactory(), slug="rover")
    commit_files(
        design,
        {"README.md": "# Rover\n", "wheel.scad": "cylinder(5);\n", "parts/axle.scad": "cube(2);\n"},
        "Start",
    )
    git_in(design.repo_path, "update-ref", "refs/tags/v1", design.repo.branch_head("main"))
    return design


@pytest.fixture
def mirror(hub_server: HubServer, remote):
    design = mirrors.mirror_create(
        owner=UserFactory(),
        slug="rover-copy",
        url=hub_server.repo_url(remote.owner.username, remote.slug),
        licence="MIT",
    )
    assert PullMirror.objects.get(design=design).last_error == ""
    ReleaseAsset.objects.create(
        design=design, tag="v1", name="rover.zip", sha256="0" * 64, size=0, content_type="application/zip"
    )
    return design


def what_follow_ups_left(design: Design) -> dict:
    design = Design.objects.select_related("owner").get(pk=design.pk)
    head = design.repo.branch_head(design.default_branch)
    document = SearchDocument.objects.get(design=design)
    return {
        "cover": design.cover_blob_sha,
        "readme": design_readme(design, sha=head) if head else None,
        "search": (document.readme_text, document.paths, document.readme_words, document.path_words),
        "release files": sorted(ReleaseAsset.objects.filter(design=design).values_list("tag", "name")),
        "modules used": sorted(
            ModuleUse.objects.filter(assembly=design).values_list("path", "module_id", "commit_sha")
        ),
        "assembly checks": sorted(
            AssemblyCheck.objects.filter(design=design, commit_sha=head).values_list("is_assembly", flat=True)
        ),
    }


def change_readme(remote):
    commit_files(remote, {"README.md": "# Rover\n\nNow with torque vectoring.\n"}, "README")


def add_a_file_in_a_folder(remote):
    commit_files(remote, {"parts/hub/spoke.scad": "cube(1);\n"}, "Spoke")


def change_a_file_s_content_only(remote):
    commit_files(remote, {"wheel.scad": "cylinder(7);\n"}, "Wider wheel")


def delete_a_file(remote):
    services.design_commit(design=remote, author=remote.owner, message="No axle", deletes=["parts/axle.scad"])


def add_a_mesh(remote):
    commit_files(remote, {"cad/wheel.stl": STL}, "Wheel mesh")


def delete_the_tag(remote):
    git_in(remote.repo_path, "update-ref", "-d", "refs/tags/v1")


def add_a_branch(remote):
    head = remote.repo.branch_head("main")
    git_in(remote.repo_path, "update-ref", "refs/heads/experiment", head)
    commit_files(remote, {"README.md": "# Rover, experimental\n"}, "Elsewhere", branch="experiment")


def add_a_submodule(remote):
    repo = remote.repo_path
    head = git_in(repo, "rev-parse", "refs/heads/main")
    listing = git_in(repo, "ls-tree", head)
    entries = listing + "\n160000 commit " + "1234567890abcdef1234567890abcdef12345678\tengine\n"
    tree = (
        subprocess.run(["git", "mktree"], cwd=repo, input=entries.encode(), capture_output=True, check=True)
        .stdout.decode()
        .strip()
    )
    commit = git_in(repo, "commit-tree", tree, "-p", head, "-m", "Engine module")
    git_in(repo, "update-ref", "refs/heads/main", commit, head)


@pytest.mark.parametrize(
    "change",
    [
        change_readme,
        add_a_file_in_a_folder,
        change_a_file_s_content_only,
        delete_a_file,
        add_a_mesh,
        delete_the_tag,
        add_a_branch,
        add_a_submodule,
    ],
)
def test_a_refresh_leaves_what_every_follow_up_would_leave(mirror, remote, change):
    before = what_follow_ups_left(mirror)
    change(remote)

    assert mirrors.mirror_refresh(design=mirror) is not None
    after_refresh = what_follow_ups_left(mirror)
    services.refs_changed(Design.objects.select_related("owner").get(pk=mirror.pk), new_commits=[])
    after_every_follow_up = what_follow_ups_left(mirror)

    assert after_refresh == after_every_follow_up
    if change not in (change_a_file_s_content_only, add_a_branch):
        assert after_refresh != before, "the change shows"


def test_a_refresh_that_changes_a_file_s_content_only_skips_search_readme_and_assembly(
    mirror, remote, monkeypatch
):
    queued: list[str] = []
    monkeypatch.setattr("designs.services.refs.enqueue", lambda name, *args: queued.append(name))
    change_a_file_s_content_only(remote)  # the remote's own follow-ups are queued too
    queued.clear()

    assert mirrors.mirror_refresh(design=mirror) is not None
    assert queued == []

    add_a_file_in_a_folder(remote)
    queued.clear()
    assert mirrors.mirror_refresh(design=mirror) is not None
    assert queued == ["designs.tasks.search_index_refresh"]


def add_a_file_and_tag_the_old_head(remote):
    """A new tag's commit is listed by the rules after the new head (refs/tags/ sorts
    after refs/heads/): the reader must still hold the head's listing, not the last."""
    git_in(remote.repo_path, "update-ref", "refs/tags/v0", remote.repo.branch_head("main"))
    add_a_file_in_a_folder(remote)


@pytest.mark.parametrize("change", [add_a_file_in_a_folder, add_a_submodule, add_a_file_and_tag_the_old_head])
def test_the_follow_ups_list_the_new_head_from_what_the_refresh_read(mirror, remote, monkeypatch, change):
    """The rules read the new head's every file; the search document (and the cover and
    README, when they run) find that listing, as git lists it, rather than run
    `git ls-tree` for it again."""
    from designs.git import ObjectReader, Repository

    change(remote)
    listed: list[tuple[str, ...]] = []
    run = Repository._run

    def recording(self, *args, **kwargs):
        if args and args[0] == "ls-tree":
            listed.append(args)
        return run(self, *args, **kwargs)

    read: list[tuple[ObjectReader, str]] = []  # by reader: the follow-ups have their own
    read_files = ObjectReader._read_files

    def reading(self, commit):
        read.append((self, commit))
        return read_files(self, commit)

    monkeypatch.setattr(Repository, "_run", recording)
    monkeypatch.setattr(ObjectReader, "_read_files", reading)
    assert mirrors.mirror_refresh(design=mirror) is not None

    assert listed == []
    assert len(read) == len({(id(reader), commit) for reader, commit in read}), (
        "a reader read a commit's trees twice"
    )
    head = mirror.repo.branch_head("main")
    document = SearchDocument.objects.get(design=mirror)
    assert document.commit_sha == head
    assert document.paths.splitlines() == git_in(
        mirror.repo_path, "ls-tree", "-r", "--name-only", head
    ).split("\n")
    kept = [(e.mode, e.kind, e.sha, e.path) for e in mirror.repo.tree_entries(head)]
    assert listed == [], "kept"
    by_git = [
        (
            meta.split()[0],
            "submodule" if meta.split()[1] == "commit" else meta.split()[1],
            meta.split()[2],
            path,
        )
        for meta, path in (
            line.split("\t", 1) for line in git_in(mirror.repo_path, "ls-tree", "-r", head).split("\n")
        )
    ]
    assert kept == by_git


def test_the_commit_graph_is_written_once_from_when_the_new_commits_are_in(mirror, remote, monkeypatch):
    """git writes the new commits' layer of the commit-graph while the refresh publishes
    them and runs the follow-ups, not after: one write, started before the refs move."""
    from designs.git import RefUpdates, Repository

    events: list[str] = []
    graph, apply = Repository.commit_graph_refreshed, RefUpdates.apply

    def graph_started(self):
        events.append("commit-graph")
        return graph(self)

    def published(self, updates):
        events.append("publish")
        return apply(self, updates)

    monkeypatch.setattr(Repository, "commit_graph_refreshed", graph_started)
    monkeypatch.setattr(RefUpdates, "apply", published)
    add_a_file_in_a_folder(remote)
    events.clear()

    assert mirrors.mirror_refresh(design=mirror) is not None
    assert events == ["commit-graph", "publish"]
    assert mirror.repo.depth(mirror.repo.branch_head("main")) == 2
