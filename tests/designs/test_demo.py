from __future__ import annotations

import io

import pytest
import trimesh
from django.core.management import call_command

from designs import services
from designs.models import Collaborator, Design
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


@pytest.mark.django_db
def test_running_it_twice_creates_everything_once():
    first = run_demo()
    second = run_demo()

    assert "ada / ada-fabhub-demo" in first
    assert "already present" in second
    assert sorted(User.objects.values_list("username", flat=True)) == ["ada", "grace", "linus"]
    assert sorted(str(d) for d in Design.objects.all()) == [
        "ada/wikispeed-modular-car",
        "linus/spool-holder",
        "linus/wikispeed-modular-car",
    ]


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

    assert repo.count_commits(head) >= 5
    assert car.licence == "CERN-OHL-S-2.0"
    assert sorted(t.name for t in car.tags.all()) == ["modular", "vehicle", "wikispeed"]
    authors = {c.author.email for c in repo.log(head)}
    assert authors == {"ada@example.org", "grace@example.org"}
    assert Collaborator.objects.get(design=car, user__username="grace").role == "write"

    (release,) = repo.tags()
    assert release.name == "v0.1"
    assert release.target != head and repo.is_ancestor(release.target, head)
    assert "First complete set of modules" in release.message


@pytest.mark.django_db
def test_the_bracket_and_the_bill_of_materials_change_after_the_release(demo_data):
    repo = demo_data.repo
    changed = {c.path for c in repo.diff("v0.1", "main")}

    assert {"body/panel-bracket.stl", "bom.csv", "README.md"} <= changed
    messages = [c.summary for c in repo.log("main")]
    assert "Thicken panel bracket to 4 mm after load test" in messages


@pytest.mark.django_db
def test_the_fork_records_where_it_came_from_and_adds_a_commit(demo_data):
    car = demo_data
    fork = Design.objects.get(owner__username="linus", slug="wikispeed-modular-car")

    assert fork.forked_from == car
    assert fork.forked_from_name == "ada/wikispeed-modular-car"
    assert fork.fork_point == car.repo.branch_head("main")
    fork_head = fork.repo.branch_head("main")
    assert fork.repo.is_ancestor(fork.fork_point, fork_head)
    assert fork.repo.count_commits(fork_head) == car.repo.count_commits(fork.fork_point) + 1
    assert {c.path for c in fork.repo.diff(fork.fork_point, fork_head)} == {
        "suspension/wishbone-arm.stl",
        "docs/suspension.png",
    }


@pytest.mark.django_db
def test_every_stl_is_a_watertight_mesh_and_every_png_is_a_png(demo_data):
    checked = pngs = 0
    for design in Design.objects.all():
        repo = design.repo
        head = repo.branch_head(design.default_branch)
        for path in repo.all_paths(head):
            data = repo.read_blob(repo.entry(head, path).sha)
            if path.endswith(".stl"):
                mesh = trimesh.load(io.BytesIO(data), file_type="stl")
                assert mesh.is_watertight, f"{design}:{path}"
                assert 0 < len(mesh.faces) < 5000
                checked += 1
            elif path.endswith(".png"):
                assert data.startswith(b"\x89PNG\r\n\x1a\n"), f"{design}:{path}"
                pngs += 1
    assert checked == 7  # three car parts twice (upstream and fork), one spool holder
    assert pngs == 7  # every picture in the demo repositories


@pytest.mark.django_db
def test_the_readme_shows_a_chassis_image_that_is_in_the_repository(demo_data):
    repo = demo_data.repo
    readme = repo.read_blob(repo.entry("main", "README.md").sha).decode()

    assert readme.startswith("# Wikispeed-style modular car")
    assert "![Chassis](docs/chassis.png)" in readme
    assert repo.entry("main", "docs/chassis.png") is not None


@pytest.mark.django_db
def test_every_repository_passes_git_fsck(demo_data):
    designs = list(Design.objects.all())
    assert len(designs) == 3
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
    assert Design.objects.count() == 3
