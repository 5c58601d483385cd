"""An assembly in a real Chromium (docs/assemblies.md): its owner opens the Assembly tab,
reads the module tree and the rolled-up BOM, proposes the upgrade on offer, sees the
submodule pin move in the proposal's diff, merges it and finds the new release pinned;
the assembled 3D view draws every module's mesh where assembly.toml places it."""

from __future__ import annotations

import pytest
import trimesh
from playwright.sync_api import expect

from designs import services
from designs.models import MeshAnalysis
from designs.services import assemblies
from tests.browser.conftest import ARTIFACTS
from tests.browser.test_mesh_viewer import PIXELS
from tests.designs.test_assemblies import pin
from tests.factories import DesignFactory, commit_files

pytestmark = pytest.mark.browser

CAR_TOML = """name = "Car"
[[module]]
path = "modules/chassis"
release = "v0.1"
[[module]]
path = "modules/suspension"
release = "v0.2"
quantity = 4
position = [80, 50, 24]
attaches = ["suspension-mount"]
[[module]]
path = "modules/wheels"
release = "v1"
quantity = 2
position = [-80, 0, 10]
"""


def stl(mesh: trimesh.Trimesh) -> bytes:
    return mesh.export(file_type="stl")


def release(design, name: str) -> str:
    services.tag_create(design=design, user=design.owner, name=name, target=None, notes="")
    return design.repo.resolve(name)


@pytest.fixture(autouse=True)
def no_script_errors(page):
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield
    assert not errors, errors


@pytest.fixture
def car(alice, bob):
    """alice's car pins her chassis v0.1, bob's suspension v0.2 (v0.3 is out) and bob's
    wheelset v1, itself an assembly of his axle. Every module has a mesh, analysed when
    committed (background tasks run at once here), so the assembled view has data."""
    chassis = DesignFactory(owner=alice, slug="chassis", title="Chassis")
    commit_files(
        chassis,
        {
            "bom.csv": "part,qty,description\nM8 bolt,8,hex\nrail,2,steel\n",
            "module.toml": '[[provides]]\nname = "suspension-mount"\ndescription = "4 × M8"\n',
            "plate.stl": stl(trimesh.creation.box(extents=(200, 120, 8))),
        },
    )
    chassis_v1 = release(chassis, "v0.1")
    suspension = DesignFactory(owner=bob, slug="suspension", title="Suspension")
    arm = stl(trimesh.creation.cylinder(radius=12, height=40))
    commit_files(suspension, {"bom.csv": "part,qty\nM8 bolt,4\nspring,1\n", "arm.stl": arm})
    suspension_v2 = release(suspension, "v0.2")
    commit_files(suspension, {"bom.csv": "part,qty\nM8 bolt,6\nspring,1\n"}, message="Stiffer")
    suspension_v3 = release(suspension, "v0.3")
    axle = DesignFactory(owner=bob, slug="axle", title="Axle")
    rod = trimesh.creation.cylinder(radius=5, height=160)
    rod.apply_transform(trimesh.transformations.rotation_matrix(1.5708, [1, 0, 0]))
    commit_files(axle, {"bom.csv": "part,qty\nbearing,2\n", "axle.stl": stl(rod)})
    axle_v1 = release(axle, "v1")
    wheelset = DesignFactory(owner=bob, slug="wheelset", title="Wheelset")
    commit_files(wheelset, {"README.md": "# Wheels\n"})
    pin(wheelset, {"axle": (axle, axle_v1)}, toml='[[module]]\npath = "axle"\nrelease = "v1"\n')
    wheelset_v1 = release(wheelset, "v1")
    car = DesignFactory(owner=alice, slug="car", title="Car")
    commit_files(car, {"README.md": "# Car\n"})
    head = pin(
        car,
        {
            "modules/chassis": (chassis, chassis_v1),
            "modules/suspension": (suspension, suspension_v2),
            "modules/wheels": (wheelset, wheelset_v1),
        },
        toml=CAR_TOML,
    )
    services.refs_changed(car, new_commits=[head])
    assert assemblies.assembly_problems_at(car, commit=head) == []
    assert MeshAnalysis.objects.filter(status=MeshAnalysis.Status.DONE).count() == 3
    return {"suspension_v2": suspension_v2, "suspension_v3": suspension_v3}


def open_assembly(page, log_in) -> None:
    log_in("alice")
    page.goto("/alice/car/")
    page.click("nav.tabs a:has-text('Assembly')")
    expect(page.locator("[data-assembly-modules]")).to_be_visible()


def test_the_owner_reads_the_modules_and_bom_then_proposes_and_merges_the_upgrade(page, log_in, car):
    open_assembly(page, log_in)
    modules = page.locator("[data-assembly-modules]")
    expect(modules).to_contain_text("alice/chassis")
    expect(modules).to_contain_text("bob/suspension")
    expect(modules).to_contain_text("modules/wheels › axle")  # the nested level
    suspension = modules.locator("tr", has_text="modules/suspension")
    expect(suspension.locator("td").nth(2)).to_have_text("v0.2")
    expect(suspension.locator("td").nth(3)).to_have_text("v0.3 newer")
    expect(suspension.locator("td.num")).to_have_text("4")
    expect(modules.locator("tr", has_text="axle").locator("td.num")).to_have_text("2")  # 1 × 2 wheelsets

    # 8 bolts on the chassis and 4 on each of the 4 suspensions; 2 bearings on each of 2 axles.
    bom = page.locator("[data-assembly-bom]")
    expect(bom.locator("tr", has_text="M8 bolt").locator("td.num")).to_have_text("24")
    expect(bom.locator("tr", has_text="bearing").locator("td.num")).to_have_text("4")
    expect(bom.locator("tr", has_text="spring").locator("td.num")).to_have_text("4")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "assembly-page.png"), full_page=True)

    upgrades = page.locator("[data-assembly-upgrades]")
    expect(upgrades).to_contain_text("bob/suspension v0.3 is out (you pin v0.2)")
    upgrades.locator("button:has-text('Propose the upgrade')").click()

    expect(page).to_have_url("/alice/car/proposals/1/")
    expect(page.locator("h2").first).to_contain_text(
        "Upgrade modules/suspension (bob/suspension) from v0.2 to v0.3"
    )
    old, new = car["suspension_v2"][:10], car["suspension_v3"][:10]
    expect(page.locator("body")).to_contain_text(f"Submodule moved from {old} to {new}.")
    page.screenshot(path=str(ARTIFACTS / "assembly-upgrade-proposal.png"), full_page=True)
    # Both ends of the proposal were read (in the background) when it was first shown.
    page.reload()
    bolts = page.locator("[data-proposal-assembly-bom] tr", has_text="M8 bolt")
    expect(bolts.locator("td")).to_have_text(["M8 bolt", "changed", "24", "32"])
    page.click("button:has-text('Merge into main')")
    expect(page.locator(".callout.success")).to_contain_text("Merged by alice")

    page.click("nav.tabs a:has-text('Assembly')")
    suspension = page.locator("[data-assembly-modules] tr", has_text="modules/suspension")
    expect(suspension.locator("td").nth(2)).to_have_text("v0.3")
    expect(suspension.locator("td").nth(3)).to_have_text("v0.3")
    expect(page.locator("[data-assembly-upgrades]")).to_have_count(0)
    # v0.3 has 6 bolts: 8 + 4 × 6.
    expect(page.locator("[data-assembly-bom] tr", has_text="M8 bolt").locator("td.num")).to_have_text("32")


def test_the_assembled_view_starts_by_itself(page, log_in, car):
    open_assembly(page, log_in)
    viewer = page.locator("[data-mesh-viewer][data-scene]")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=10_000)


def test_the_assembled_view_draws_every_module_where_it_is_placed(page, log_in, car):
    open_assembly(page, log_in)
    viewer = page.locator("[data-mesh-viewer][data-scene]")
    expect(viewer).to_have_attribute("data-state", "ready", timeout=20_000)
    expect(viewer).to_have_class("mesh-viewer live")
    expect(viewer).to_have_attribute("data-parts", "3")  # the plate, the arm and the axle
    page.wait_for_timeout(300)  # the first frame is drawn on the next animation frame
    drawn = viewer.locator("canvas").first.evaluate(PIXELS)
    assert drawn["drawn"] > drawn["total"] * 0.03, drawn
    ARTIFACTS.mkdir(exist_ok=True)
    viewer.screenshot(path=str(ARTIFACTS / "assembly-view.png"))
    page.screenshot(path=str(ARTIFACTS / "assembly-page-with-view.png"), full_page=True)
