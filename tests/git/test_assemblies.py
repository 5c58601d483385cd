"""Assemblies with the stock git client against a real server (docs/assemblies.md): an
assembly pushed with `git submodule add`, its .gitmodules in the relative form
(`../../bob/suspension.git`), cloned back with `--recurse-submodules` at every pin and
across nesting levels; a pin moved by an upgrade proposal reaching the clones; a private
module in a public assembly, counted but not named, and the only submodule that fails.

How git treats credentials here (git 2.39, checked by these tests): a relative submodule
URL is resolved as text against the superproject's `remote.origin.url`, userinfo
included, so `http://alice:TOKEN@host/alice/car.git` + `../../alice/secret-ecu.git` gives
`http://alice:TOKEN@host/alice/secret-ecu.git` and the token travels with it (it is kept,
token and all, in the clone's `submodule.<name>.url`). An absolute submodule URL carries
only what it says, so it would need a credential helper. Anonymous, a private submodule
answers 401, git may not prompt (GIT_TERMINAL_PROMPT=0), and that submodule is not cloned;
how git leaves the others is in the test that does it.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest
import trimesh

from designs import services
from designs.models import AssemblyCheck, ChangeProposal, Design, ModuleUse
from designs.services import assemblies, proposals, upgrades
from hub import services as hub_services
from tests.designs.test_assemblies import pin
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


# The served data directory lives as long as the session, so each test's people are new
# (a design's repository is a folder named after its owner).
@pytest.fixture
def alice():
    return UserFactory()


@pytest.fixture
def bob():
    return UserFactory()


CAR_TOML = """name = "Car"
[[module]]
path = "modules/chassis"
release = "v0.1"
[[module]]
path = "modules/suspension"
release = "v0.2"
quantity = 4
[[module]]
path = "modules/wheels"
release = "v1"
quantity = 2
"""
PUBLIC_MODULES = ("modules/chassis", "modules/suspension", "modules/wheels")


def stl(size: float) -> bytes:
    return trimesh.creation.box(extents=(size, size, size)).export(file_type="stl")


def release(design: Design, name: str) -> str:
    services.tag_create(design=design, user=design.owner, name=name, target=None, notes="")
    return design.repo.resolve(name)


def token_for(user) -> str:
    _, raw = hub_services.token_create(user=user, name="git")
    return raw


def wait_for(condition, *, what: str, timeout: float = 60.0):
    """The hub reads a pushed assembly on its worker thread, after the push answers."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)


def head_of(git, path: Path) -> str:
    return git("rev-parse", "HEAD", cwd=path).stdout.strip()


def checked_out_at(git, path: Path) -> str:
    """The commit a submodule's working tree holds, once its files are all there: a
    submodule cloned but never checked out has the right HEAD and no files."""
    assert git("status", "--porcelain", cwd=path).stdout == "", f"{path} is not checked out"
    return head_of(git, path)


def checked_out(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def add_modules(git, work: Path, modules: dict[str, tuple[str, str, str]]) -> None:
    """`git submodule add` each {path: (clone url, relative url, ref)}, check out `ref`, and
    rewrite .gitmodules to the relative URL, as a person publishing an assembly would."""
    for path, (url, relative, ref) in modules.items():
        git("submodule", "add", url, path, cwd=work)
        git("checkout", "--quiet", ref, cwd=work / path)
        git("config", "-f", ".gitmodules", f"submodule.{path}.url", relative, cwd=work)
        git("add", ".gitmodules", path, cwd=work)


@pytest.fixture
def hub(hub_server, repos_dir, alice, bob):
    """bob's suspension (v0.2, v0.3) and wheelset (an assembly pinning bob's axle v1, whose
    main has moved on since); alice's chassis (v0.1) and car, empty but for a README."""
    chassis = DesignFactory(owner=alice, slug="chassis")
    commit_files(chassis, {"bom.csv": "part,qty\nrail,2\n", "frame.stl": stl(10)})
    suspension = DesignFactory(owner=bob, slug="suspension")
    commit_files(suspension, {"bom.csv": "part,qty\nM8 bolt,4\nspring,1\n", "arm.stl": stl(20)})
    axle = DesignFactory(owner=bob, slug="axle")
    commit_files(axle, {"bom.csv": "part,qty\nbearing,2\n"})
    wheelset = DesignFactory(owner=bob, slug="wheelset")
    commit_files(wheelset, {"README.md": "# Wheels\n"})
    car = DesignFactory(owner=alice, slug="car")
    commit_files(car, {"README.md": "# Car\n"})
    world = {
        "chassis": chassis,
        "suspension": suspension,
        "axle": axle,
        "wheelset": wheelset,
        "car": car,
        "chassis_v1": release(chassis, "v0.1"),
        "suspension_v2": release(suspension, "v0.2"),
        "axle_v1": release(axle, "v1"),
        "alice_token": token_for(alice),
    }
    commit_files(suspension, {"bom.csv": "part,qty\nM8 bolt,6\nspring,1\n"}, message="Stiffer")
    world["suspension_v3"] = release(suspension, "v0.3")
    # The nested level is built with the plumbing (the unit tests' pin()); its axle has
    # moved past v1 since, so a clone at the branch head would not be at the pin.
    pin(wheelset, {"axle": (axle, world["axle_v1"])}, toml='[[module]]\npath = "axle"\nrelease = "v1"\n')
    services.refs_changed(wheelset, new_commits=[wheelset.repo.branch_head("main")])
    world["wheelset_v1"] = release(wheelset, "v1")
    commit_files(axle, {"bom.csv": "part,qty\nbearing,4\n"}, message="Four bearings")
    commit_files(suspension, {"notes.md": "unreleased work\n"}, message="After v0.3")
    return world


def clone_url(hub_server, design: Design, *, token: str | None = None) -> str:
    user = design.owner.username if token else None
    return hub_server.repo_url(design.owner.username, design.slug, user=user, token=token)


def relative(design: Design) -> str:
    """The URL an assembly of this hub names a module of this hub by (docs/assemblies.md)."""
    return f"../../{design.owner.username}/{design.slug}.git"


def module(hub_server, design: Design, ref: str, *, token: str | None = None) -> tuple[str, str, str]:
    return clone_url(hub_server, design, token=token), relative(design), ref


@pytest.fixture
def car(hub, hub_server, git):
    """alice/car pushed with the git CLI: chassis v0.1, suspension v0.2 and the wheelset v1
    (itself an assembly) as submodules with relative URLs, and its assembly.toml."""
    git("clone", clone_url(hub_server, hub["car"], token=hub["alice_token"]), "publish")
    work = git.home / "publish"
    add_modules(
        git,
        work,
        {
            "modules/chassis": module(hub_server, hub["chassis"], "v0.1"),
            "modules/suspension": module(hub_server, hub["suspension"], "v0.2"),
            "modules/wheels": module(hub_server, hub["wheelset"], "v1"),
        },
    )
    (work / "assembly.toml").write_text(CAR_TOML)
    git("add", "assembly.toml", cwd=work)
    git("commit", "-m", "Pin the chassis, the suspension and the wheels", cwd=work)
    git("push", "origin", "main", cwd=work)
    head = hub["car"].repo.branch_head("main")
    assert head == head_of(git, work)
    # The push answered; the hub reads the assembly after it, on its own worker.
    wait_for(
        lambda: ModuleUse.objects.filter(assembly=hub["car"]).count() == 3, what="the hub to read the car"
    )
    assert assemblies.assembly_problems_at(hub["car"], commit=head) == []
    return {**hub, "head": head, "publish": work}


def assert_at_pins(git, clone: Path, hub, *, suspension: str) -> None:
    assert checked_out_at(git, clone / "modules/chassis") == hub["chassis_v1"]
    assert checked_out_at(git, clone / "modules/suspension") == suspension
    assert checked_out_at(git, clone / "modules/wheels") == hub["wheelset_v1"]
    # …and one level down, the wheelset's own pin, not bob/axle's newer main.
    assert checked_out_at(git, clone / "modules/wheels/axle") == hub["axle_v1"]
    assert (clone / "modules/wheels/axle/bom.csv").read_text() == "part,qty\nbearing,2\n"


def test_the_pushed_assembly_is_read_with_its_relative_urls_resolved_to_designs_of_this_hub(car):
    check = AssemblyCheck.objects.get(design=car["car"], commit_sha=car["head"])
    modules = {module["path"]: module for module in check.modules}
    assert {path: (m["url"], m["design_id"], m["release"]) for path, m in modules.items()} == {
        "modules/chassis": (relative(car["chassis"]), car["chassis"].pk, "v0.1"),
        "modules/suspension": (relative(car["suspension"]), car["suspension"].pk, "v0.2"),
        "modules/wheels": (relative(car["wheelset"]), car["wheelset"].pk, "v1"),
    }
    assert modules["modules/wheels"]["nested"]


def test_a_recursive_clone_checks_out_every_module_at_its_pin_across_nesting_levels(car, hub_server, git):
    result = git("clone", "--recurse-submodules", clone_url(hub_server, car["car"]), "clone")
    clone = git.home / "clone"
    assert head_of(git, clone) == car["head"]
    assert_at_pins(git, clone, car, suspension=car["suspension_v2"])
    assert (clone / "modules/suspension/bom.csv").read_text() == "part,qty\nM8 bolt,4\nspring,1\n"
    # git resolved the relative URLs against the superproject's own URL.
    assert clone_url(hub_server, car["suspension"]) in result.stderr + result.stdout
    assert git("config", "submodule.modules/wheels.url", cwd=clone).stdout.strip() == clone_url(
        hub_server, car["wheelset"]
    )


def test_an_upgrade_merged_on_the_hub_reaches_a_pull_and_a_fresh_clone(car, hub_server, git, alice):
    git("clone", "--recurse-submodules", clone_url(hub_server, car["car"]), "before")
    before = git.home / "before"
    assert head_of(git, before / "modules/suspension") == car["suspension_v2"]

    proposal = upgrades.assembly_upgrade_propose(
        design=car["car"], user=alice, path="modules/suspension", release="v0.3"
    )
    merged = proposals.proposal_merge(proposal=proposal, user=alice)
    assert ChangeProposal.objects.get(pk=proposal.pk).status == "merged"
    assert car["car"].repo.entry(merged, "modules/suspension").sha == car["suspension_v3"]

    git("pull", "--ff-only", "--recurse-submodules", cwd=before)
    assert head_of(git, before) == merged
    assert head_of(git, before / "modules/suspension") == car["suspension_v3"]
    assert 'release = "v0.3"' in (before / "assembly.toml").read_text()
    assert (before / "modules/suspension/bom.csv").read_text() == "part,qty\nM8 bolt,6\nspring,1\n"

    git("clone", "--recurse-submodules", clone_url(hub_server, car["car"]), "after")
    assert_at_pins(git, git.home / "after", car, suspension=car["suspension_v3"])


def anonymous_get(hub_server, design: Design, what: str) -> bytes:
    address = f"{hub_server.url}/{design.owner.username}/{design.slug}/{what}"
    with urllib.request.urlopen(address, timeout=30) as response:
        return response.read()


@pytest.fixture
def secret(car, hub_server, git, alice):
    """A private module of alice's in her public car, pushed by alice like the others."""
    ecu = DesignFactory(owner=alice, slug="secret-ecu", visibility="private")
    commit_files(ecu, {"bom.csv": "part,qty\nmicrocontroller,1\n", "firmware.txt": "v1\n"})
    ecu_v1 = release(ecu, "v1")
    work = car["publish"]
    add_modules(git, work, {"modules/ecu": module(hub_server, ecu, "v1", token=car["alice_token"])})
    git("commit", "-m", "Add the engine controller", cwd=work)
    git("push", "origin", "main", cwd=work)
    head = car["car"].repo.branch_head("main")
    wait_for(
        lambda: ModuleUse.objects.filter(assembly=car["car"]).count() == 4, what="the hub to read the ecu"
    )
    assert assemblies.assembly_problems_at(car["car"], commit=head) == []
    return {**car, "ecu": ecu, "ecu_v1": ecu_v1, "head": head}


def test_strangers_are_told_of_one_private_module_never_its_name(secret, hub_server):
    page = anonymous_get(hub_server, secret["car"], "assembly/").decode()
    assert "1 private module" in page
    assert "secret-ecu" not in page and "modules/ecu" not in page and "microcontroller" not in page
    # The public modules are named.
    assert secret["suspension"].full_name in page and secret["chassis"].full_name in page
    scene = json.loads(anonymous_get(hub_server, secret["car"], "assembly/scene.json"))
    assert {part["module"] for part in scene["parts"]} == {"modules/chassis", "modules/suspension"}


def test_an_anonymous_recursive_clone_fails_for_the_private_submodule_only(secret, hub_server, git):
    result = git(
        "clone", "--recurse-submodules", clone_url(hub_server, secret["car"]), "anonymous", check=False
    )
    clone = git.home / "anonymous"
    # The superproject arrives; the private module answers 401, git may not prompt for a
    # password, says which submodule it could not clone and exits non-zero.
    assert result.returncode != 0
    assert "Failed to clone 'modules/ecu'" in result.stderr, result.stderr
    assert "could not read Username" in result.stderr, result.stderr
    assert head_of(git, clone) == secret["head"]
    assert not checked_out(clone / "modules/ecu")
    # git (2.39) clones every submodule (without a checkout) before it checks any out at
    # its pin, and gives up on all the checkouts once one clone has failed twice: the
    # public modules are fetched, their HEADs at their default branches, their working
    # trees empty and their own submodules not cloned. A plain `submodule update` then
    # skips a module whose HEAD happens to equal its pin, leaving it empty; `--force`
    # checks every one out, nested levels included.
    git("submodule", "update", "--init", "--recursive", "--force", "--", *PUBLIC_MODULES, cwd=clone)
    assert_at_pins(git, clone, secret, suspension=secret["suspension_v2"])
    assert not checked_out(clone / "modules/ecu")


def test_the_owner_s_token_in_the_clone_url_reaches_the_private_submodule_too(secret, hub_server, git):
    git(
        "clone",
        "--recurse-submodules",
        clone_url(hub_server, secret["car"], token=secret["alice_token"]),
        "owner",
    )
    clone = git.home / "owner"
    assert head_of(git, clone / "modules/ecu") == secret["ecu_v1"]
    assert (clone / "modules/ecu/firmware.txt").read_text() == "v1\n"
    assert_at_pins(git, clone, secret, suspension=secret["suspension_v2"])
    # The token reached the submodule inside its URL, resolved from the relative one.
    assert git("config", "submodule.modules/ecu.url", cwd=clone).stdout.strip() == clone_url(
        hub_server, secret["ecu"], token=secret["alice_token"]
    )
