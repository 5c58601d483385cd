"""A pull mirror is an upload path too: a refresh checks what its fetch brought against the
rules a push must pass (ref names, file paths, names that collide, blob sizes) before it
publishes anything. A refused refresh publishes nothing, says why in the mirror's status
and is tried again later; once the remote is fixed, the next refresh goes through.

The remote is a design of the live `hub_server` whose repository these tests write with
plain git, as another git host would hold it: no rule of the hub checked it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.utils import timezone

from designs.models import PullMirror
from designs.services import mirrors
from tests.factories import DesignFactory, UserFactory, commit_files
from tests.git.conftest import PLAIN_GIT_ENV, HubServer

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    # Both ends are on 127.0.0.1 here; the default refuses loopback (see test_remote_urls).
    settings.FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS = True


def git_in(repo: Path, *args: str | bytes, stdin: bytes | None = None) -> str:
    """Plain `git <args>` in the bare repository `repo`; its output, stripped."""
    proc = subprocess.run(
        ["git", *args], cwd=repo, input=stdin, capture_output=True, env={**PLAIN_GIT_ENV, "HOME": str(repo)}
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc.stdout.decode(errors="replace").strip()


def commit_as_is(repo: Path, files: dict[str | bytes, bytes], *, branch: str = "main") -> str:
    """A commit on `branch` adding `files` (top-level names, as text or as the bytes git
    takes) to its tree, written with plumbing and no check of the hub's."""
    head = git_in(repo, "rev-parse", f"refs/heads/{branch}")
    entries = [entry.encode() for entry in git_in(repo, "ls-tree", "-z", head).split("\0") if entry]
    for name, data in files.items():
        blob = git_in(repo, "hash-object", "-w", "--stdin", stdin=data)
        entries.append(
            b"100644 blob %s\t%s" % (blob.encode(), name if isinstance(name, bytes) else name.encode())
        )
    tree = git_in(repo, "mktree", "-z", stdin=b"".join(entry + b"\0" for entry in entries))
    commit = git_in(repo, "commit-tree", tree, "-p", head, "-m", "As the remote has it")
    git_in(repo, "update-ref", f"refs/heads/{branch}", commit, head)
    return commit


def published(design) -> dict[str, str]:
    return {
        ref: sha for ref, sha in design.repo.refs().items() if ref.startswith(("refs/heads/", "refs/tags/"))
    }


@pytest.fixture
def remote(hub_server: HubServer):
    owner = UserFactory()
    design = DesignFactory(owner=owner, slug="rover")
    commit_files(design, {"README.md": "# Rover\n", "wheel.scad": "cylinder(5);\n"}, "Start")
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
    assert published(design) == published(remote)
    return design


def assert_refused(mirror, before: dict[str, str], *words: str) -> None:
    assert mirrors.mirror_refresh(design=mirror) is None
    row = PullMirror.objects.get(design=mirror)
    assert row.failures == 1 and row.refreshing_since is None
    assert row.next_refresh_at > timezone.now(), "it is tried again later"
    assert "nothing was published" in row.last_error
    for word in words:
        assert word in row.last_error, row.last_error
    assert published(mirror) == before, "a refused refresh publishes nothing"
    staged = {ref: sha for ref, sha in mirror.repo.refs().items() if ref.startswith(mirrors.STAGING)}
    assert staged == {}, "nor keeps refs to what it fetched"
    assert mirror.repo.left_quarantines() == []


def assert_refreshed(mirror, remote) -> None:
    assert mirrors.mirror_refresh(design=mirror) is not None
    row = PullMirror.objects.get(design=mirror)
    assert row.failures == 0 and row.last_error == ""
    assert published(mirror) == published(remote)
    assert mirror.repo.fsck()[0]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("CON.txt", "reserved on Windows"),
        ("back\\slash.stl", "backslash"),
        ("dot-at-end.", "ends with a dot"),
        ("invoice\u202etxt.exe", "invisible or direction-changing"),
        (b"caf\xe9.scad", "File names must be UTF-8 text: 'caf\\xe9.scad'"),
    ],
)
def test_a_refresh_bringing_a_path_the_rules_refuse_publishes_nothing(mirror, remote, name, rule):
    before = published(mirror)
    good = remote.repo.branch_head("main")
    commit_as_is(remote.repo_path, {name: b"x\n"})
    assert_refused(mirror, before, rule)

    git_in(remote.repo_path, "update-ref", "refs/heads/main", good)
    commit_files(remote, {"wheel.scad": "cylinder(6);\n"}, "Bigger wheel")
    assert_refreshed(mirror, remote)
    assert mirror.repo.commit("main").summary == "Bigger wheel"


def test_a_refresh_bringing_names_that_collide_publishes_nothing(mirror, remote):
    before = published(mirror)
    good = remote.repo.branch_head("main")
    commit_as_is(remote.repo_path, {"readme.md": b"# Rover, again\n"})
    assert_refused(mirror, before, "'readme.md'", "'README.md'", "would be the same file")

    git_in(remote.repo_path, "update-ref", "refs/heads/main", good)
    assert_refreshed(mirror, remote)


def test_a_refused_refresh_that_deletes_a_packed_branch_leaves_no_lock_behind(mirror, remote):
    """A refused refresh that would have deleted a packed branch (the remote deleted it)
    leaves no lock file behind, packed-refs' included, and drops its staging refs (some
    packed too): the next refresh moves the same refs."""
    git_in(remote.repo_path, "branch", "spare", "main")
    assert_refreshed(mirror, remote)
    git_in(mirror.repo_path, "pack-refs", "--all")
    before = published(mirror)
    good = remote.repo.branch_head("main")
    git_in(remote.repo_path, "branch", "-D", "spare")
    commit_as_is(remote.repo_path, {"CON.txt": b"x\n"})
    assert_refused(mirror, before, "reserved on Windows")
    git_locks = [path for path in mirror.repo_path.rglob("*.lock") if path.name != "fabhub-upkeep.lock"]
    assert git_locks == []

    git_in(remote.repo_path, "update-ref", "refs/heads/main", good)
    assert_refreshed(mirror, remote)
    assert "refs/heads/spare" not in published(mirror)


def test_a_refresh_bringing_an_oversized_blob_publishes_nothing(mirror, remote, settings):
    settings.FABHUB_MAX_GIT_BLOB_BYTES = 4096
    before = published(mirror)
    good = remote.repo.branch_head("main")
    refused = commit_as_is(remote.repo_path, {"body.step": b"x" * 5000})
    assert_refused(mirror, before, "body.step", "limit for files in git history", "Git LFS")
    # Nothing of it stays to be read by object id either (git's protocol v2 serves any
    # object a repository holds; so do the by-sha pages).
    big = git_in(remote.repo_path, "rev-parse", f"{refused}:body.step")
    assert not mirror.repo.has_object(refused) and not mirror.repo.has_object(big)
    assert mirror.repo.resolve("fabhub/mirror/heads/main") is None

    git_in(remote.repo_path, "update-ref", "refs/heads/main", good)
    commit_as_is(remote.repo_path, {"small.step": b"x" * 4000})
    assert_refreshed(mirror, remote)


def test_a_refresh_bringing_a_branch_whose_name_hides_characters_publishes_nothing(mirror, remote):
    before = published(mirror)
    head = remote.repo.branch_head("main")
    git_in(remote.repo_path, "update-ref", "refs/heads/fix\u202eexe", head)
    assert_refused(mirror, before, "invisible or direction-changing")

    git_in(remote.repo_path, "update-ref", "-d", "refs/heads/fix\u202eexe")
    git_in(remote.repo_path, "update-ref", "refs/heads/fix", head)
    assert_refreshed(mirror, remote)
    assert "refs/heads/fix" in published(mirror)


def test_a_refresh_bringing_a_ref_whose_name_is_not_utf8_publishes_nothing(mirror, remote):
    """git takes any bytes in a ref name; the hub keeps names as text, so a refresh that
    would publish one is refused whole, the other refs with it."""
    before = published(mirror)
    head = remote.repo.branch_head("main")
    git_in(remote.repo_path, b"update-ref", b"refs/heads/caf\xe9", head.encode())
    commit_files(remote, {"wheel.scad": "cylinder(6);\n"}, "Bigger wheel")
    assert_refused(mirror, before, "refs/heads/caf\\xe9: ref names must be UTF-8 text.")

    git_in(remote.repo_path, b"update-ref", b"-d", b"refs/heads/caf\xe9")
    assert_refreshed(mirror, remote)
    assert mirror.repo.commit("main").summary == "Bigger wheel"


def test_history_rewritten_and_tags_moved_on_the_remote_follow_on_the_mirror(mirror, remote):
    """The rules that guard a design's own history do not hold a mirror: it copies its
    remote, whose owner may rewrite the default branch and move or delete tags."""
    repo = remote.repo_path
    start = remote.repo.branch_head("main")
    git_in(repo, "update-ref", "refs/tags/v1", start)
    assert_refreshed(mirror, remote)

    rewritten = git_in(repo, "commit-tree", f"{start}^{{tree}}", "-m", "Rewritten")
    git_in(repo, "update-ref", "refs/heads/main", rewritten)
    git_in(repo, "update-ref", "refs/tags/v1", rewritten)
    git_in(repo, "update-ref", "refs/tags/v0", start)
    assert_refreshed(mirror, remote)
    assert mirror.repo.commit("main").summary == "Rewritten"

    git_in(repo, "update-ref", "-d", "refs/tags/v1")
    assert_refreshed(mirror, remote)
    assert "refs/tags/v1" not in published(mirror)


def test_a_tag_of_an_oversized_blob_is_refused_too(mirror, remote, settings):
    """git lets a tag name a blob, which no commit holds: its size is checked all the same."""
    settings.FABHUB_MAX_GIT_BLOB_BYTES = 4096
    before = published(mirror)
    blob = git_in(remote.repo_path, "hash-object", "-w", "--stdin", stdin=b"x" * 5000)
    git_in(remote.repo_path, "update-ref", "refs/tags/huge", blob)
    assert_refused(mirror, before, "limit for files in git history")

    git_in(remote.repo_path, "update-ref", "-d", "refs/tags/huge")
    small = git_in(remote.repo_path, "hash-object", "-w", "--stdin", stdin=b"x" * 4000)
    git_in(remote.repo_path, "update-ref", "refs/tags/small", small)
    assert_refreshed(mirror, remote)


def test_a_refresh_killed_with_its_fetch_in_quarantine_is_cleaned_up_by_the_next(mirror, remote):
    """What a killed refresh leaves: its quarantine folder, and staging refs pointing at
    objects that went with it. The next refresh starts the staging area again."""
    left = mirror.repo_path / "objects" / "fabhub-fetch-killed"
    (left / "pack").mkdir(parents=True)
    dangling = mirror.repo_path / "refs" / "fabhub" / "mirror" / "heads" / "main"
    dangling.parent.mkdir(parents=True, exist_ok=True)
    dangling.write_text("1" * 40 + "\n")
    commit_files(remote, {"wheel.scad": "cylinder(7);\n"}, "Wider wheel")
    assert_refreshed(mirror, remote)
    assert not left.exists()
