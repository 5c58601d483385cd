"""clone, pull and push with the stock git client against a real server."""

from __future__ import annotations

import subprocess
import threading

import pytest

from designs import services
from designs.models import Design
from hub import services as hub_services
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def maker():
    user = UserFactory()
    _, token = hub_services.token_create(user=user, name="git")
    user.raw_token = token
    return user


@pytest.fixture
def design(maker):
    design = DesignFactory(owner=maker)
    commit_files(design, {"README.md": "# Car\n", "chassis/frame.scad": "cube(10);\n"}, "Start")
    return design


def push_url(hub_server, design, user):
    return hub_server.repo_url(design.owner.username, design.slug, user=user.username, token=user.raw_token)


def test_anyone_clones_a_public_design(hub_server, design, git):
    git("clone", hub_server.repo_url(design.owner.username, design.slug), "work")
    work = git.home / "work"
    assert (work / "chassis" / "frame.scad").read_text() == "cube(10);\n"
    assert git("log", "--format=%s", cwd=work).stdout.split() == ["Start"]


def test_clone_with_protocol_v2_and_a_token(hub_server, design, maker, git):
    result = git(
        "-c",
        "protocol.version=2",
        "clone",
        push_url(hub_server, design, maker),
        "work",
        env={"GIT_TRACE_PACKET": "1"},
    )
    assert "version 2" in result.stderr
    assert (git.home / "work" / "README.md").exists()


def test_a_push_lands_and_the_hub_sees_the_new_commits(hub_server, design, maker, git):
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"
    (work / "suspension").mkdir()
    (work / "suspension" / "arm.scad").write_text("cylinder(5);\n")
    git("add", ".", cwd=work)
    git("commit", "-m", "Add the wishbone arm", cwd=work)
    before = Design.objects.get(pk=design.pk).updated_at
    git("push", "origin", "main", cwd=work)

    repo = design.repo
    head = repo.branch_head("main")
    assert repo.commit(head).summary == "Add the wishbone arm"
    assert repo.commit(head).author.email == "tess@example.org"
    assert Design.objects.get(pk=design.pk).updated_at > before
    assert repo.fsck()[0]

    # ...and a second clone pulls it.
    git("clone", hub_server.repo_url(design.owner.username, design.slug), "other")
    assert (git.home / "other" / "suspension" / "arm.scad").exists()


def test_pull_brings_commits_made_on_the_web(hub_server, design, maker, git):
    git("clone", push_url(hub_server, design, maker), "work")
    commit_files(design, {"body/panel.scad": "square(3);\n"}, "Web commit")
    git("pull", "--ff-only", cwd=git.home / "work")
    assert (git.home / "work" / "body" / "panel.scad").exists()


def test_a_big_push_is_streamed_in_chunks(hub_server, design, maker, git):
    """Over 1 MB, git sends the pack with chunked encoding and no Content-Length."""
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"
    (work / "parts").mkdir()
    import os

    for n in range(4):
        (work / "parts" / f"blob-{n}.bin").write_bytes(os.urandom(1024 * 1024))
    git("add", ".", cwd=work)
    git("commit", "-m", "Four megabytes", cwd=work)
    result = git(
        "push", "origin", "main", cwd=work, env={"GIT_TRACE_CURL": "1", "GIT_TRACE_CURL_NO_DATA": "1"}
    )
    assert "Transfer-Encoding: chunked" in result.stderr
    assert design.repo.commit("main").summary == "Four megabytes"


def test_anonymous_push_is_challenged(hub_server, design, git):
    git("clone", hub_server.repo_url(design.owner.username, design.slug), "work")
    work = git.home / "work"
    (work / "x.txt").write_text("x")
    git("add", ".", cwd=work)
    git("commit", "-m", "anon", cwd=work)
    result = git("push", "origin", "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "could not read Username" in result.stderr or "Authentication failed" in result.stderr


def test_a_reader_cannot_push_and_git_says_why(hub_server, design, git):
    reader = UserFactory()
    _, token = hub_services.token_create(user=reader, name="git")
    services.collaborator_set(design=design, actor=design.owner, user=reader, role="read")
    url = hub_server.repo_url(design.owner.username, design.slug, user=reader.username, token=token)
    git("clone", url, "work")
    work = git.home / "work"
    (work / "x.txt").write_text("x")
    git("add", ".", cwd=work)
    git("commit", "-m", "try", cwd=work)
    result = git("push", "origin", "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "403" in result.stderr or "read access only" in result.stderr


def test_the_password_never_works_for_git(hub_server, maker, git):
    # git sends credentials only when challenged: a private design makes it.
    design = DesignFactory(owner=maker, visibility="private")
    commit_files(design, {"a.txt": "1"})
    url = hub_server.repo_url(
        design.owner.username, design.slug, user=maker.username, token="correct horse battery"
    )
    result = git("ls-remote", url, check=False)
    assert result.returncode != 0
    assert "Authentication failed" in result.stderr


def test_a_private_design_is_hidden_from_strangers(hub_server, maker, git):
    secret = DesignFactory(owner=maker, visibility="private")
    commit_files(secret, {"a.txt": "1"})
    anonymous = git("clone", hub_server.repo_url(maker.username, secret.slug), "anon", check=False)
    assert anonymous.returncode != 0
    assert "could not read Username" in anonymous.stderr  # challenged, so git asks for credentials

    stranger = UserFactory()
    _, token = hub_services.token_create(user=stranger, name="git")
    url = hub_server.repo_url(maker.username, secret.slug, user=stranger.username, token=token)
    refused = git("clone", url, "stranger", check=False)
    assert refused.returncode != 0
    assert "not found" in refused.stderr

    git(
        "clone",
        hub_server.repo_url(maker.username, secret.slug, user=maker.username, token=maker.raw_token),
        "mine",
    )
    assert (git.home / "mine" / "a.txt").exists()


def test_a_collaborator_clones_a_private_design_until_removed(hub_server, maker, git):
    """Clones look the design up by the history pages' precompiled statement: its
    visibility rule lets a collaborator in, and no longer once removed."""
    secret = DesignFactory(owner=maker, visibility="private")
    commit_files(secret, {"a.txt": "1"})
    reader = UserFactory()
    _, token = hub_services.token_create(user=reader, name="git")
    url = hub_server.repo_url(maker.username, secret.slug, user=reader.username, token=token)
    services.collaborator_set(design=secret, actor=maker, user=reader, role="read")
    git("clone", url, "shared")
    assert (git.home / "shared" / "a.txt").read_text() == "1"

    services.collaborator_remove(design=secret, actor=maker, user=reader)
    refused = git("clone", url, "again", check=False)
    assert refused.returncode != 0
    assert "not found" in refused.stderr


def test_force_pushing_the_default_branch_is_refused(hub_server, design, maker, git):
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"
    git("commit", "--amend", "-m", "Rewritten history", cwd=work)
    head = design.repo.branch_head("main")
    result = git("push", "--force", "origin", "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "remote: fabhub: main is the default branch" in result.stderr
    assert design.repo.branch_head("main") == head

    deleted = git("push", "origin", ":main", cwd=work, check=False)
    assert deleted.returncode != 0
    assert design.repo.branch_head("main") == head

    services.design_update(design=design, allow_default_branch_rewrite=True)
    git("push", "--force", "origin", "main", cwd=work)
    assert design.repo.commit("main").summary == "Rewritten history"


def test_an_oversized_blob_is_refused_naming_the_file_and_lfs(hub_server, design, maker, git, settings):
    limit = settings.FABHUB_MAX_GIT_BLOB_BYTES
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"
    (work / "cad").mkdir()
    with (work / "cad" / "body.step").open("wb") as out:
        out.truncate(limit + 1)
    git("add", ".", cwd=work)
    git("commit", "-m", "Huge STEP file", cwd=work)
    head = design.repo.branch_head("main")
    result = git("push", "origin", "main", cwd=work, check=False)
    assert result.returncode != 0
    assert "cad/body.step" in result.stderr and "Git LFS" in result.stderr
    assert design.repo.branch_head("main") == head
    assert design.repo.fsck()[0]


@pytest.mark.parametrize(
    "hostile",
    [
        ".GIT/config",
        "dir/.git/hooks/post-update",
        "git~1/config",
        "CON.txt",
        "back\\slash.stl",
        "dot-at-end.",
        "README.MD",
        "invoice\u202etxt.exe",
    ],
)
def test_a_push_with_a_refused_path_is_refused(hub_server, design, maker, git, hostile):
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"
    # Build the commit with plumbing: git refuses to check some of these out itself.
    tree = tree_with(git, work, "HEAD", hostile)
    commit = git("commit-tree", tree, "-p", "HEAD", "-m", "Sneak a path in", cwd=work).stdout.strip()
    head = design.repo.branch_head("main")
    result = git("push", "origin", f"{commit}:refs/heads/main", cwd=work, check=False)
    assert result.returncode != 0
    # Our hook says why; for '.git' names git's own fsck may refuse first.
    assert "remote: fabhub:" in result.stderr or "dotgit" in result.stderr.lower()
    assert design.repo.branch_head("main") == head
    assert design.repo.fsck()[0]


def test_a_push_of_a_branch_whose_name_hides_characters_is_refused(hub_server, design, maker, git):
    git("clone", push_url(hub_server, design, maker), "work")
    result = git("push", "origin", "HEAD:refs/heads/fix\u202eexe", cwd=git.home / "work", check=False)
    assert result.returncode != 0
    assert "invisible or direction-changing" in result.stderr
    assert design.repo.branch_head("fix\u202eexe") is None


def test_a_push_of_a_ref_whose_name_is_not_utf8_is_refused(hub_server, design, maker, git):
    """git takes any bytes in a ref name; the hub keeps names as text, so one that does
    not decode is refused whole (with the rest of the push) before any ref moves."""
    git("clone", push_url(hub_server, design, maker), "work")
    result = subprocess.run(
        [b"git", b"push", b"origin", b"HEAD:refs/heads/caf\xe9", b"HEAD:refs/heads/fine"],
        cwd=git.home / "work",
        env=git.env,
        capture_output=True,
        timeout=300,
    )
    assert result.returncode != 0
    assert b"refs/heads/caf\\xe9: ref names must be UTF-8 text." in result.stderr
    assert set(design.repo.refs()) == {"refs/heads/main"}


def test_a_push_of_a_file_whose_name_is_not_utf8_is_refused(hub_server, design, maker, git):
    """git takes any bytes in a file name; the hub stores, shows and serves names as text."""
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"

    def run(*args: str, data: bytes = b"") -> bytes:
        return subprocess.run(
            ["git", *args], input=data, cwd=work, env=git.env, capture_output=True, check=True
        ).stdout

    blob = run("hash-object", "-w", "--stdin", data=b"cube(1);\n").strip()
    existing = [entry for entry in run("ls-tree", "-z", "HEAD").split(b"\0") if entry]
    entries = [*existing, b"100644 blob %s\tcaf\xe9.scad" % blob]
    tree = run("mktree", "-z", data=b"".join(entry + b"\0" for entry in entries)).decode().strip()
    commit = git("commit-tree", tree, "-p", "HEAD", "-m", "A Latin-1 name", cwd=work).stdout.strip()
    head = design.repo.branch_head("main")
    result = git("push", "origin", f"{commit}:refs/heads/main", cwd=work, check=False)
    assert result.returncode != 0
    assert "File names must be UTF-8 text: 'caf\\xe9.scad'" in result.stderr
    assert design.repo.branch_head("main") == head


def test_a_pushed_tag_is_a_release_it_cannot_be_moved_or_deleted_unless_allowed(
    hub_server, design, maker, git
):
    git("clone", push_url(hub_server, design, maker), "work")
    work = git.home / "work"
    git("tag", "v1.0", cwd=work)
    git("push", "origin", "v1.0", cwd=work)
    released = design.repo.resolve_ref("refs/tags/v1.0")
    (work / "later.txt").write_text("later\n")
    git("add", "later.txt", cwd=work)
    git("commit", "-q", "-m", "Later", cwd=work)
    git("push", "origin", "main", cwd=work)
    git("tag", "-f", "v1.0", cwd=work)
    moved = git("push", "--force", "origin", "v1.0", cwd=work, check=False)
    assert moved.returncode != 0 and "v1.0 is a release: tags cannot be moved" in moved.stderr
    deleted = git("push", "origin", ":refs/tags/v1.0", cwd=work, check=False)
    assert deleted.returncode != 0 and "tags cannot be deleted" in deleted.stderr
    assert design.repo.resolve_ref("refs/tags/v1.0") == released

    services.design_update(design=design, allow_tag_changes=True)
    git("push", "--force", "origin", "v1.0", cwd=work)
    assert design.repo.resolve_ref("refs/tags/v1.0") != released


def test_the_first_branch_pushed_into_an_empty_design_becomes_its_default_branch(hub_server, maker, git):
    empty = DesignFactory(owner=maker, slug="fresh")
    work = git.home / "work"
    git("init", "-q", "-b", "dev", str(work))
    (work / "README.md").write_text("# Fresh\n")
    git("add", "README.md", cwd=work)
    git("commit", "-q", "-m", "First", cwd=work)
    git("push", push_url(hub_server, empty, maker), "dev", cwd=work)
    empty.refresh_from_db()
    assert empty.default_branch == "dev"
    assert empty.repo.resolve("HEAD") == empty.repo.branch_head("dev")
    # A clone now checks out dev without being told.
    git("clone", push_url(hub_server, empty, maker), "again")
    assert (git.home / "again" / "README.md").read_text() == "# Fresh\n"


def test_a_push_straight_after_the_first_one_keeps_to_the_default_branch_it_named(hub_server, maker, git):
    """The first push's follow-up names its branch the default one before the pusher is
    answered, so a push made at once may not rewrite that branch."""
    empty = DesignFactory(owner=maker, slug="fresh")
    url = push_url(hub_server, empty, maker)
    work = git.home / "work"
    git("init", "-q", "-b", "dev", str(work))
    for n in (1, 2):
        (work / "README.md").write_text(f"# Fresh {n}\n")
        git("add", "README.md", cwd=work)
        git("commit", "-q", "-m", f"Commit {n}", cwd=work)
    git("push", url, "dev", cwd=work)
    git("reset", "-q", "--hard", "HEAD~1", cwd=work)
    git("commit", "-q", "--allow-empty", "-m", "Rewritten", cwd=work)
    result = git("push", "--force", url, "dev", cwd=work, check=False)

    assert result.returncode != 0
    assert "dev is the default branch: force pushes that rewrite its history are refused" in result.stderr
    empty.refresh_from_db()
    assert empty.default_branch == "dev"
    assert empty.repo.commit("dev").summary == "Commit 2"


def tree_with(git, work, base: str, path: str) -> str:
    """The tree of `base` plus a file at `path`, made with mktree (no path checks)."""
    import subprocess

    def run(args, data=b""):
        return subprocess.run(
            ["git", *args], input=data, cwd=work, env=git.env, capture_output=True, check=True
        ).stdout

    blob = run(["hash-object", "-w", "--stdin"], b"evil").decode().strip()
    parts = path.split("/")
    entry = f"100644 blob {blob}\t{parts[-1]}"
    for name in reversed(parts[:-1]):
        sub = run(["mktree"], (entry + "\n").encode()).decode().strip()
        entry = f"040000 tree {sub}\t{name}"
    existing = run(["ls-tree", base]).decode().splitlines()
    return run(["mktree"], ("\n".join([*existing, entry]) + "\n").encode()).decode().strip()


def test_two_concurrent_pushes_one_wins_and_the_repository_stays_valid(hub_server, design, maker, git):
    clones = []
    for name in ("a", "b"):
        git("clone", push_url(hub_server, design, maker), name)
        work = git.home / name
        (work / f"{name}.txt").write_text(name * 1000)
        git("add", ".", cwd=work)
        git("commit", "-m", f"From {name}", cwd=work)
        clones.append(work)
    start = threading.Barrier(2)
    results = {}

    def push(work):
        start.wait()
        results[work.name] = git("push", "origin", "main", cwd=work, check=False)

    threads = [threading.Thread(target=push, args=(w,)) for w in clones]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results.values())
    assert codes[0] == 0 and codes[1] != 0, {k: (r.returncode, r.stderr) for k, r in results.items()}
    loser = next(r for r in results.values() if r.returncode != 0)
    assert (
        "rejected" in loser.stderr or "failed to update ref" in loser.stderr or "fetch first" in loser.stderr
    )
    (winner,) = [name for name, r in results.items() if r.returncode == 0]
    assert design.repo.commit("main").summary == f"From {winner}"
    assert design.repo.fsck()[0]


def test_the_clone_url_is_in_the_api(hub_server, design, api):
    from django.urls import reverse

    body = api.get(reverse("api-design-detail", args=[design.owner.username, design.slug])).json()
    assert body["clone_url"] == f"http://testserver/{design.owner.username}/{design.slug}.git"


def test_the_design_page_shows_the_clone_url(hub_server, design, client):
    page = client.get(f"/{design.owner.username}/{design.slug}/")
    assert f"http://testserver/{design.owner.username}/{design.slug}.git" in page.content.decode()
