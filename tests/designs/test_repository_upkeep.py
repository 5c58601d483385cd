"""Repository upkeep (designs/git.py `Repository.upkeep`, queued by `refs_changed`): every
repository's config turns git's own automatic packing off, so packs (one per mirror
refresh or large push) and loose objects (a few per commit from the web) would pile up
and slow every reader. Once they have, the next ref move queues a roll-up that loses
nothing, not even unreachable objects, and two never run at once."""

from __future__ import annotations

import fcntl
import hashlib
import subprocess

import pytest
from django.core.management import call_command

from designs import git as git_module
from designs.git import Repository
from tests.factories import DesignFactory, commit_files, commit_to_repo


@pytest.fixture
def repo(tmp_path) -> Repository:
    return Repository.init_bare(tmp_path / "design.git", default_branch="main")


def git(repo: Repository, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo.path, check=True, capture_output=True, text=True).stdout


def packs(repo: Repository) -> int:
    return len(list((repo.path / "objects" / "pack").glob("*.pack")))


def loose(repo: Repository) -> int:
    return len(list((repo.path / "objects").glob("[0-9a-f][0-9a-f]/*")))


def every_object(repo: Repository) -> set[str]:
    return set(git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split())


def pile_up_packs(repo: Repository, count: int) -> None:
    """`count` small packs, as `count` mirror refreshes leave them."""
    for n in range(count):
        commit_to_repo(repo, {f"part-{n}.scad": f"cube({n});\n".encode()})
        git(repo, "repack", "-q", "-d")  # the new loose objects into a pack of their own


def blob_in_folder_17(n: int) -> bytes:
    """Content whose blob id starts with 17: the folder git (and `upkeep_due`) counts."""
    while True:
        data = f"sample {n}\n".encode()
        if hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest().startswith("17"):
            return data
        n += 1


def test_piled_up_packs_are_rolled_up_and_nothing_is_lost(repo):
    unreachable_packed = repo.write_blob(b"on no branch, packed\n")
    subprocess.run(
        ["git", "pack-objects", "-q", "objects/pack/pack"],
        cwd=repo.path,
        input=f"{unreachable_packed}\n",
        text=True,
        check=True,
        capture_output=True,
    )
    git(repo, "prune-packed")
    pile_up_packs(repo, git_module.UPKEEP_PACKS)
    unreachable_loose = repo.write_blob(b"on no branch, loose\n")
    assert packs(repo) == git_module.UPKEEP_PACKS + 1 and loose(repo) == 1
    before = every_object(repo)
    assert {unreachable_packed, unreachable_loose} <= before
    assert repo.upkeep_due()

    assert repo.upkeep()

    assert packs(repo) <= 2
    assert every_object(repo) == before, "nothing dropped, the unreachable blobs included"
    assert repo.fsck()[0]
    assert not repo.upkeep_due()


def test_loose_objects_are_counted_as_git_counts_them(repo, monkeypatch):
    """Blobs only (a commit's id depends on the second it is made, and could land in
    objects/17 too); upkeep packs loose objects whether anything reaches them or not."""
    monkeypatch.setattr(git_module, "UPKEEP_LOOSE_IN_ONE_FOLDER", 1)
    first = repo.write_blob(blob_in_folder_17(0))
    assert not repo.upkeep_due(), "one object in objects/17 is not more than one"
    second = repo.write_blob(blob_in_folder_17(int(first, 16) % 100_000 + 1_000))
    assert first != second and len(list((repo.path / "objects" / "17").iterdir())) == 2
    assert repo.upkeep_due()
    before = every_object(repo)

    assert repo.upkeep()

    assert loose(repo) == 0 and packs(repo) == 1
    assert every_object(repo) == before
    assert not repo.upkeep_due()


def test_an_upkeep_already_running_is_not_started_twice(repo):
    pile_up_packs(repo, git_module.UPKEEP_PACKS + 1)
    with open(repo.path / git_module.UPKEEP_LOCK, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the one running
        assert repo.upkeep() is False
        assert packs(repo) == git_module.UPKEEP_PACKS + 1
    assert repo.upkeep() is True
    assert packs(repo) <= 2


def test_a_repository_with_few_packs_needs_no_upkeep(repo):
    pile_up_packs(repo, git_module.UPKEEP_PACKS)
    assert not repo.upkeep_due()


@pytest.mark.django_db(transaction=True)
def test_a_ref_move_queues_the_upkeep_once_packs_pile_up(alice, monkeypatch):
    monkeypatch.setattr(git_module, "UPKEEP_PACKS", 3)
    design = DesignFactory(owner=alice, slug="rover")
    for n in range(3):
        commit_files(design, {f"part-{n}.scad": f"cube({n});\n"}, f"Part {n}")
        git(design.repo, "repack", "-q", "-d")
    assert packs(design.repo) == 3, "not more than UPKEEP_PACKS: left alone"
    commit_files(design, {"wheel.scad": "cylinder(5);\n"}, "Wheel")
    assert packs(design.repo) == 3
    git(design.repo, "repack", "-q", "-d")
    before = every_object(design.repo)

    # The tests run queued tasks inline: this commit's follow-ups roll the packs up.
    commit_files(design, {"axle.scad": "cylinder(1);\n"}, "Axle")

    assert packs(design.repo) <= 2 and loose(design.repo) == 0
    assert every_object(design.repo) >= before
    assert design.repo.fsck()[0]


@pytest.mark.django_db(transaction=True)
def test_the_command_rolls_up_every_repository_that_needs_it(alice, monkeypatch, capsys):
    monkeypatch.setattr(git_module, "UPKEEP_PACKS", 2)
    piled, tidy = DesignFactory(owner=alice, slug="piled"), DesignFactory(owner=alice, slug="tidy")
    commit_files(tidy, {"a.scad": "cube(1);\n"}, "A")
    for n in range(3):
        commit_files(piled, {f"part-{n}.scad": f"cube({n});\n"}, f"Part {n}")
        git(piled.repo, "repack", "-q", "-d")

    broken = DesignFactory(owner=alice, slug="broken")
    commit_files(broken, {"a.scad": "cube(1);\n"}, "A")
    for n in range(3):
        commit_files(broken, {f"part-{n}.scad": f"cube({n});\n"}, f"Part {n}")
        git(broken.repo, "repack", "-q", "-d")
    damaged = sorted((broken.repo_path / "objects" / "pack").glob("*.pack"))[0]
    damaged.write_bytes(b"PACK" + b"\0" * (damaged.stat().st_size - 4))  # git cannot read it

    call_command("repositories_upkeep")

    assert "Rolled up 1 repository." in capsys.readouterr().out, "the broken one is logged, the rest go on"
    assert packs(piled.repo) <= 2


def test_packs_a_roll_up_leaves_many_make_it_due_again_only_once_more_have_come(repo, monkeypatch):
    """A long history's packs may stay more than UPKEEP_PACKS once rolled up (each at
    least twice the next): every ref move would queue a roll-up with nothing to do."""
    monkeypatch.setattr(git_module, "UPKEEP_PACKS", 4)
    pile_up_packs(repo, 5)
    assert repo.upkeep_due()
    assert repo.upkeep()
    left = packs(repo)
    assert (repo.path / git_module.UPKEEP_LOCK).read_text() == str(left)
    # As if the roll-up had left 6: 7 packs are not due, 9 (more than 4 // 2 more) are.
    (repo.path / git_module.UPKEEP_LOCK).write_text("6")
    pile_up_packs(repo, 7 - left)
    assert packs(repo) == 7 and not repo.upkeep_due()
    pile_up_packs(repo, 2)
    assert packs(repo) == 9 and repo.upkeep_due()
