"""The history API describes each commit as git itself does, in CommitOutput's shape.

The page builds its commits as plain dicts (designs.serializers.commits_output) rather than
through DRF serializers; these tests hold the two to the same bytes and to `git log`.
"""

from __future__ import annotations

import json
import subprocess
import zoneinfo
from datetime import datetime

from django.urls import reverse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from designs.serializers import CommitOutput, commits_output
from tests.factories import DesignFactory

MESSAGE_2 = 'Rename the bracket, drop the notes\n\nA body line with é, "quotes" and a tab\there.\n'


def _fast_import(repo_path: str) -> None:
    """Three commits with what a plain upload cannot make: other time zones, an author who
    is not the committer, a rename, a deletion, a multi-line message with non-ASCII text."""
    stream = [
        "commit refs/heads/main",
        "author Ada Lovelace <ada@example.org> 1700000000 +0200",
        "committer Bench <bench@example.org> 1700000100 -0530",
        "data <<EOM",
        "Add the bracket and notes",
        "EOM",
        "M 100644 inline bracket.scad",
        "data <<EOD",
        "cube([10, 10, 10]);",
        "EOD",
        "M 100644 inline notes.md",
        "data <<EOD",
        "notes",
        "EOD",
        "",
        "commit refs/heads/main",
        "author Grace Hopper <grace@example.org> 1700003600 +0000",
        "committer Grace Hopper <grace@example.org> 1700003600 +0000",
        f"data {len(MESSAGE_2.encode())}",
        MESSAGE_2.rstrip("\n"),
        "R bracket.scad parts/bracket.scad",
        "D notes.md",
        "",
        "commit refs/heads/main",
        "author Bench <bench@example.org> 1700007200 +0900",
        "committer Bench <bench@example.org> 1700007200 +0900",
        "data <<EOM",
        "Add a second part",
        "EOM",
        "M 100644 inline parts/plate.scad",
        "data <<EOD",
        "cube([50, 50, 2]);",
        "EOD",
        "",
    ]
    data = ("\n".join(stream) + "\n").encode()
    subprocess.run(["git", "-C", repo_path, "fast-import", "--quiet"], input=data, check=True)


def _git_log(repo_path: str) -> list[dict]:
    """Each commit as `git log` tells it, read field by field."""
    fmt = "%H%x00%P%x00%an%x00%ae%x00%aI%x00%cn%x00%ce%x00%cI%x00%B%x00"
    out = subprocess.run(
        ["git", "-C", repo_path, "log", "-M", "--name-status", "-z", f"--format=%x1e{fmt}", "main"],
        check=True,
        capture_output=True,
    ).stdout.decode()
    commits = []
    for record in out.split("\x1e")[1:]:
        sha, parents, an, ae, ad, cn, ce, cd, message, *rest = record.split("\0")
        rest = [token.strip("\n") for token in rest if token.strip("\n")]
        files = []
        while rest:
            status = rest.pop(0)
            if status.startswith("R"):
                old, new = rest.pop(0), rest.pop(0)
                files.append({"status": "renamed", "path": new, "old_path": old})
            else:
                name = {"A": "added", "M": "modified", "D": "deleted"}[status]
                files.append({"status": name, "path": rest.pop(0), "old_path": None})
        commits.append(
            {
                "sha": sha,
                "parents": parents.split(),
                "author": (an, ae, datetime.fromisoformat(ad)),
                "committer": (cn, ce, datetime.fromisoformat(cd)),
                # The hub has always shown a message without git's closing newline(s).
                "message": message.rstrip("\n"),
                "files": files,
            }
        )
    return commits


def test_history_page_tells_each_commit_as_git_log_does(alice, alice_api):
    design = DesignFactory(owner=alice, slug="bracket")
    _fast_import(str(design.repo_path))

    page = alice_api.get(reverse("api-design-history", args=["alice", "bracket"])).json()

    expected = _git_log(str(design.repo_path))
    assert len(expected) == 3 and page["count"] == 3
    for got, want in zip(page["results"], expected, strict=True):
        assert got["sha"] == want["sha"]
        assert got["parents"] == want["parents"]
        assert (got["author"]["name"], got["author"]["email"]) == want["author"][:2]
        assert datetime.fromisoformat(got["authored_at"]) == want["author"][2]
        assert (got["committer"]["name"], got["committer"]["email"]) == want["committer"][:2]
        assert datetime.fromisoformat(got["committed_at"]) == want["committer"][2]
        assert got["message"] == want["message"]
        assert sorted(got["files"], key=lambda f: f["path"]) == sorted(want["files"], key=lambda f: f["path"])
    assert page["results"][1]["message"] == MESSAGE_2.rstrip("\n")
    assert {"status": "renamed", "path": "parts/bracket.scad", "old_path": "bracket.scad"} in page["results"][
        1
    ]["files"]


def test_history_dicts_are_byte_for_byte_what_the_commit_serializer_gives(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    _fast_import(str(design.repo_path))
    commits = design.repo.log("main", limit=10)

    fast = JSONRenderer().render(commits_output(commits))
    drf = JSONRenderer().render(CommitOutput(commits, many=True).data)

    assert fast == drf
    assert (
        json.loads(fast)[2]["authored_at"] == "2023-11-14T22:13:20Z"
    )  # written at +0200, given in UTC as DRF does


def test_a_private_designs_history_is_not_found_for_strangers(alice, bob_api, api):
    DesignFactory(owner=alice, slug="secret", visibility="private")
    history = reverse("api-design-history", args=["alice", "secret"])

    assert bob_api.get(history).status_code == 404
    assert api.get(history).status_code == 404


def test_history_times_follow_the_active_time_zone_as_the_commit_serializer_does(alice):
    design = DesignFactory(owner=alice, slug="bracket")
    _fast_import(str(design.repo_path))
    commits = design.repo.log("main", limit=10)

    with timezone.override(zoneinfo.ZoneInfo("Asia/Kolkata")):
        fast = JSONRenderer().render(commits_output(commits))
        drf = JSONRenderer().render(CommitOutput(commits, many=True).data)

    assert fast == drf
    assert json.loads(fast)[2]["authored_at"] == "2023-11-15T03:43:20+05:30"


def test_history_times_without_time_zone_support_are_what_the_commit_serializer_gives(alice, settings):
    design = DesignFactory(owner=alice, slug="bracket")
    _fast_import(str(design.repo_path))
    commits = design.repo.log("main", limit=10)
    settings.USE_TZ = False

    fast = JSONRenderer().render(commits_output(commits))
    drf = JSONRenderer().render(CommitOutput(commits, many=True).data)

    assert fast == drf
    assert json.loads(fast)[2]["authored_at"] == "2023-11-14T22:13:20"  # naive, in UTC
