"""`Repository.object_reader()`: one `git cat-file --batch-command` process reading a
commit the way the assembly check needs it. It must list what `ls-tree -r` lists, read a
blob only when it fits the limit, answer `tags()` exactly, and always end its process."""

from __future__ import annotations

import os
import subprocess

import pytest

from designs.git import FileEdit, GitError, ObjectReader, Person, Repository

WHO = Person(name="Ada", email="ada@example.org")
PINNED = "1234567890abcdef1234567890abcdef12345678"


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.init_bare(tmp_path / "design.git", default_branch="main")


def commit(
    repo: Repository, files: dict[str, bytes], *, links: tuple[str, ...] = (), mode: str = "100644"
) -> str:
    edits = [FileEdit(path, repo.write_blob(data), mode) for path, data in files.items()]
    edits += [FileEdit(path, PINNED, "160000") for path in links]
    head = repo.branch_head("main")
    sha = repo.commit_tree(
        repo.build_tree(head, edits), [head] if head else [], "Files", author=WHO, committer=WHO
    )
    repo.update_ref("refs/heads/main", sha, head)
    return sha


def git(repo: Repository, *args: str, date: str = "2024-05-01T12:00:00+02:00") -> None:
    env = {**os.environ, "GIT_COMMITTER_NAME": "Tag", "GIT_COMMITTER_EMAIL": "tag@example.org"}
    subprocess.run(["git", *args], cwd=repo.path, env={**env, "GIT_COMMITTER_DATE": date}, check=True)


def test_it_lists_nested_folders_and_submodules_as_ls_tree_does(repo):
    head = commit(
        repo,
        {
            "README.md": b"# Car\n",
            "cad/body/shell.stl": b"solid shell\nendsolid\n",
            "cad/body/deep/er/still/part.step": b"ISO-10303-21;\n",
            "cad/wheel.stl": b"solid wheel\nendsolid\n",
            "z-last.txt": b"",
        },
        links=("modules/engine", "modules/deep/gearbox"),
    )
    commit(repo, {"tools/run.sh": b"#!/bin/sh\n"}, mode="100755")
    head = repo.branch_head("main")

    with repo.object_reader() as reader:
        entries = reader.tree_entries(head)

    assert entries == repo.tree_entries(head)
    assert {entry.path: entry.kind for entry in entries}["modules/deep/gearbox"] == "submodule"
    assert {entry.path: entry.mode for entry in entries}["tools/run.sh"] == "100755"


def test_a_blob_over_the_limit_is_never_read(repo, monkeypatch):
    big = b"x" * 200_000
    commit(repo, {"bom.csv": b"part,qty\nbolt,4\n", "big.stl": big})
    head = repo.branch_head("main")
    asked: list[str] = []
    contents = ObjectReader._contents

    def recorded(self, names):
        asked.extend(names)
        return contents(self, names)

    monkeypatch.setattr(ObjectReader, "_contents", recorded)

    with repo.object_reader() as reader:
        shas = {entry.path: entry.sha for entry in reader.tree_entries(head)}
        found = reader.read_blobs({shas["bom.csv"]: 1000, shas["big.stl"]: 1000})
        sizes = reader.blob_sizes([shas["big.stl"]])

    assert found == {shas["bom.csv"]: b"part,qty\nbolt,4\n", shas["big.stl"]: None}
    assert sizes == {shas["big.stl"]: len(big)}
    assert shas["big.stl"] not in asked


def test_missing_objects_are_left_out_and_a_missing_commit_is_an_error(repo):
    commit(repo, {"README.md": b"# Car\n"})

    with repo.object_reader() as reader:
        assert reader.read_blobs({"0" * 40: 1000, PINNED: 1000}) == {}
        assert reader.blob_sizes(["0" * 40]) == {}
        with pytest.raises(GitError):
            reader.tree_entries("0" * 40)
        # The process still answers after what it could not find.
        assert [entry.path for entry in reader.tree_entries(repo.branch_head("main"))] == ["README.md"]


def test_an_object_name_of_more_than_one_word_is_refused(repo):
    commit(repo, {"README.md": b"# Car\n"})

    with repo.object_reader() as reader, pytest.raises(GitError):
        reader.tree_entries("main\ninfo HEAD")


def test_releases_are_the_ones_tags_gives_in_the_same_order(repo):
    first = commit(repo, {"README.md": b"# Car\n"})
    second = commit(repo, {"README.md": b"# Car, faster\n"})
    # Made in the same second: the newest version first (v0.10 after v0.9, v1.0 after v1).
    for name in ("v0.9", "v0.10", "v1", "v1.0", "v01", "v1.0-rc1", "a"):
        git(repo, "tag", "-a", "-m", f"Release {name}", name, second)
    git(repo, "tag", "-a", "-m", "Old", "old", first, date="2020-01-01T00:00:00-05:00")
    git(repo, "tag", "light", first)
    git(repo, "tag", "-a", "-m", "A tag of a tag", "nested/tagged", "v1")
    git(repo, "pack-refs", "--all")
    git(repo, "tag", "-a", "-m", "Loose", "v2", second, date="2024-06-01T00:00:00+00:00")

    with repo.object_reader() as reader:
        releases = reader.tags()

    assert releases == repo.tags()
    names = [tag.name for tag in releases]
    assert names[:2] == ["light", "v2"] and names[-1] == "old"  # the lightweight one: its commit's date
    assert names.index("v1.0") < names.index("v1") < names.index("v0.10") < names.index("v0.9")


def trees_asked(reader: ObjectReader, monkeypatch) -> list[str]:
    """The commits whose root tree `reader` asks git for: one per listing it reads."""
    asked: list[str] = []
    root_trees = reader._root_trees

    def recording(commits):
        asked.extend(commits)
        return root_trees(commits)

    monkeypatch.setattr(reader, "_root_trees", recording)
    return asked


def test_of_many_commits_listed_only_the_last_is_held(repo, monkeypatch):
    """A mirror's rules list every tip (a first refresh: every tag); holding each listing
    for the reader's life held them all at once."""
    tips = [commit(repo, {f"part-{n}.scad": b"cube(1);\n"}) for n in range(5)]
    with repo.object_reader() as reader:
        asked = trees_asked(reader, monkeypatch)
        for tip in tips:
            reader.all_paths(tip)
        assert reader.all_paths(tips[-1]) == [f"part-{n}.scad" for n in range(5)]
        assert asked == tips  # the last one held: not read again
        for tip in tips[:-1]:
            reader.all_paths(tip)
        assert asked == tips + tips[:-1]  # the others were not held


def test_a_listing_asked_to_be_kept_is_the_only_one_held(repo, monkeypatch):
    tips = [commit(repo, {f"part-{n}.scad": b"cube(1);\n"}) for n in range(5)]
    with repo.object_reader() as reader:
        asked = trees_asked(reader, monkeypatch)
        reader.keep_files(tips[1])
        for tip in tips:
            reader.all_paths(tip)
        listing = reader.listing(tips[1])
        assert asked == tips  # the kept one: not read again, after four others
        reader.all_paths(tips[-1])
        assert asked == [*tips, tips[-1]]  # the last one read was not held beside it
    assert listing == repo._listing(tips[1], "-r")


def test_the_process_ends_when_the_block_fails(repo):
    commit(repo, {"README.md": b"# Car\n"})

    with pytest.raises(RuntimeError), repo.object_reader() as reader:
        process = reader._starting.result()  # the process, once started
        raise RuntimeError("the caller failed")

    assert process.returncode is not None


def test_a_reader_is_made_without_waiting_for_git_to_start(repo, monkeypatch):
    """The caller goes on while git starts (a mirror's refresh has its walk to read) and
    meets git at its first question (its start slowed here to make it plain)."""
    import time

    sha = commit(repo, {"README.md": b"# Car\n"})
    popen = subprocess.Popen

    def slow_start(*args, **kwargs):
        time.sleep(0.3)
        return popen(*args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", slow_start)
    started = time.perf_counter()
    with repo.object_reader() as reader:
        made = time.perf_counter() - started
        assert reader.all_paths(sha) == ["README.md"]
    assert made < 0.2


def test_a_reader_whose_git_cannot_start_says_so_at_its_first_question(repo, settings, tmp_path):
    sha = commit(repo, {"README.md": b"# Car\n"})
    settings.FABHUB_GIT_BINARY = str(tmp_path / "no-git-here")
    with repo.object_reader() as reader, pytest.raises(GitError, match="git cannot start"):
        reader.all_paths(sha)


def test_a_forked_child_reads_through_git_started_by_its_own_thread(repo):
    """The thread that starts git (`_git_starter`) is the parent's: a child forked after
    git ran (gunicorn --preload, a worker pool) must not queue its git on an executor no
    thread runs, waiting forever for a process never started. The child says by its exit
    code whether its reader answered within a few seconds."""
    import threading

    sha = commit(repo, {"README.md": b"# Car\n"})
    with repo.object_reader() as reader:
        assert reader.all_paths(sha) == ["README.md"]  # the parent's starter thread runs

    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        answered = []
        try:

            def read() -> None:
                with repo.object_reader() as child_reader:
                    answered.append(child_reader.all_paths(sha))

            asking = threading.Thread(target=read, daemon=True)
            asking.start()
            asking.join(timeout=10)
        finally:
            os._exit(0 if answered == [["README.md"]] else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's reader never answered"
