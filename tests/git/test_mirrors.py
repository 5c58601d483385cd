"""Mirrors over real git smart HTTP: pull mirrors (with LFS objects) that are read-only
here, push mirrors that never overwrite, and two independent hubs collaborating.

The single-hub tests mirror designs of the live `hub_server` into designs of the same
hub (in this process). The two-hub test starts a second hub, with its own database and
data directory, and drives it only through its API and git, as another team would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from designs import git as designs_git
from designs import services
from designs.lfs_store import lfs_store, resolve_pointer
from designs.models import Design, PullMirror, PushMirror
from designs.selectors import lfs_objects_served
from designs.services import mirrors, proposals
from hub import services as hub_services
from hub.exceptions import Conflict, PermissionDenied
from tests.factories import DesignFactory, UserFactory, commit_files
from tests.git.conftest import ROOT, HubServer, free_port, start_gunicorn
from tests.processes import git_children

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

STEP_V1 = b"ISO-10303-21;\nDATA;\n#1=CARTESIAN_POINT('',(0.,0.,0.));\nENDSEC;\nEND-ISO-10303-21;\n"


@pytest.fixture(autouse=True)
def loopback_allowed(settings):
    # Both ends are on 127.0.0.1 here; the default refuses loopback (see test_remote_urls).
    settings.FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS = True


def person(username: str | None = None):
    user = UserFactory(**({"username": username} if username else {}))
    _, user.raw_token = hub_services.token_create(user=user, name="git")
    return user


@pytest.fixture
def maker():
    return person()


@pytest.fixture
def upstream(maker):
    """A design with a Git LFS file (STEP files go through LFS), a branch and a tag."""
    design = DesignFactory(owner=maker, slug="rover")
    commit_files(
        design, {".gitattributes": "*.step filter=lfs diff=lfs merge=lfs -text\n"}, "Track STEP with LFS"
    )
    commit_files(
        design, {"README.md": "# Rover\n", "body.step": STEP_V1, "wheel.scad": "cylinder(5);\n"}, "Start"
    )
    services.branch_create(design=design, user=maker, name="experimental")
    services.tag_create(design=design, user=maker, name="v1", target=None, notes="First")
    return design


def url_of(hub_server: HubServer, design) -> str:
    return hub_server.repo_url(design.owner.username, design.slug)


def lfs_oid(design, path: str) -> str:
    entry = design.repo.entry(design.repo.branch_head(design.default_branch), path)
    return resolve_pointer(design.repo.read_blob(entry.sha)).oid


def published_refs(design) -> dict[str, str]:
    return {
        ref: sha for ref, sha in design.repo.refs().items() if ref.startswith(("refs/heads/", "refs/tags/"))
    }


# -- pull mirrors -------------------------------------------------------------------------


def test_a_pull_mirror_copies_branches_tags_and_lfs_objects(hub_server, upstream, maker):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )

    row = PullMirror.objects.get(design=mirror)
    assert row.last_success_at is not None and row.last_error == "", row.last_error
    assert published_refs(mirror) == published_refs(upstream)
    oid = lfs_oid(mirror, "body.step")
    assert oid in lfs_objects_served(mirror, [oid]) and lfs_store().exists(oid)
    # The staging refs exist, but clients never see them.
    assert any(ref.startswith("refs/fabhub/mirror/") for ref in mirror.repo.refs())
    assert mirror.repo.fsck()[0]


def test_a_refresh_of_an_unchanged_mirror_changes_nothing(hub_server, upstream, maker):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    before = published_refs(mirror)
    outcome = mirrors.mirror_refresh(design=mirror)
    assert (outcome.changed_refs, outcome.new_commits, outcome.lfs_objects) == (0, 0, 0)
    assert published_refs(mirror) == before
    # The processes the refresh started with its fetch (the publishing update-ref, the
    # reader, the walk) were ended unasked, none left behind.
    assert git_children() == []


def test_the_quarantined_fetch_starts_no_process_for_its_alternate_s_refs(
    hub_server, upstream, maker, monkeypatch, tmp_path
):
    """The quarantine's alternate is the mirror's own repository: git would list its refs
    twice more, by a process each (`for-each-ref`, or the alternateRefsCommand). The
    command the hub names is found nowhere, which git learns without a process; its
    complaint is not shown, and the fetch works."""
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    commit_files(upstream, {"wheel.scad": "cylinder(6);\n"}, "Bigger wheel")
    trace = tmp_path / "trace.json"
    remote_env = designs_git.remote_env

    def traced(*args, **kwargs):
        return {**remote_env(*args, **kwargs), "GIT_TRACE2_EVENT": str(trace)}

    monkeypatch.setattr(designs_git, "remote_env", traced)
    assert mirrors.mirror_refresh(design=mirror).new_commits == 1
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    started = {(e["sid"], e["child_id"]): e["argv"] for e in events if e["event"] == "child_start"}
    ended = {(e["sid"], e["child_id"]): e["pid"] for e in events if e["event"] == "child_exit"}
    forked = [argv for key, argv in started.items() if ended[key] != -1]  # -1: never started
    assert any("index-pack" in argv for argv in forked), "the trace shows the fetch's own children"
    alternate_refs = [argv for argv in started.values() if designs_git.NO_ALTERNATE_REFS in argv[0]]
    assert len(alternate_refs) == 2, "asked by the negotiation and by the connectivity check"
    assert not [argv for argv in forked if "for-each-ref" in argv or argv in alternate_refs]
    assert published_refs(mirror) == published_refs(upstream)


def test_a_mirror_refreshed_again_and_again_keeps_few_packs(hub_server, upstream, maker, monkeypatch):
    """Each refresh that brings something keeps the fetch's pack: the refreshes' follow-ups
    roll them up once they pile up (`Repository.upkeep`), and the mirror still holds
    everything it published."""
    monkeypatch.setattr(designs_git, "UPKEEP_PACKS", 4)
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    for n in range(10):
        commit_files(upstream, {f"part-{n}.scad": f"cube({n});\n"}, f"Part {n}")
        assert mirrors.mirror_refresh(design=mirror).new_commits == 1
        assert len(list((mirror.repo_path / "objects" / "pack").glob("*.pack"))) <= 5
    assert published_refs(mirror) == published_refs(upstream)
    assert mirror.repo.fsck()[0]
    assert git_children() == []


def test_a_refresh_follows_new_commits_deleted_branches_and_rewritten_history(hub_server, upstream, maker):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    commit_files(upstream, {"wheel.scad": "cylinder(6);\n"}, "Bigger wheel")
    services.branch_delete(design=upstream, user=maker, name="experimental")
    rewritten = upstream.repo.commit_tree(
        upstream.repo.tree_of("main"),
        [],
        "Squashed",
        author=services.person_for(maker),
        committer=services.person_for(maker),
    )
    services.branch_create(design=upstream, user=maker, name="squashed", start=rewritten)

    outcome = mirrors.mirror_refresh(design=mirror)
    assert outcome.changed_refs == 3
    assert published_refs(mirror) == published_refs(upstream)
    assert mirror.repo.commit("main").summary == "Bigger wheel"
    assert git_children() == []


def test_a_mirror_takes_no_local_change(hub_server, upstream, maker, git):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    with pytest.raises(PermissionDenied, match="read-only mirror"):
        commit_files(mirror, {"x.txt": "x"}, "Local change")
    with pytest.raises(PermissionDenied, match="read-only mirror"):
        services.branch_create(design=mirror, user=maker, name="local")
    with pytest.raises(PermissionDenied, match="read-only mirror"):
        services.tag_create(design=mirror, user=maker, name="local", target=None, notes="")

    url = hub_server.repo_url(maker.username, "rover-copy", user=maker.username, token=maker.raw_token)
    git("clone", url, "work")
    work = git.home / "work"
    (work / "x.txt").write_text("x")
    git("add", "x.txt", cwd=work)
    git("commit", "-m", "Local change", cwd=work)
    pushed = git("push", "origin", "main", cwd=work, check=False)
    assert pushed.returncode != 0 and "read-only mirror" in pushed.stderr
    assert published_refs(mirror) == published_refs(upstream)


def test_the_hub_s_own_refs_are_hidden_and_proposal_heads_cannot_be_pushed(hub_server, upstream, maker, git):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    advertised = git("ls-remote", url_of(hub_server, mirror)).stdout
    assert "refs/heads/main" in advertised and "refs/fabhub/" not in advertised

    services.branch_create(design=upstream, user=maker, name="idea")
    idea = commit_files(upstream, {"idea.txt": "i"}, "Idea", branch="idea")
    proposals.proposal_create(target=upstream, user=maker, source_branch="idea", title="Idea")
    url = hub_server.repo_url(maker.username, "rover", user=maker.username, token=maker.raw_token)
    git("init", "-q", "work")
    work = git.home / "work"
    git("fetch", "-q", url, "refs/proposals/1/head", cwd=work)
    assert git("rev-parse", "FETCH_HEAD", cwd=work).stdout.strip() == idea
    git("fetch", "-q", url, "main", cwd=work)
    pushed = git("push", url, "FETCH_HEAD:refs/proposals/1/head", cwd=work, check=False)
    assert pushed.returncode != 0 and "hidden ref" in pushed.stderr
    assert upstream.repo.resolve_ref("refs/proposals/1/head") == idea


def test_a_failed_refresh_is_recorded_with_its_reason_and_retried_later(maker):
    closed = f"http://127.0.0.1:{free_port()}/nobody/nothing.git"
    design = mirrors.mirror_create(owner=maker, slug="unreachable", url=closed, licence="MIT")
    row = PullMirror.objects.get(design=design)
    assert row.last_success_at is None and row.failures == 1
    assert "connect" in row.last_error.lower(), row.last_error
    assert row.next_refresh_at > timezone.now()
    assert design.repo.is_empty()


def test_a_missing_remote_repository_is_reported(hub_server, maker):
    design = mirrors.mirror_create(
        owner=maker, slug="ghost", url=f"{hub_server.url}/nobody/nothing.git", licence="MIT"
    )
    row = PullMirror.objects.get(design=design)
    assert row.failures == 1 and row.last_error


def test_a_private_remote_is_mirrored_with_a_credential_stored_encrypted(hub_server, maker, git):
    secret = DesignFactory(owner=maker, slug="secret", visibility="private")
    commit_files(secret, {"plan.txt": "hidden"}, "Plan")
    anonymous = mirrors.mirror_create(
        owner=maker, slug="no-key", url=url_of(hub_server, secret), licence="MIT"
    )
    assert PullMirror.objects.get(design=anonymous).failures == 1

    design = mirrors.mirror_create(
        owner=maker,
        slug="with-key",
        url=url_of(hub_server, secret),
        licence="MIT",
        username=maker.username,
        token=maker.raw_token,
    )
    row = PullMirror.objects.get(design=design)
    assert row.last_error == "" and published_refs(design) == published_refs(secret)
    assert maker.raw_token not in row.credential and row.username == maker.username
    config = (design.repo_path / "config").read_text()
    assert maker.raw_token not in config and "127.0.0.1" not in config


def test_a_credential_unreadable_after_a_key_change_is_reported(hub_server, maker, upstream, settings):
    settings.FABHUB_ENCRYPTION_KEY = ""
    design = mirrors.mirror_create(
        owner=maker,
        slug="keyed",
        url=url_of(hub_server, upstream),
        licence="MIT",
        username=maker.username,
        token=maker.raw_token,
    )
    settings.SECRET_KEY = "a new secret key"
    assert mirrors.mirror_refresh(design=design) is None
    assert "enter it again" in PullMirror.objects.get(design=design).last_error


def test_the_api_never_shows_a_stored_credential(hub_server, maker, upstream):
    from tests.conftest import client_for

    api = client_for(maker)
    created = api.post(
        "/api/mirrors/",
        {
            "slug": "copy",
            "url": url_of(hub_server, upstream),
            "licence": "MIT",
            "username": "x",
            "token": "t0p-secret",
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    assert "t0p-secret" not in created.content.decode()
    shown = api.get(f"/api/designs/{maker.username}/copy/mirror/")
    assert shown.json()["has_credential"] is True and "t0p-secret" not in shown.content.decode()


def test_due_mirrors_are_refreshed_by_the_schedule(hub_server, upstream, maker):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    head = commit_files(upstream, {"new.txt": "n"}, "New")
    assert mirrors.mirrors_tick(inline=True) == (0, 0)  # not due yet
    PullMirror.objects.filter(design=mirror).update(next_refresh_at=timezone.now() - timedelta(seconds=1))
    assert mirrors.mirrors_tick(inline=True) == (1, 0)
    assert mirror.repo.branch_head("main") == head


def test_a_refresh_already_running_is_not_started_twice(hub_server, upstream, maker):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    PullMirror.objects.filter(design=mirror).update(refreshing_since=timezone.now())
    with pytest.raises(Conflict, match="being refreshed"):
        mirrors.mirror_refresh(design=mirror)


def test_the_mirror_pages_show_its_state_and_offer_no_writing(client, hub_server, upstream, maker):
    mirror = mirrors.mirror_create(
        owner=maker, slug="rover-copy", url=url_of(hub_server, upstream), licence="MIT"
    )
    client.force_login(maker)
    detail = client.get(f"/{maker.username}/rover-copy/").content.decode()
    assert "Read-only mirror of" in detail and url_of(hub_server, upstream) in detail
    assert "Refresh now" in detail and f"/{maker.username}/rover-copy/upload/" not in detail
    assert client.get("/new/mirror/").status_code == 200
    settings_page = client.get(f"/{maker.username}/rover-copy/settings/mirrors/")
    assert settings_page.status_code == 200 and "Stop mirroring" in settings_page.content.decode()

    head = commit_files(upstream, {"n.txt": "n"}, "New")
    client.post(f"/{maker.username}/rover-copy/mirror/refresh/")
    assert mirror.repo.branch_head("main") == head

    refused = client.post(
        f"/{maker.username}/rover-copy/settings/mirrors/",
        {"action": "add-push", "url": "file:///etc/passwd"},
    )
    assert "file:// addresses" in refused.content.decode()
    client.post(f"/{maker.username}/rover-copy/settings/mirrors/", {"action": "stop-pull"})
    assert commit_files(Design.objects.get(pk=mirror.pk), {"local.txt": "now allowed"}, "Local")


def test_a_mirror_is_created_from_its_page(client, hub_server, upstream, maker):
    client.force_login(maker)
    response = client.post(
        "/new/mirror/",
        {
            "url": url_of(hub_server, upstream),
            "slug": "from-page",
            "licence": "MIT",
            "visibility": "public",
        },
    )
    assert response.status_code == 302
    row = PullMirror.objects.get(design__slug="from-page")
    assert row.last_error == "" and row.last_success_at is not None


class _StopTicking(BaseException):
    pass


def test_the_embedded_ticker_runs_the_schedule(settings, monkeypatch):
    settings.FABHUB_MIRROR_TICK_S = 0
    assert mirrors.start_embedded_ticker() is False  # turned off
    settings.FABHUB_MIRROR_TICK_S = 0.01
    ticks = []

    def tick(*, inline):
        ticks.append(inline)
        if len(ticks) == 2:
            raise _StopTicking

    monkeypatch.setattr(mirrors, "mirrors_tick", tick)
    from hub.ticker import run_ticker

    with pytest.raises(_StopTicking):
        run_ticker("mirror", interval_s=settings.FABHUB_MIRROR_TICK_S, tick=mirrors.embedded_tick)
    assert ticks == [True, True] and (Path(settings.DATA_DIR) / "mirror-ticker.lock").exists()


# -- push mirrors -------------------------------------------------------------------------


@pytest.fixture
def target(maker):
    """An empty design on the live hub that a push mirror writes to."""
    return DesignFactory(owner=maker, slug="rover-out")


def test_a_push_mirror_pushes_branches_tags_and_lfs_objects_after_each_change(
    hub_server, upstream, maker, target
):
    mirror = mirrors.push_mirror_add(
        design=upstream,
        user=maker,
        url=url_of(hub_server, target),
        username=maker.username,
        token=maker.raw_token,
    )
    mirror.refresh_from_db()
    assert mirror.last_error == "" and mirror.last_success_at is not None, mirror.last_error
    assert published_refs(target) == published_refs(upstream)
    oid = lfs_oid(target, "body.step")
    assert oid in lfs_objects_served(target, [oid])

    head = commit_files(upstream, {"wheel.scad": "cylinder(7);\n"}, "Wider")  # pushed on commit
    assert target.repo.branch_head("main") == head
    assert PushMirror.objects.get(pk=mirror.pk).pending is False


def test_a_push_mirror_never_overwrites_changes_made_on_the_remote(hub_server, upstream, maker, target):
    mirror = mirrors.push_mirror_add(
        design=upstream,
        user=maker,
        url=url_of(hub_server, target),
        username=maker.username,
        token=maker.raw_token,
    )
    remote_change = commit_files(target, {"remote.txt": "made there"}, "Changed on the remote")
    commit_files(upstream, {"local.txt": "made here"}, "Changed here")

    mirror.refresh_from_db()
    assert target.repo.branch_head("main") == remote_change
    assert mirror.failures == 1 and mirror.pending
    assert "main" in mirror.last_error and "nothing there was overwritten" in mirror.last_error
    first_wait = mirror.next_attempt_at - mirror.last_attempt_at
    mirrors.push_mirror_push_now(design=upstream, user=maker, mirror_id=mirror.pk)
    mirror.refresh_from_db()
    assert mirror.failures == 2 and mirror.next_attempt_at - mirror.last_attempt_at > first_wait


def test_a_failed_push_is_retried_by_the_schedule_once_its_back_off_is_over(
    hub_server, upstream, maker, target
):
    mirror = mirrors.push_mirror_add(
        design=upstream,
        user=maker,
        url=url_of(hub_server, target),
        username=maker.username,
        token="wrong",
    )
    mirror.refresh_from_db()
    assert mirror.failures == 1 and mirror.last_error and target.repo.is_empty()
    mirrors.push_mirror_update(
        design=upstream, user=maker, mirror_id=mirror.pk, username=maker.username, token=maker.raw_token
    )
    assert mirrors.mirrors_tick(inline=True) == (0, 0)  # still backing off
    PushMirror.objects.filter(pk=mirror.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert mirrors.mirrors_tick(inline=True) == (0, 1)
    mirror.refresh_from_db()
    assert mirror.failures == 0 and published_refs(target) == published_refs(upstream)


def test_only_the_owner_manages_push_mirrors(hub_server, upstream, target):
    stranger = person()
    with pytest.raises(PermissionDenied):
        mirrors.push_mirror_add(design=upstream, user=stranger, url=url_of(hub_server, target))


# -- two hubs -----------------------------------------------------------------------------


class OtherHub:
    """A second, independent fabhub: its own gunicorn, SQLite database and data directory."""

    def __init__(self, server: HubServer, tokens: dict[str, str]) -> None:
        self.server = server
        self.tokens = tokens

    def api(self, method: str, path: str, body: dict | None = None, *, user: str = "bea") -> tuple[int, dict]:
        request = urllib.request.Request(
            f"{self.server.url}/api/{path.lstrip('/')}",
            method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.tokens[user]}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def raw(self, path: str) -> bytes:
        request = urllib.request.Request(
            f"{self.server.url}/api/{path.lstrip('/')}",
            headers={"Authorization": f"Bearer {self.tokens['bea']}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read()

    def wait_for(self, path: str, done, *, seconds: float = 90) -> dict:
        deadline = time.monotonic() + seconds
        while True:
            status, body = self.api("GET", path)
            if status == 200 and done(body):
                return body
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"gave up waiting on {path}: {body}\n{self.server.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)


CREATE_PEOPLE = """
from hub import services
from hub.models import User
for name in ("bea", "ben"):
    user = User.objects.create_user(name, f"{name}@lab-b.example", "not used")
    print("TOKEN", name, services.token_create(user=user, name="test")[1])
"""


@pytest.fixture(scope="module")
def hub_b(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("hub-b")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FABHUB_", "DATABASE_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "hub.settings",
        "DEBUG": "0",
        "SECRET_KEY": "hub-b-only-for-tests",
        "FABHUB_DATA_DIR": str(data_dir),
        "DATABASE_URL": f"sqlite:///{data_dir / 'hub-b.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "FABHUB_MIRROR_ALLOW_PRIVATE_NETWORKS": "1",
        "FABHUB_EMBEDDED_WORKER": "1",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    subprocess.run(
        [*manage, "migrate", "--noinput"], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
    )
    made = subprocess.run(
        [*manage, "shell", "-c", CREATE_PEOPLE],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    tokens = dict(line.split()[1:] for line in made.stdout.splitlines() if line.startswith("TOKEN "))
    log = data_dir / "gunicorn.log"
    proc, url = start_gunicorn(env, log)
    yield OtherHub(HubServer(url=url, data_dir=data_dir, log=log), tokens)
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture
def lfs_git(git):
    git("lfs", "install", "--skip-repo")
    return git


def test_two_hubs_fork_through_a_mirror_and_the_change_comes_back(
    hub_server, hub_b, upstream, maker, lfs_git
):
    git = lfs_git
    a_url = url_of(hub_server, upstream)
    step_oid = lfs_oid(upstream, "body.step")

    # Hub B mirrors hub A's design, LFS objects included (its own store, its own database).
    status, created = hub_b.api(
        "POST", "mirrors/", {"slug": "rover", "url": a_url, "licence": "CERN-OHL-S-2.0"}
    )
    assert status == 201, created
    hub_b.wait_for("designs/bea/rover/mirror/", lambda m: m["last_success_at"] or m["last_error"])
    mirror_state = hub_b.api("GET", "designs/bea/rover/mirror/")[1]
    assert mirror_state["last_error"] == "", mirror_state
    assert hub_b.raw("designs/bea/rover/raw/?path=body.step") == STEP_V1
    assert (hub_b.server.data_dir / "lfs" / step_oid[:2] / step_oid[2:4] / step_oid).exists()
    status, refused = hub_b.api(
        "POST", "designs/bea/rover/delete/", {"message": "Tidy", "paths": ["README.md"]}
    )
    assert status == 403 and "read-only mirror" in refused["detail"]

    # A team on hub B forks the mirror and changes a part with git (and adds an LFS file).
    status, fork = hub_b.api("POST", "designs/bea/rover/fork/", {"slug": "rover-lab"})
    assert status == 201, fork
    b_fork = hub_b.server.repo_url("bea", "rover-lab", user="bea", token=hub_b.tokens["bea"])
    git("clone", b_fork, "lab")
    lab = git.home / "lab"
    (lab / "wheel.scad").write_text("cylinder(8); // stronger, from lab B\n")
    (lab / "hub.step").write_bytes(STEP_V1.replace(b"0.,0.,0.", b"1.,2.,3."))
    git("add", ".", cwd=lab)
    git("commit", "-m", "Lab B: stronger wheel", cwd=lab)
    git("push", "origin", "main", cwd=lab)
    lab_head = git("rev-parse", "HEAD", cwd=lab).stdout.strip()

    # The change comes back to hub A through a push mirror holding a write token of A.
    status, push = hub_b.api(
        "POST",
        "designs/bea/rover-lab/push-mirrors/",
        {"url": a_url, "username": maker.username, "token": maker.raw_token},
    )
    assert status == 201 and "token" not in push, push
    pushed = hub_b.wait_for(
        "designs/bea/rover-lab/push-mirrors/", lambda ms: ms[0]["last_success_at"] or ms[0]["last_error"]
    )[0]
    assert pushed["last_error"] == "", pushed
    assert upstream.repo.branch_head("main") == lab_head
    assert upstream.repo.commit("main").summary == "Lab B: stronger wheel"
    new_oid = lfs_oid(upstream, "hub.step")
    assert new_oid in lfs_objects_served(upstream, [new_oid]) and lfs_store().exists(new_oid)

    # Hub A moves on; hub B's mirror and fork follow (refresh on demand, sync with upstream).
    a_head = commit_files(upstream, {"README.md": "# Rover\n\nNow with lab B's wheel.\n"}, "Credit lab B")
    status, refreshed = hub_b.api("POST", "designs/bea/rover/mirror/refresh/")
    assert status == 200 and refreshed["last_error"] == "", refreshed
    hub_b.wait_for("designs/bea/rover-lab/upstream/", lambda u: u["upstream_head"] == a_head)
    status, upstream_state = hub_b.api("GET", "designs/bea/rover-lab/upstream/")
    assert (upstream_state["ahead"], upstream_state["behind"]) == (0, 1)
    status, synced = hub_b.api("POST", "designs/bea/rover-lab/sync/", {})
    assert status == 200 and synced["outcome"] == "fast-forward" and synced["head"] == a_head


def test_conflicting_edits_on_two_hubs_are_reported_not_lost(hub_server, hub_b, upstream, maker, lfs_git):
    git = lfs_git
    a_url = url_of(hub_server, upstream)
    assert hub_b.api("POST", "mirrors/", {"slug": "rover2", "url": a_url, "licence": "MIT"})[0] == 201
    hub_b.wait_for("designs/bea/rover2/mirror/", lambda m: m["last_success_at"] or m["last_error"])
    assert hub_b.api("POST", "designs/bea/rover2/fork/", {"slug": "rover2-lab"})[0] == 201

    # Both hubs change the same lines of the same part.
    a_edit = commit_files(upstream, {"wheel.scad": "cylinder(6); // hub A\n"}, "Hub A's wheel")
    git("clone", hub_b.server.repo_url("bea", "rover2-lab", user="bea", token=hub_b.tokens["bea"]), "lab")
    lab = git.home / "lab"
    (lab / "wheel.scad").write_text("cylinder(9); // hub B\n")
    git("commit", "-am", "Hub B's wheel", cwd=lab)
    git("push", "origin", "main", "main:lab-b/wheel", cwd=lab)
    b_edit = git("rev-parse", "HEAD", cwd=lab).stdout.strip()

    # The push mirror refuses to overwrite hub A's main, says why, and still delivers the branch.
    status, _ = hub_b.api(
        "POST",
        "designs/bea/rover2-lab/push-mirrors/",
        {"url": a_url, "username": maker.username, "token": maker.raw_token},
    )
    assert status == 201
    failed = hub_b.wait_for(
        "designs/bea/rover2-lab/push-mirrors/", lambda ms: ms[0]["last_success_at"] or ms[0]["last_error"]
    )[0]
    assert "main" in failed["last_error"] and "nothing there was overwritten" in failed["last_error"], failed
    assert failed["next_attempt_at"] and failed["failures"] >= 1
    assert upstream.repo.branch_head("main") == a_edit
    assert upstream.repo.branch_head("lab-b/wheel") == b_edit

    # On hub A, a proposal from the delivered branch lists the conflicting file.
    proposal = proposals.proposal_create(
        target=upstream, user=maker, source_branch="lab-b/wheel", title="Lab B's wheel"
    )
    assert proposal.merge_state == "conflict"
    assert [c["path"] for c in proposal.conflicts] == ["wheel.scad"]
    with pytest.raises(Conflict):
        proposals.proposal_merge(proposal=proposal, user=maker)
    status, lab_design = hub_b.api("GET", "designs/bea/rover2-lab/commits/")
    assert lab_design["results"][0]["sha"] == b_edit
