"""`manage.py demo`: the people, the modular car as an assembly of three teams' modules
(docs/assemblies.md), its history, releases, upgrade and fork, made once."""

from __future__ import annotations

import io

import pytest
import trimesh
from django.core.management import call_command
from django.urls import reverse

from designs import assemblies as files
from designs import rollup, services
from designs.models import AssemblyCheck, ChangeProposal, Collaborator, Design
from hub.models import User

CAR = {"owner__username": "ada", "slug": "wikispeed-modular-car"}


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # Each test builds the demo afresh; hashing three passwords the production way would
    # be most of its time.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def run_demo() -> str:
    out = io.StringIO()
    call_command("demo", stdout=out)
    return out.getvalue()


@pytest.fixture
def demo_data(db):
    run_demo()
    return Design.objects.get(**CAR)


DESIGNS = [
    "ada/chassis",
    "ada/wikispeed-modular-car",
    "grace/body",
    "linus/spool-holder",
    "linus/suspension",
    "linus/wikispeed-modular-car",
]


def assembly_at_head(design: Design, viewer: User) -> rollup.AssemblyView:
    head = design.repo.branch_head(design.default_branch)
    check = AssemblyCheck.objects.get(design=design, commit_sha=head)
    return rollup.assembly_view(design, check=check, viewer=viewer)


@pytest.mark.django_db
def test_running_it_twice_creates_everything_once():
    first = run_demo()
    second = run_demo()

    assert "ada / ada-fabhub-demo" in first
    assert "already present" in second
    assert sorted(User.objects.values_list("username", flat=True)) == ["ada", "grace", "linus"]
    assert sorted(str(d) for d in Design.objects.all()) == DESIGNS


@pytest.mark.django_db
def test_the_accounts_sign_in_with_the_documented_passwords(demo_data):
    for username in ("ada", "linus", "grace"):
        user = User.objects.get(username=username)
        assert user.check_password(f"{username}-fabhub-demo")
        assert user.email and user.get_full_name()


@pytest.mark.django_db
def test_the_car_has_history_a_release_and_a_writing_collaborator(demo_data):
    car = demo_data
    repo = car.repo
    head = repo.branch_head("main")

    assert repo.count_commits(head) == 6
    assert car.licence == "CERN-OHL-S-2.0"
    assert sorted(t.name for t in car.tags.all()) == ["modular", "vehicle", "wikispeed"]
    authors = {c.author.email for c in repo.log(head)}
    assert authors == {"ada@example.org", "grace@example.org"}
    assert Collaborator.objects.get(design=car, user__username="grace").role == "write"
    assert [branch for branch, _ in repo.branches()] == ["main"]

    (release,) = repo.tags()
    assert release.name == "v0.1"
    assert release.target != head and repo.is_ancestor(release.target, head)
    assert "First complete set of modules" in release.message


@pytest.mark.django_db
def test_the_car_is_an_assembly_of_three_teams_modules_with_no_problems(demo_data):
    """Each module is another person's design, pinned at a release, and the hub finds
    nothing wrong with the car at its head."""
    ada = User.objects.get(username="ada")
    view = assembly_at_head(demo_data, ada)

    assert view.is_assembly and view.problems == [] and view.hidden_problems == 0
    rows = {row.path: row for row in view.rows}
    assert {path: (str(row.design), row.release, row.quantity) for path, row in rows.items()} == {
        "modules/chassis": ("ada/chassis", "v0.1", 1),
        "modules/suspension": ("linus/suspension", "v0.2", 4),
        "modules/body": ("grace/body", "v0.2", 1),
    }
    assert rows["modules/suspension"].attaches == ["suspension-mount"]
    assert [i["name"] for i in rows["modules/chassis"].provides] == ["suspension-mount", "body-mount"]
    assert view.licence_warnings == []
    gitmodules = demo_data.repo.read_blob(demo_data.repo.entry("main", ".gitmodules").sha).decode()
    assert "url = ../../linus/suspension.git" in gitmodules


@pytest.mark.django_db
def test_a_newcomer_signed_in_as_ada_is_offered_the_newer_suspension(demo_data, client):
    ada = User.objects.get(username="ada")
    view = assembly_at_head(demo_data, ada)
    assert [(row.path, row.pinned_label, row.latest_release) for row in view.upgrades] == [
        ("modules/suspension", "v0.2", "v0.3")
    ]

    client.force_login(ada)
    page = client.get(reverse("design-assembly", args=["ada", CAR["slug"]]))
    assert page.status_code == 200
    assert "linus/suspension v0.3</strong> is out (you pin v0.2)" in page.content.decode()


@pytest.mark.django_db
def test_the_rolled_up_bom_multiplies_the_four_suspension_corners(demo_data):
    view = assembly_at_head(demo_data, User.objects.get(username="ada"))
    bom = {row.key: row for row in view.bom}

    assert bom["wishbone-arm"].quantity == 4
    # Eight M12 pivot bolts on the chassis's mounts, two per suspension corner.
    assert bom["M12 bolt"].by_module == {"modules/chassis": 8, "modules/suspension": 8}
    assert bom["panel-bracket"].quantity == 16  # body v0.2, after the first test build


@pytest.mark.django_db
def test_the_modules_have_their_own_releases_and_interfaces(demo_data):
    releases = {
        str(design): [tag.name for tag in design.repo.tags()]
        for design in Design.objects.filter(slug__in=["chassis", "suspension", "body"])
    }
    assert releases == {
        "ada/chassis": ["v0.1"],
        "linus/suspension": ["v0.3", "v0.2", "v0.1"],
        "grace/body": ["v0.2", "v0.1"],
    }
    suspension = Design.objects.get(owner__username="linus", slug="suspension")
    assert {c.path for c in suspension.repo.diff("v0.2", "v0.3")} >= {"wishbone-arm.stl", "bom.csv"}
    for design in Design.objects.filter(slug__in=["chassis", "suspension", "body"]):
        manifest, problems = files.parse_module(
            design.repo.read_blob(design.repo.entry("main", "module.toml").sha)
        )
        assert problems == [] and (manifest.provides or manifest.needs), design


@pytest.mark.django_db
def test_the_body_was_upgraded_after_the_release_through_a_merged_proposal(demo_data):
    repo = demo_data.repo
    changed = {c.path for c in repo.diff("v0.1", "main")}

    assert {"modules/body", "assembly.toml", "README.md"} <= changed
    body = Design.objects.get(owner__username="grace", slug="body")
    assert repo.entry("main", "modules/body").sha == body.repo.resolve("v0.2")
    assert repo.entry("v0.1", "modules/body").sha == body.repo.resolve("v0.1")
    proposal = ChangeProposal.objects.get(target=demo_data)
    assert proposal.status == "merged" and proposal.author.username == "grace"
    assert proposal.title == "Upgrade modules/body (grace/body) from v0.1 to v0.2"


@pytest.mark.django_db
def test_the_fork_records_where_it_came_from_and_tries_the_newer_suspension(demo_data):
    car = demo_data
    fork = Design.objects.get(owner__username="linus", slug="wikispeed-modular-car")

    assert fork.forked_from == car
    assert fork.forked_from_name == "ada/wikispeed-modular-car"
    assert fork.fork_point == car.repo.branch_head("main")
    fork_head = fork.repo.branch_head("main")
    assert fork.repo.is_ancestor(fork.fork_point, fork_head)
    assert fork.repo.count_commits(fork_head) == car.repo.count_commits(fork.fork_point) + 1
    assert {c.path for c in fork.repo.diff(fork.fork_point, fork_head)} == {
        "modules/suspension",
        "assembly.toml",
    }
    linus = User.objects.get(username="linus")
    rows = {row.path: row for row in assembly_at_head(fork, linus).rows}
    assert rows["modules/suspension"].release == "v0.3" and not rows["modules/suspension"].upgrade_available
    suspension = Design.objects.get(owner__username="linus", slug="suspension")
    uses = rollup.used_by(suspension, viewer=linus)
    assert [(str(use.assembly), use.release) for use in uses] == [
        ("ada/wikispeed-modular-car", "v0.2"),
        ("linus/wikispeed-modular-car", "v0.3"),
    ]


@pytest.mark.django_db
def test_every_stl_is_a_watertight_mesh_and_every_png_is_a_png(demo_data):
    checked = pngs = 0
    for design in Design.objects.all():
        repo = design.repo
        head = repo.branch_head(design.default_branch)
        for path in repo.all_paths(head):
            entry = repo.entry(head, path)
            if entry is None or entry.kind != "blob":
                continue  # a module's gitlink
            data = repo.read_blob(entry.sha)
            if path.endswith(".stl"):
                mesh = trimesh.load(io.BytesIO(data), file_type="stl")
                assert mesh.is_watertight, f"{design}:{path}"
                assert 0 < len(mesh.faces) < 5000
                checked += 1
            elif path.endswith(".png"):
                assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{design}:{path}"
                pngs += 1
    # The gauge in the car and its fork, the frame, the wishbone, the shell and the
    # bracket, the spool holder.
    assert checked == 7
    assert pngs == 7  # every picture in the demo repositories


@pytest.mark.django_db
def test_the_readme_shows_the_assembled_car_and_where_to_look(demo_data):
    repo = demo_data.repo
    readme = repo.read_blob(repo.entry("main", "README.md").sha).decode()

    assert readme.startswith("# Wikispeed-style modular car")
    assert "![The assembled car](docs/car.png)" in readme
    assert "**Assembly** tab" in readme and "git clone --recurse-submodules" in readme
    assert repo.entry("main", "docs/car.png") is not None


@pytest.mark.django_db
def test_every_repository_passes_git_fsck(demo_data):
    designs = list(Design.objects.all())
    assert len(designs) == len(DESIGNS)
    for design in designs:
        ok, report = design.repo.fsck()
        assert ok, f"{design}: {report}"


@pytest.mark.django_db
def test_a_failed_run_leaves_nothing_behind(monkeypatch, repos_dir):
    def broken(**kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(services, "design_fork", broken)
    with pytest.raises(RuntimeError):
        run_demo()

    assert not Design.objects.exists()
    assert not any(repos_dir.rglob("*.git"))
    monkeypatch.undo()
    run_demo()
    assert Design.objects.count() == len(DESIGNS)
