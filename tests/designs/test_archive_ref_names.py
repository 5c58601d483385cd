"""Branch and tag names an archive's refs.json may list are judged by designs.git's own
reading of git's rules (no process per name): it must say what `git check-ref-format`
says, on names built to hit every rule and on random ones."""

from __future__ import annotations

import random
import subprocess

import pytest

from designs.git import git_binary, valid_ref_name

# Pieces git may accept, then bytes it refuses wherever they are.
PIECES = ["a", "b", "1", ".", "..", "/", "//", "@", "@{", "{", "lock", ".lock", "-", "_", "é", "\udcff"]
BAD = ["~", "^", ":", "?", "[", "\\", "*", " ", "\t", "\x01", "\x1f", "\x7f"]


def git_says(kind: str, name: str) -> bool:
    encoded = f"refs/{kind}/{name}".encode("utf-8", "surrogateescape")
    return subprocess.run([git_binary(), "check-ref-format", encoded], capture_output=True).returncode == 0


def names() -> list[str]:
    chosen = [
        "main",
        "v1.0",
        "feature/x",
        "a/b/c",
        "a.lock",
        "a.lock/b",
        ".a",
        "a.",
        "a/.b",
        "a//b",
        "a/",
        "/a",
    ]
    chosen += ["a..b", "a@{b", "@", "a@b", "a{b", "é", "tab\tname", "x*", "x/*", "@{", "-a"]
    rng = random.Random(15)
    for _ in range(500):
        chosen.append("".join(rng.choice(PIECES) for _ in range(rng.randint(1, 6))))
    for _ in range(100):
        name = [rng.choice(PIECES) for _ in range(rng.randint(1, 4))]
        name.insert(rng.randint(0, len(name)), rng.choice(BAD))
        chosen.append("".join(name))
    return list(dict.fromkeys(chosen))


@pytest.mark.parametrize("kind", ["heads", "tags"])
def test_it_judges_ref_names_as_git_check_ref_format_does(kind):
    differ = []
    for name in names():
        if not name or name.startswith("-") or name == "HEAD":
            continue  # refused before git's rules apply (valid_ref_name's own checks)
        if valid_ref_name(kind, name) != git_says(kind, name):
            differ.append(name)
    assert differ == []


def test_it_refuses_a_name_git_cannot_be_given():
    assert valid_ref_name("heads", "a\x00b") is False
