"""A history's total is exact however it was counted: whole, or an earlier head's count
plus the commits since (Repository.log_and_count's `counted`), always as `git rev-list
--count` says, with or without a path, after merges, rewrites and vanished heads."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from django.urls import reverse

from designs import selectors, services
from designs.git import Repository
from designs.models import Design
from tests.factories import DesignFactory, commit_files

PATH = "parts/gear.scad"


def _git(repo: Repository, *args: str, stdin: bytes | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=repo.path, input=stdin, capture_output=True, check=True)
    return done.stdout.decode().strip()


def _commit(repo: Repository, name: str, *, parents: list[str], files: dict[str, str | None]) -> str:
    """A commit on the branch `name`, on `parents` (the first is the branch's start), that
    writes `files` (None: deletes that path); its sha."""
    lines = [f"commit refs/heads/{name}", "committer T <t@example.org> 1700000000 +0000", "data 1", "c"]
    lines += [f"from {parents[0]}"] if parents else []
    lines += [f"merge {parent}" for parent in parents[1:]]
    for path, text in files.items():
        if text is None:
            lines.append(f"D {path}")
            continue
        data = text.encode()
        lines += [f"M 100644 inline {path}", f"data {len(data)}", text]
    _git(repo, "fast-import", "--quiet", "--force", stdin=("\n".join(lines) + "\n").encode())
    return _git(repo, "rev-parse", f"refs/heads/{name}")


def _git_count(repo: Repository, rev: str, path: str | None) -> int:
    return int(_git(repo, "rev-list", "--count", rev, "--", *([path] if path else [])))


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    return Repository.init_bare(tmp_path / "history.git", default_branch="main")


def _line(repo: Repository, start: str | None, n: int, *, touching_every: int = 2) -> str:
    head = start
    for i in range(n):
        files = {PATH if i % touching_every == 0 else f"other-{i}.txt": f"{head}-{i}"}
        head = _commit(repo, "main", parents=[head] if head else [], files=files)
    assert head is not None
    return head


def _counted_on(repo: Repository, earlier: str, rev: str, path: str | None, *, limit: int = 3) -> int:
    counted = (earlier, _git_count(repo, earlier, path))
    commits, total = repo.log_and_count(rev, path=path, limit=limit, counted=counted)
    listed = _git(repo, "rev-list", f"-n{limit}", rev, "--", *([path] if path else [])).split()
    assert [c.sha for c in commits] == listed
    assert total is not None
    # A worker's count after new commits (count_commits_since) is the same.
    assert repo.count_commits_since(rev, path=path, counted=counted) == total
    return total


@pytest.mark.parametrize("path", [None, PATH])
@pytest.mark.parametrize("limit", [3, 30])  # the page shows some of the new commits, or all
def test_commits_added_on_top_of_a_counted_head_are_added_to_its_count(repo, path, limit):
    earlier = _line(repo, None, 7)
    head = _line(repo, earlier, 5)
    assert _counted_on(repo, earlier, head, path, limit=limit) == _git_count(repo, head, path)


@pytest.mark.parametrize(("limit", "counted_apart"), [(30, False), (3, True)])
def test_a_path_s_first_page_counts_the_commits_since_that_touched_it(
    repo, monkeypatch, limit, counted_apart
):
    """Beside the page, only the commits since are listed: when the page also shows an
    older commit, the ones since that touched the path are all on it and it counts them;
    when all it shows arrived (3 of 3 here), they are counted by a process of their own."""
    earlier = _line(repo, None, 7)
    head = _line(repo, earlier, 5)
    started: list[tuple[str, ...]] = []
    start = Repository._start
    monkeypatch.setattr(Repository, "_start", lambda self, *args: started.append(args) or start(self, *args))
    counting = Repository._text
    counted_now: list[tuple[str, ...]] = []

    def text(self, *args, **kwargs):
        counted_now.append(args)
        return counting(self, *args, **kwargs)

    monkeypatch.setattr(Repository, "_text", text)
    commits, total = repo.log_and_count(
        head, path=PATH, limit=limit, counted=(earlier, _git_count(repo, earlier, PATH))
    )
    assert total == _git_count(repo, head, PATH)
    assert [args[:2] for args in started] == [("rev-list", "--parents")]
    assert [args[:2] for args in counted_now] == ([("rev-list", "--count")] if counted_apart else [])


@pytest.mark.parametrize("path", [None, PATH])
def test_a_rewritten_branch_is_counted_whole_not_added_to_the_old_head(repo, path):
    root = _line(repo, None, 3)
    earlier = _line(repo, root, 6)
    rewritten = _line(repo, root, 2)
    assert (
        _counted_on(repo, earlier, rewritten, path)
        == _git_count(repo, rewritten, path)
        == (5 if path is None else 3)
    )


def test_a_merge_that_drops_older_commits_from_a_path_s_history_is_counted_whole(repo):
    # The merge takes the side branch's file: git's history simplification follows only
    # that side for PATH, so the earlier head's commits touching PATH are no longer in it.
    root = _commit(repo, "main", parents=[], files={PATH: "root"})
    earlier = _line(repo, root, 4, touching_every=1)
    side = _commit(repo, "side", parents=[root], files={PATH: "side"})
    merge = _commit(repo, "main", parents=[earlier, side], files={PATH: "side"})
    whole = _git_count(repo, merge, PATH)
    assert whole < _git_count(repo, earlier, PATH) + 1  # adding would have overcounted
    assert _counted_on(repo, earlier, merge, PATH) == whole
    assert _counted_on(repo, earlier, merge, None) == _git_count(repo, merge, None)


def test_an_earlier_head_that_no_longer_exists_is_ignored(repo):
    head = _line(repo, None, 4)
    commits, total = repo.log_and_count(head, counted=("1" * 40, 1000))
    assert total == 4 and len(commits) == 4
    assert repo.count_commits_since(head, path=None, counted=("1" * 40, 1000)) == 4


@pytest.mark.django_db
def test_the_history_api_counts_each_new_head_exactly(alice, alice_api):
    design = DesignFactory(owner=alice, slug="gearbox")
    history = reverse("api-design-history", args=["alice", "gearbox"])
    for rounds in range(3):
        for n in range(rounds + 2):
            commit_files(design, {"gear.scad" if n % 2 else f"note-{rounds}-{n}.md": f"{rounds}-{n}"})
        head = design.repo.resolve("main")
        assert head is not None
        for path in (None, "gear.scad"):
            page = alice_api.get(history, {"per_page": 1, **({"path": path} if path else {})}).json()
            assert page["count"] == _git_count(design.repo, head, path)


@pytest.mark.django_db
def test_a_long_history_s_first_page_waits_for_no_count_and_a_worker_fills_it_in(
    alice, alice_api, monkeypatch, background_tasks_run
):
    # "Long" made short: histories from 4 commits on are counted by a worker.
    monkeypatch.setattr(selectors, "HISTORY_COUNTED_INLINE", 4)
    design = DesignFactory(owner=alice, slug="gearbox")
    for n in range(6):
        commit_files(design, {"gear.scad" if n % 2 else f"note-{n}.md": str(n)}, f"Step {n}")
    history = reverse("api-design-history", args=["alice", "gearbox"])
    first = alice_api.get(history, {"per_page": 4}).json()
    assert first["count"] is None
    assert [c["message"] for c in first["results"]] == ["Step 5", "Step 4", "Step 3", "Step 2"]
    assert first["next"] and first["previous"] is None
    # The count was queued by that request (run at once here): the next one has it.
    assert alice_api.get(history, {"per_page": 4}).json()["count"] == 6
    # A last page tells the length without any count: 2 commits before it, 1 on it.
    filtered = alice_api.get(history, {"per_page": 2, "path": "gear.scad", "page": 2}).json()
    assert filtered["count"] == 3 and [c["message"] for c in filtered["results"]] == ["Step 1"]
    last = alice_api.get(first["next"].replace("http://testserver", "")).json()
    assert [c["message"] for c in last["results"]] == ["Step 1", "Step 0"] and last["next"] is None
    assert last["count"] == 6


@pytest.mark.django_db
def test_the_history_page_shows_newer_and_older_links_until_the_count_is_known(alice, client, monkeypatch):
    monkeypatch.setattr(selectors, "HISTORY_COUNTED_INLINE", 4)
    design = DesignFactory(owner=alice, slug="gearbox")
    for n in range(32):
        commit_files(design, {"gear.scad": str(n)}, f"Step {n}")
    url = reverse("design-history", args=["alice", "gearbox"])
    first = client.get(url).content.decode()
    assert (
        "Counting the commits" in first and "Page 1<" in first and "Older" in first and "Newer" not in first
    )
    assert "Step 31<" in first and "Step 2<" in first and "Step 1<" not in first
    second = client.get(url, {"page": 2}).content.decode()
    assert "Step 1<" in second and "Step 0<" in second and "Newer" in second and "Older" not in second
    assert client.get(url, {"page": 3}).status_code == 404


# -- paths are literal, and only a path the head holds is counted by a worker ------------


@pytest.mark.parametrize("magic", ["*", "parts/g*", ":(glob)**", ":(icase)PARTS/GEAR.SCAD", ":/", "parts/*"])
def test_a_history_path_is_literal_not_a_pathspec(repo, magic):
    head = _line(repo, None, 4, touching_every=1)
    assert repo.log(head, path=magic) == []
    assert repo.count_commits(head, path=magic) == 0
    assert repo.log_and_count(head, path=magic, at_most=10) == ([], 0)
    assert repo.log_and_count(head, path=magic, counted=(head, 4)) == ([], 0)
    assert repo.entry(head, magic) is None
    assert len(repo.log(head, path=PATH)) == 4  # the literal path still is its history


def test_a_file_named_like_a_pattern_has_its_own_history_only(repo):
    root = _commit(repo, "main", parents=[], files={"*": "star", "gear.scad": "gear"})
    head = _commit(repo, "main", parents=[root], files={"gear.scad": "gear 2"})
    assert [c.sha for c in repo.log(head, path="*")] == [root]
    assert repo.count_commits(head, path="*") == 1


@pytest.fixture
def queued(monkeypatch, background_tasks_run) -> list[tuple]:
    """The history counts queued (and run at once), as (design id, rev, sha, path); a
    clean cache, a "long" history being anything from 4 commits on."""
    from django.core.cache import cache

    from designs.services import history

    cache.clear()
    monkeypatch.setattr(selectors, "HISTORY_COUNTED_INLINE", 4)
    calls: list[tuple] = []
    enqueue = history.enqueue

    def recording(name: str, *args):
        calls.append(args)
        enqueue(name, *args)

    monkeypatch.setattr(history, "enqueue", recording)
    return calls


def _long_gearbox(alice, *, deleted: bool = False) -> str:
    design = DesignFactory(owner=alice, slug="gearbox")
    for n in range(8):
        commit_files(design, {"gear.scad" if n % 2 else f"note-{n}.md": str(n)}, f"Step {n}")
    if deleted:
        services.design_commit(design=design, author=alice, message="Gone", uploads=[], deletes=["gear.scad"])
    return reverse("api-design-history", args=["alice", "gearbox"])


@pytest.mark.django_db
@pytest.mark.parametrize(
    "magic", ["*", "g*", ":(glob)**", ":(icase)GEAR.SCAD", ":(exclude)nothing", "*.scad"]
)
def test_a_pathspec_magic_path_names_no_file_and_queues_no_count(alice, client, queued, magic):
    history = _long_gearbox(alice)
    page = client.get(history, {"per_page": 2, "path": magic}).json()  # logged out: public design
    assert page["results"] == [] and page["count"] == 0 and page["next"] is None
    assert queued == []


@pytest.mark.django_db
def test_a_path_the_head_does_not_hold_queues_no_count(alice, client, queued):
    history = _long_gearbox(alice, deleted=True)
    # Its history is long (5 commits, 2 a page), but the head has no such file: its
    # total stays unknown until the last page, which tells it.
    first = client.get(history, {"per_page": 2, "path": "gear.scad"}).json()
    assert first["count"] is None and len(first["results"]) == 2 and first["next"]
    assert client.get(history, {"per_page": 2, "path": "no/such/file.scad"}).json()["count"] == 0
    assert queued == []
    last = client.get(history, {"per_page": 2, "path": "gear.scad", "page": 3}).json()
    assert last["count"] == 5 and len(last["results"]) == 1
    # The whole history is still counted by a worker.
    assert client.get(history, {"per_page": 2}).json()["count"] is None
    assert [args[3] for args in queued] == [None]
    assert client.get(history, {"per_page": 2}).json()["count"] == 9


@pytest.mark.django_db
def test_a_path_the_head_holds_is_counted_once_however_its_slashes_are_written(alice, client, queued):
    history = _long_gearbox(alice)
    for path in ("gear.scad", "/gear.scad", "gear.scad/", "//gear.scad//"):
        page = client.get(history, {"per_page": 2, "path": path}).json()
        assert [c["message"] for c in page["results"]] == ["Step 7", "Step 5"]
        # The first request queued the count (run at once here): the next ones have it.
        assert page["count"] == (None if path == "gear.scad" else 4)
    assert [args[3] for args in queued] == ["gear.scad"]


# -- a page reads no more than it must: the commit-graph's depth, the page's newest commit ---


def _levels(repo: Repository) -> dict[str, int]:
    """Each commit's topological level, from git's own list of commits and parents."""
    parents = {}
    for line in _git(repo, "rev-list", "--parents", "--all").splitlines():
        commit, *rest = line.split()
        parents[commit] = rest
    levels: dict[str, int] = {}
    for commit in reversed(_git(repo, "rev-list", "--topo-order", "--all").split()):
        levels[commit] = 1 + max((levels[parent] for parent in parents[commit]), default=0)
    return levels


def test_the_commit_graph_gives_each_commit_s_depth_across_its_layers_and_merges(repo):
    assert repo.depth(_line(repo, None, 1)) is None  # no graph written yet
    earlier = _line(repo, None, 30)  # a layer large enough for git to keep the next apart
    side = _commit(repo, "side", parents=[earlier], files={"side.txt": "side"})
    repo.refresh_commit_graph()
    merge = _commit(repo, "main", parents=[_line(repo, earlier, 3), _line(repo, side, 4)], files={})
    head = _line(repo, merge, 2)
    repo.refresh_commit_graph()  # a second layer of the split chain
    assert len(list((repo.path / "objects/info/commit-graphs").glob("graph-*.graph"))) == 2
    levels = _levels(repo)
    assert {commit: repo.depth(commit) for commit in levels} == levels
    assert repo.depth(head) == 30 + 1 + 4 + 1 + 2  # through the longer side of the merge
    assert repo.depth(_line(repo, head, 1)) is None  # not in the graph yet
    assert repo.depth("0" * 40) is None and repo.depth("main") is None


def test_a_history_the_graph_shows_long_is_not_counted_and_a_short_one_is(repo):
    short = _line(repo, None, 3)
    head = _line(repo, short, 5)
    repo.refresh_commit_graph()
    for path in (None, PATH):
        commits, total = repo.log_and_count(head, path=path, limit=2, at_most=6)
        listed = _git(repo, "rev-list", "-n2", head, "--", *([path] if path else [])).split()
        assert total is None and [c.sha for c in commits] == listed
        assert repo.log_and_count(short, path=path, limit=2, at_most=6)[1] == _git_count(repo, short, path)
    # At the bound's edge the graph's depth alone decides: 8 commits deep, counted up to 9.
    assert repo.log_and_count(head, limit=2, at_most=9)[1] == 8


@pytest.mark.django_db
def test_the_newest_commit_of_a_path_s_history_tells_whether_the_head_holds_it_as_a_tree_lookup_does():
    design = DesignFactory()
    repo = design.repo
    root = _commit(repo, "main", parents=[], files={"a/one.txt": "1", "a/two.txt": "2", "b.txt": "b"})
    side = _commit(repo, "side", parents=[root], files={"b.txt": "side", "c/x.txt": "x"})
    heads = [root, side]
    steps: list[dict[str, str | None]] = [
        {"a/one.txt": None},  # a folder keeps a file
        {"b.txt": "b2"},
        {"a/two.txt": None},  # the folder is gone
        {"b.txt": None, "a/b.txt": "moved"},
        {"a": "a file where the folder was"},
    ]
    for files in steps:
        heads.append(_commit(repo, "main", parents=[heads[-1]], files=files))
    heads.append(_commit(repo, "main", parents=[heads[-1], side], files={"c/x.txt": "merged"}))
    paths = ["a", "a/one.txt", "a/two.txt", "a/b.txt", "b.txt", "c", "c/x.txt", "d"]
    for head in heads:
        for path in paths:
            held = repo.entry(head, path) is not None
            newest = next(iter(repo.log(head, path=path, limit=1)), None)
            assert selectors.history_path_exists(design, sha=head, path=path, newest=newest) is held


def test_a_long_history_counts_only_what_its_page_shows_of_the_commits_since_a_count(repo):
    earlier = _line(repo, None, 6)
    head = _line(repo, earlier, 2)
    repo.refresh_commit_graph()
    assert repo.log_and_count(head, limit=3, counted=(earlier, 6), at_most=5)[1] == 8
    # Not on the page (the path's history, a later page, a page too short): not counted.
    assert repo.log_and_count(head, path=PATH, limit=3, counted=(earlier, 3), at_most=5)[1] is None
    assert repo.log_and_count(head, skip=1, limit=3, counted=(earlier, 6), at_most=5)[1] is None
    assert repo.log_and_count(head, limit=1, counted=(earlier, 6), at_most=5)[1] is None


@pytest.mark.django_db
def test_after_new_commits_a_long_path_history_s_count_is_left_to_a_worker(alice, client, queued):
    history = _long_gearbox(alice)
    for path in (None, "gear.scad"):
        params = {"per_page": 2, **({"path": path} if path else {})}
        assert client.get(history, params).json()["count"] is None  # queued, and run at once here
        assert client.get(history, params).json()["count"] == (8 if path is None else 4)
    commit_files(Design.objects.get(slug="gearbox"), {"gear.scad": "8"}, "Step 8")
    # The first page shows the one new commit on the counted head: its count is exact at once.
    assert client.get(history, {"per_page": 2}).json()["count"] == 9
    page = client.get(history, {"per_page": 2, "path": "gear.scad"}).json()
    assert page["count"] is None and [c["message"] for c in page["results"]] == ["Step 8", "Step 7"]
    assert client.get(history, {"per_page": 2, "path": "gear.scad"}).json()["count"] == 5
    assert [args[3] for args in queued] == [None, "gear.scad", "gear.scad"]


def test_an_unfiltered_first_page_showing_all_new_commits_reads_no_commit_graph(repo, monkeypatch):
    earlier = _line(repo, None, 6)
    head = _line(repo, earlier, 2)
    repo.refresh_commit_graph()
    read = []
    monkeypatch.setattr(Repository, "depth", lambda self, commit: read.append(commit) or 8)
    assert repo.log_and_count(head, limit=3, counted=(earlier, 6), at_most=5)[1] == 8
    assert read == []
    # A page that does not show the earlier head still asks the graph.
    assert repo.log_and_count(head, limit=1, counted=(earlier, 6), at_most=5)[1] is None
    assert read == [head]


def test_the_depth_follows_the_chain_as_refreshes_add_layers(repo):
    first = _line(repo, None, 30)  # a layer large enough for git to keep the next apart
    repo.refresh_commit_graph()
    assert repo.depth(first) == 30
    head, depth = first, 30
    for n in range(1, 4):  # each refresh writes a new chain file: the one read before is stale
        head, depth = _line(repo, head, n), depth + n
        assert repo.depth(head) is None
        repo.refresh_commit_graph()
        assert repo.depth(head) == depth and repo.depth(first) == 30


@pytest.mark.parametrize("chain", [b"../../HEAD\n", b"\xff\xfe\n", b""])
def test_a_chain_file_git_would_not_write_gives_no_depth(repo, chain):
    head = _line(repo, None, 3)
    repo.refresh_commit_graph()
    path = repo.path / "objects/info/commit-graphs/commit-graph-chain"
    path.write_bytes(path.read_bytes() + chain if chain else b"")
    assert repo.depth(head) is None
    # The page and its count are git's own.
    commits, total = repo.log_and_count(head, limit=2, at_most=2)
    assert [c.sha for c in commits] == _git(repo, "rev-list", "-n2", head).split() and total is None
    assert repo.log_and_count(head, limit=2, at_most=10)[1] == 3
