"""Assemblies (docs/assemblies.md): a design that pins other designs, its modules, as git
submodules and describes them in assembly.toml. What the hub reads from them — modules,
releases, interfaces, rolled-up BOM and figures, licences — what it refuses, what stays
private, and the upgrade proposal."""

from __future__ import annotations

import pytest
import trimesh
from django.urls import reverse

from designs import rollup, services
from designs.git import FileEdit, Person
from designs.models import AssemblyCheck, ChangeProposal, ModuleUse
from designs.services import assemblies, proposals, upgrades
from hub.exceptions import Conflict, PermissionDenied
from tests.factories import DesignFactory, UserFactory, commit_files

pytestmark = pytest.mark.django_db
WHO = Person(name="Ada", email="ada@example.org")


def stl(size: float) -> bytes:
    return trimesh.creation.box(extents=(size, size, size)).export(file_type="stl")


def pin(
    assembly, modules: dict, *, toml: str | None = None, urls: dict | None = None, branch: str = "main"
) -> str:
    """Commit, as `git submodule add` + push would, `modules` ({path: (design, commit)})."""
    repo = assembly.repo
    head = repo.branch_head(branch)
    entries, edits = [], []
    for path, (module, commit) in modules.items():
        url = (urls or {}).get(path) or f"../../{module.owner.username}/{module.slug}.git"
        entries.append(f'[submodule "{path}"]\n\tpath = {path}\n\turl = {url}\n')
        edits.append(FileEdit(path, commit, "160000"))
    edits.append(FileEdit(".gitmodules", repo.write_blob("".join(entries).encode())))
    if toml is not None:
        edits.append(FileEdit("assembly.toml", repo.write_blob(toml.encode())))
    tree = repo.build_tree(head, edits)
    sha = repo.commit_tree(tree, [head] if head else [], "Pin modules", author=WHO, committer=WHO)
    repo.update_ref(f"refs/heads/{branch}", sha, head)
    return sha


def release(design, name: str) -> str:
    services.tag_create(design=design, user=design.owner, name=name, target=None, notes="")
    return design.repo.resolve(name)


@pytest.fixture
def teams(alice, bob):
    grace = UserFactory(username="grace")
    chassis = DesignFactory(owner=alice, slug="chassis", licence="CERN-OHL-S-2.0")
    commit_files(
        chassis,
        {
            "bom.csv": "part,qty,description\nM8 bolt,8,hex\nrail,2,steel\n",
            "module.toml": '[[provides]]\nname = "suspension-mount"\ndescription = "4 × M8"\nfiles = ["mount.stl"]\n',
            "mount.stl": stl(10),
        },
    )
    chassis_v1 = release(chassis, "v0.1")
    suspension = DesignFactory(owner=bob, slug="suspension", licence="CERN-OHL-S-2.0")
    commit_files(suspension, {"bom.csv": "part,qty\nM8 bolt,4\nspring,1\n", "arm.stl": stl(20)})
    suspension_v2 = release(suspension, "v0.2")
    commit_files(suspension, {"bom.csv": "part,qty\nM8 bolt,6\nspring,1\n"}, message="Stiffer")
    suspension_v3 = release(suspension, "v0.3")
    car = DesignFactory(owner=alice, slug="car", licence="CERN-OHL-S-2.0")
    commit_files(car, {"README.md": "# Car\n"})
    return {
        "grace": grace,
        "chassis": chassis,
        "chassis_v1": chassis_v1,
        "suspension": suspension,
        "suspension_v2": suspension_v2,
        "suspension_v3": suspension_v3,
        "car": car,
    }


CAR_TOML = """
name = "Car"
[[module]]
path = "modules/chassis"
release = "v0.1"
[[module]]
path = "modules/suspension"
release = "v0.2"
quantity = 4
position = [100, 0, 0]
rotation = [0, 0, 90]
attaches = ["suspension-mount"]
"""


def build_car(teams) -> str:
    return pin(
        teams["car"],
        {
            "modules/chassis": (teams["chassis"], teams["chassis_v1"]),
            "modules/suspension": (teams["suspension"], teams["suspension_v2"]),
        },
        toml=CAR_TOML,
    )


def test_an_assembly_names_its_modules_their_pins_releases_and_what_is_newer(teams, alice):
    head = build_car(teams)
    check = assemblies.assembly_check(teams["car"], commit=head)
    assert check.is_assembly and check.problems == []
    view = rollup.assembly_view(teams["car"], check=check, viewer=alice)
    rows = {row.path: row for row in view.rows}
    assert rows["modules/chassis"].design == teams["chassis"] and rows["modules/chassis"].release == "v0.1"
    suspension = rows["modules/suspension"]
    assert (suspension.release, suspension.latest_release, suspension.quantity) == ("v0.2", "v0.3", 4)
    assert suspension.upgrade_available and not rows["modules/chassis"].upgrade_available
    assert [row.path for row in view.upgrades] == ["modules/suspension"]


def test_the_rolled_up_bom_is_each_module_s_bom_times_its_quantity(teams, alice):
    check = assemblies.assembly_check(teams["car"], commit=build_car(teams))
    bom = {row.key: row for row in rollup.assembly_view(teams["car"], check=check, viewer=alice).bom}
    # chassis: 8 bolts, 2 rails (× 1); suspension v0.2: 4 bolts, 1 spring (× 4).
    assert bom["M8 bolt"].quantity == 8 + 4 * 4
    assert bom["spring"].quantity == 4 and bom["rail"].quantity == 2
    assert bom["M8 bolt"].by_module == {"modules/chassis": 8, "modules/suspension": 16}


def test_nested_assemblies_multiply_quantities_down_the_tree(teams, alice, bob):
    axle = DesignFactory(owner=bob, slug="axle")
    commit_files(axle, {"bom.csv": "part,qty\nbearing,2\n"})
    axle_v1 = release(axle, "v1")
    wheelset = DesignFactory(owner=bob, slug="wheelset")
    commit_files(wheelset, {"README.md": "wheels\n"})
    pin(wheelset, {"axle": (axle, axle_v1)}, toml='[[module]]\npath = "axle"\nquantity = 2\n')
    wheelset_v1 = release(wheelset, "v1")
    head = pin(
        teams["car"], {"wheels": (wheelset, wheelset_v1)}, toml='[[module]]\npath = "wheels"\nquantity = 3\n'
    )
    check = assemblies.assembly_check(teams["car"], commit=head)
    view = rollup.assembly_view(teams["car"], check=check, viewer=alice)
    assert [(row.path, row.depth, row.quantity) for row in view.rows] == [
        ("wheels", 0, 3),
        ("wheels › axle", 1, 6),
    ]
    assert {row.key: row.quantity for row in view.bom} == {"bearing": 12}


def test_mass_and_bounding_box_come_from_the_modules_meshes_where_they_are_placed(
    background_tasks_run, teams, alice
):
    # The meshes were analysed when committed (background tasks run inline here).
    check = assemblies.assembly_check(teams["car"], commit=build_car(teams))
    view = rollup.assembly_view(teams["car"], check=check, viewer=alice)
    assert view.figures_missing == 0, "every module mesh was analysed"
    # A 10 mm cube about the origin; a 20 mm cube turned and moved 100 mm along X.
    assert view.bbox_min == pytest.approx([-5.0, -10.0, -10.0])
    assert view.bbox_max == pytest.approx([110.0, 10.0, 10.0])
    pla = 1.24
    assert view.mass_g == pytest.approx(round((1.0 * pla) + 4 * (8.0 * pla), 1), abs=0.1)
    assert view.mass_estimated  # no material named: PLA assumed, and said so


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda t: {"urls": {"modules/chassis": "../../alice/nothing.git"}},
            "module alice/nothing not found",
        ),
        (lambda t: {"pins": {"modules/chassis": "f" * 40}}, "is not in the history of alice/chassis"),
        (lambda t: {"toml": CAR_TOML.replace('release = "v0.1"', 'release = "v9"')}, "does not have"),
        (
            lambda t: {"toml": CAR_TOML.replace('release = "v0.2"', 'release = "v0.3"')},
            "but the submodule pins",
        ),
        (
            lambda t: {"toml": CAR_TOML.replace("suspension-mount", "wing-mount")},
            "which no module of this assembly provides",
        ),
        (lambda t: {"toml": CAR_TOML + '[[module]]\npath = "modules/missing"\n'}, "is not a submodule"),
        (lambda t: {"toml": CAR_TOML.replace("[100, 0, 0]", "[nan, 0, 0]")}, "must be finite"),
        (lambda t: {"toml": CAR_TOML.replace("[100, 0, 0]", "[1e300, 0, 0]")}, "must be finite"),
        (
            lambda t: {"toml": CAR_TOML.replace('path = "modules/chassis"', 'path = "../../etc"')},
            "plain and relative",
        ),
        (lambda t: {"toml": "x = " + "[" * 5000 + "]" * 5000}, "assembly.toml"),
        (lambda t: {"toml": "# " + "x" * (70 * 1024)}, "larger than 64 KiB"),
        (lambda t: {"toml": "[[module]\npath="}, "not valid TOML"),
        (lambda t: {"toml": CAR_TOML.replace("quantity = 4", "quantity = -1")}, "quantity must be"),
    ],
)
def test_a_broken_assembly_is_explained_field_by_field(teams, change, expected):
    changes = change(teams)
    pins = {
        "modules/chassis": (
            teams["chassis"],
            changes.get("pins", {}).get("modules/chassis", teams["chassis_v1"]),
        ),
        "modules/suspension": (teams["suspension"], teams["suspension_v2"]),
    }
    head = pin(teams["car"], pins, toml=changes.get("toml", CAR_TOML), urls=changes.get("urls"))
    problems = assemblies.assembly_problems_at(teams["car"], commit=head)
    assert any(expected in problem for problem in problems), problems
    ok, report = teams["car"].repo.fsck()
    assert ok, report


def test_a_cycle_of_assemblies_is_a_problem_not_a_hang(teams, alice):
    car, chassis = teams["car"], teams["chassis"]
    car_v1 = pin(car, {"modules/chassis": (chassis, teams["chassis_v1"])})
    services.tag_create(design=car, user=alice, name="v1", target=None, notes="")
    pin(chassis, {"vehicle": (car, car_v1)})
    chassis_head = chassis.repo.branch_head("main")
    services.tag_create(design=chassis, user=alice, name="v0.2", target=None, notes="")
    head = pin(car, {"modules/chassis": (chassis, chassis_head)})
    problems = assemblies.assembly_problems_at(car, commit=head)
    assert any("a cycle of assemblies: alice/car → alice/chassis → alice/car" in p for p in problems), (
        problems
    )


def make_private_shared_with_alice(teams, alice):
    """bob's suspension turns private, with alice (the car's owner) as a reader: her
    assembly may pin it; people who cannot see it are told only that it is there."""
    suspension = teams["suspension"]
    suspension.visibility = "private"
    suspension.save()
    services.collaborator_set(design=suspension, actor=suspension.owner, user=alice, role="read")
    return suspension


def test_a_private_module_is_counted_never_named_for_those_who_cannot_see_it(teams, alice):
    make_private_shared_with_alice(teams, alice)
    check = assemblies.assembly_check(teams["car"], commit=build_car(teams))
    stranger = UserFactory()
    view = rollup.assembly_view(teams["car"], check=check, viewer=stranger)
    assert view.private_modules == 1
    assert [row.path for row in view.rows] == ["modules/chassis"]
    assert "spring" not in {row.key for row in view.bom}
    assert "suspension" not in str([row.design for row in view.rows])
    owner_view = rollup.assembly_view(teams["car"], check=check, viewer=teams["suspension"].owner)
    assert owner_view.private_modules == 0 and len(owner_view.rows) == 2


def test_problems_in_a_private_module_are_hidden_from_those_who_cannot_see_it(teams, alice):
    suspension = make_private_shared_with_alice(teams, alice)
    head = pin(
        teams["car"],
        {"modules/suspension": (suspension, "e" * 40)},
        toml='[[module]]\npath = "modules/suspension"\n',
    )
    check = assemblies.assembly_check(teams["car"], commit=head)
    stranger_view = rollup.assembly_view(teams["car"], check=check, viewer=UserFactory())
    assert stranger_view.problems == [] and stranger_view.hidden_problems == 1
    owner_view = rollup.assembly_view(teams["car"], check=check, viewer=suspension.owner)
    assert owner_view.hidden_problems == 0 and "not in the history" in owner_view.problems[0]


def test_a_licence_that_asks_more_than_the_assembly_gives_is_warned_about(teams, alice):
    car = teams["car"]
    car.licence = "MIT"
    car.save()
    check = assemblies.assembly_check(car, commit=build_car(teams))
    warnings = rollup.assembly_view(car, check=check, viewer=alice).licence_warnings
    assert len(warnings) == 2 and all("strongly reciprocal" in warning for warning in warnings)


def test_the_upgrade_proposal_moves_the_pin_and_the_release_line_and_merges(teams, alice):
    car = teams["car"]
    build_car(teams)
    proposal = upgrades.assembly_upgrade_propose(
        design=car, user=alice, path="modules/suspension", release="v0.3"
    )
    assert proposal.title.startswith("Upgrade modules/suspension (bob/suspension) from v0.2 to v0.3")
    proposals.proposal_merge(proposal=proposal, user=alice)
    head = car.repo.branch_head("main")
    assert car.repo.entry(head, "modules/suspension").sha == teams["suspension_v3"]
    toml = car.repo.read_blob(car.repo.entry(head, "assembly.toml").sha).decode()
    assert 'release = "v0.3"' in toml and 'release = "v0.1"' in toml and "quantity = 4" in toml
    assert assemblies.assembly_problems_at(car, commit=head) == []


def test_only_people_who_can_write_to_the_assembly_may_propose_an_upgrade(teams, bob):
    build_car(teams)
    with pytest.raises(PermissionDenied):
        upgrades.assembly_upgrade_propose(
            design=teams["car"], user=bob, path="modules/suspension", release="v0.3"
        )


def test_a_proposal_that_would_break_the_assembly_cannot_be_merged_into_its_default_branch(teams, alice):
    car = teams["car"]
    build_car(teams)
    services.branch_create(design=car, user=alice, name="broken")
    pin(
        car,
        {
            "modules/chassis": (teams["chassis"], teams["chassis_v1"]),
            "modules/suspension": (teams["suspension"], teams["suspension_v2"]),
        },
        toml=CAR_TOML.replace('release = "v0.2"', 'release = "v0.3"'),
        branch="broken",
    )
    proposal = proposals.proposal_create(target=car, user=alice, title="Break it", source_branch="broken")
    before = car.repo.branch_head("main")
    with pytest.raises(Conflict, match="assembly with problems"):
        proposals.proposal_merge(proposal=proposal, user=alice)
    assert car.repo.branch_head("main") == before
    assert ChangeProposal.objects.get(pk=proposal.pk).status == "open"


def test_a_module_lists_the_assemblies_that_use_it_and_at_which_version(teams, alice, bob):
    build_car(teams)
    assert assemblies.assembly_refresh(design_id=teams["car"].pk)
    uses = rollup.used_by(teams["suspension"], viewer=bob)
    assert [(use.assembly, use.release) for use in uses] == [(teams["car"], "v0.2")]
    assert ModuleUse.objects.filter(module=teams["chassis"]).count() == 1
    car = teams["car"]
    car.visibility = "private"
    car.save()
    assert rollup.used_by(teams["suspension"], viewer=bob) == []


def test_the_assembly_page_shows_modules_bom_and_the_upgrade_to_writers_only(teams, client, alice, bob):
    assemblies.assembly_check(teams["car"], commit=build_car(teams))
    url = reverse("design-assembly", args=["alice", "car"])
    client.force_login(bob)
    page = client.get(url).content.decode()
    assert "bob/suspension" in page and "M8 bolt" in page and "Propose the upgrade" not in page
    client.force_login(alice)
    page = client.get(url).content.decode()
    assert "bob/suspension v0.3</strong> is out (you pin v0.2)" in page and "Propose the upgrade" in page
    response = client.post(
        reverse("design-assembly-upgrade", args=["alice", "car"]),
        {"path": "modules/suspension", "release": "v0.3"},
    )
    assert response.status_code == 302 and "/proposals/" in response["Location"]
    csv_text = client.get(reverse("design-assembly-bom", args=["alice", "car"])).content.decode()
    assert csv_text.splitlines()[0] == "part,description,quantity,modules/chassis,modules/suspension"
    assert "M8 bolt,hex,24,8,16" in csv_text
    scene = client.get(reverse("design-assembly-scene", args=["alice", "car"])).json()
    assert {part["path"] for part in scene["parts"]} == {"mount.stl", "arm.stl"}


def test_the_bom_can_be_compared_between_two_versions_of_the_assembly(teams, client, alice):
    car = teams["car"]
    build_car(teams)
    services.tag_create(design=car, user=alice, name="v1", target=None, notes="")
    proposal = upgrades.assembly_upgrade_propose(
        design=car, user=alice, path="modules/suspension", release="v0.3"
    )
    proposals.proposal_merge(proposal=proposal, user=alice)
    for ref in ("v1", "main"):
        assemblies.assembly_check(car, commit=car.repo.resolve(ref))
    client.force_login(alice)
    page = client.get(reverse("design-assembly", args=["alice", "car"]), {"base": "v1"}).content.decode()
    # suspension v0.3 has 6 bolts instead of 4, × 4 suspensions: 24 → 32.
    assert "data-assembly-bom-diff" in page
    assert '<td>M8 bolt</td><td>changed</td><td class="num">24</td><td class="num">32</td>' in page


def test_a_design_that_pins_nothing_is_not_an_assembly(teams, client):
    check = assemblies.assembly_check(teams["chassis"], commit=teams["chassis_v1"])
    assert not check.is_assembly and check.modules == []
    assemblies.assembly_check(teams["chassis"], commit=teams["chassis"].repo.branch_head("main"))
    page = client.get(reverse("design-assembly", args=["alice", "chassis"]))
    assert page.status_code == 200 and "is not an assembly" in page.content.decode()


def test_a_check_is_kept_per_commit(teams):
    head = build_car(teams)
    assemblies.assembly_check(teams["car"], commit=head)
    assemblies.assembly_check(teams["car"], commit=head)
    assert AssemblyCheck.objects.filter(design=teams["car"], commit_sha=head).count() == 1


class TestApi:
    def test_it_answers_what_the_page_shows(self, teams, api):
        assemblies.assembly_check(teams["car"], commit=build_car(teams))
        body = api.get("/api/designs/alice/car/assembly/").json()
        assert body["is_assembly"] and body["problems"] == [] and body["private_modules"] == 0
        assert [(m["path"], m["design"], m["release"], m["quantity"]) for m in body["modules"]] == [
            ("modules/chassis", "alice/chassis", "v0.1", 1),
            ("modules/suspension", "bob/suspension", "v0.2", 4),
        ]
        assert {row["key"]: row["quantity"] for row in body["bom"]} == {"M8 bolt": 24, "rail": 2, "spring": 4}

    def test_a_commit_not_read_yet_is_a_202_until_it_is(self, teams, api):
        build_car(teams)
        response = api.get("/api/designs/alice/car/assembly/")
        # Tests run queued work only when it commits: the read is queued, not done.
        assert response.status_code == 202 and response.json()["status"] == "pending"

    def test_a_private_module_is_counted_not_named(self, teams, api, alice):
        make_private_shared_with_alice(teams, alice)
        assemblies.assembly_check(teams["car"], commit=build_car(teams))
        body = api.get("/api/designs/alice/car/assembly/").json()
        assert body["private_modules"] == 1 and [m["path"] for m in body["modules"]] == ["modules/chassis"]
        assert "bob/suspension" not in str(body) and "modules/suspension" not in str(body)

    def test_a_writer_proposes_an_upgrade(self, teams, alice_api, bob_api):
        assemblies.assembly_check(teams["car"], commit=build_car(teams))
        body = {"path": "modules/suspension", "release": "v0.3"}
        assert (
            bob_api.post("/api/designs/alice/car/assembly/upgrades/", body, format="json").status_code == 403
        )
        response = alice_api.post("/api/designs/alice/car/assembly/upgrades/", body, format="json")
        assert response.status_code == 201 and response.json()["title"].startswith(
            "Upgrade modules/suspension"
        )
        again = alice_api.post(
            "/api/designs/alice/car/assembly/upgrades/", {**body, "release": "v0.2"}, format="json"
        )
        assert again.status_code == 409

    def test_a_module_lists_where_it_is_used(self, teams, api):
        build_car(teams)
        assemblies.assembly_refresh(design_id=teams["car"].pk)
        assert api.get("/api/designs/bob/suspension/used-by/").json() == [
            {
                "assembly": "alice/car",
                "path": "modules/suspension",
                "commit": teams["suspension_v2"],
                "release": "v0.2",
            }
        ]

    def test_reading_an_assembly_takes_the_same_queries_for_one_module_as_for_many(self, teams, api, bob):
        from tests.api.querycounts import get_counting_queries

        counts = []
        for many in (1, 6):
            modules = {}
            for number in range(many):
                module = DesignFactory(owner=bob)
                commit_files(module, {"bom.csv": "part,qty\nbolt,1\n", "part.stl": stl(5)})
                modules[f"m{number}"] = (module, module.repo.branch_head("main"))
            assembly = DesignFactory(owner=bob)
            commit_files(assembly, {"README.md": "x\n"})
            assemblies.assembly_check(assembly, commit=pin(assembly, modules))
            queries, response = get_counting_queries(api, f"/api/designs/bob/{assembly.slug}/assembly/")
            assert len(response.json()["modules"]) == many
            counts.append(queries)
        assert counts[0] == counts[1], counts


def test_an_upgrade_that_changes_an_interface_others_attach_to_is_flagged(alice, bob, client):
    plate = DesignFactory(owner=bob, slug="plate")
    manifest = '[[provides]]\nname = "mount"\nfiles = ["mount.stl"]\n'
    commit_files(plate, {"module.toml": manifest, "mount.stl": stl(10), "notes.md": "a\n"})
    plate_v1 = release(plate, "v1")
    commit_files(plate, {"notes.md": "b\n"}, message="Only notes")
    release(plate, "v2")
    bracket = DesignFactory(owner=bob, slug="bracket")
    commit_files(bracket, {"README.md": "bracket\n"})
    bracket_v1 = release(bracket, "v1")
    rig = DesignFactory(owner=alice, slug="rig")
    commit_files(rig, {"README.md": "rig\n"})
    toml = '[[module]]\npath = "plate"\n[[module]]\npath = "bracket"\nattaches = ["mount"]\n'
    head = pin(rig, {"plate": (plate, plate_v1), "bracket": (bracket, bracket_v1)}, toml=toml)
    view = rollup.assembly_view(rig, check=assemblies.assembly_check(rig, commit=head), viewer=alice)
    assert rollup.interface_changes(view) == {}, "v2 changed only the notes"
    commit_files(plate, {"mount.stl": stl(12)}, message="Wider mount")
    release(plate, "v3")
    AssemblyCheck.objects.filter(design=rig).delete()
    check = assemblies.assembly_check(rig, commit=head)
    view = rollup.assembly_view(rig, check=check, viewer=alice)
    assert rollup.interface_changes(view) == {"plate": [rollup.InterfaceChange("mount", ["mount.stl"])]}
    client.force_login(alice)
    page = client.get(reverse("design-assembly", args=["alice", "rig"])).content.decode()
    assert "Interface change:</strong> mount — mount.stl changed" in page


def test_a_module_s_page_says_which_assemblies_use_it(teams, client):
    build_car(teams)
    assemblies.assembly_refresh(design_id=teams["car"].pk)
    page = client.get(reverse("design-detail", args=["bob", "suspension"])).content.decode()
    assert 'data-used-by><a href="/alice/car/assembly/">alice/car</a> at v0.2' in page


def test_listing_where_a_module_is_used_takes_the_same_queries_for_one_assembly_as_for_many(
    teams, api, alice
):
    from tests.api.querycounts import assert_queries_do_not_grow_with_rows, plain_list

    suspension, v2 = teams["suspension"], teams["suspension_v2"]

    def add(count: int) -> None:
        for _ in range(count):
            assembly = DesignFactory(owner=alice)
            commit_files(assembly, {"README.md": "x\n"})
            pin(assembly, {"wheels": (suspension, v2)})
            assemblies.assembly_refresh(design_id=assembly.pk)

    assert_queries_do_not_grow_with_rows(
        api, "/api/designs/bob/suspension/used-by/", add=add, listed=plain_list
    )


def test_an_upgrade_proposal_shows_the_rolled_up_bom_change(teams, client, alice):
    car = teams["car"]
    build_car(teams)
    proposal = upgrades.assembly_upgrade_propose(
        design=car, user=alice, path="modules/suspension", release="v0.3"
    )
    url = reverse("design-proposal", args=["alice", "car", proposal.number])
    client.force_login(alice)
    assert "data-proposal-assembly-pending" in client.get(url).content.decode()
    proposal.refresh_from_db()
    for commit in (proposal.target_sha, proposal.head_sha):
        assemblies.assembly_check(car, commit=commit)
    page = client.get(url).content.decode()
    assert "data-proposal-assembly-bom" in page
    assert '<td>M8 bolt</td><td>changed</td><td class="num">24</td><td class="num">32</td>' in page
    assert "modules/suspension" in page  # the submodule bump is in the diff


def test_pinning_a_private_design_one_cannot_see_reads_as_not_found(teams, alice, bob):
    secret = DesignFactory(owner=bob, slug="secret", visibility="private")
    commit_files(secret, {"bom.csv": "part,qty\nx,1\n"})
    head = pin(
        teams["car"],
        {
            "probe": (secret, secret.repo.branch_head("main")),
            "nothing": (secret, secret.repo.branch_head("main")),
        },
        urls={"nothing": "../../bob/nothing.git"},
    )
    problems = assemblies.assembly_problems_at(teams["car"], commit=head)
    # The same words for a private design as for one that does not exist.
    assert "probe: module bob/secret not found on this hub." in problems
    assert "nothing: module bob/nothing not found on this hub." in problems
    view = rollup.assembly_view(teams["car"], check=AssemblyCheck.objects.get(commit_sha=head), viewer=alice)
    assert view.private_modules == 0 and "x" not in {row.key for row in view.bom}


def test_an_upgrade_of_a_module_one_cannot_see_is_not_found(teams, alice):
    build_car(teams)
    assemblies.assembly_check(teams["car"], commit=teams["car"].repo.branch_head("main"))
    suspension = teams["suspension"]
    suspension.visibility = "private"
    suspension.save()
    from hub.exceptions import NotFound

    with pytest.raises(NotFound, match="is not a module of this hub"):
        upgrades.assembly_upgrade_propose(
            design=teams["car"], user=alice, path="modules/suspension", release="v0.3"
        )


def test_a_relative_url_without_git_names_the_design_too(teams):
    head = pin(
        teams["car"],
        {"modules/chassis": (teams["chassis"], teams["chassis_v1"])},
        urls={"modules/chassis": "../../alice/chassis"},
    )
    check = assemblies.assembly_check(teams["car"], commit=head)
    assert check.problems == [] and check.modules[0]["design_id"] == teams["chassis"].pk


def test_a_sub_assembly_read_at_the_depth_limit_is_not_kept_with_that_limit(alice):
    from designs import assemblies as files

    chain = []
    for level in range(files.MAX_DEPTH + 2):
        design = DesignFactory(owner=alice, slug=f"level-{level}")
        commit_files(design, {"README.md": f"{level}\n"})
        if chain:
            pin(design, {"inner": (chain[-1], chain[-1].repo.branch_head("main"))})
        chain.append(design)
    top = chain[-1]
    assert not AssemblyCheck.objects.exists()
    problems = assemblies.assembly_problems_at(top, commit=top.repo.branch_head("main"))
    assert any("deeper than" in p for p in problems)
    # A level read on the way down was cut short there; read alone it is fine.
    middle = chain[2]
    assert (
        not AssemblyCheck.objects.filter(design=middle).exists()
        or assemblies.assembly_problems_at(middle, commit=middle.repo.branch_head("main")) == []
    )
    assert assemblies.assembly_problems_at(middle, commit=middle.repo.branch_head("main")) == []


def test_a_release_made_on_the_hub_offers_the_upgrade(background_tasks_run, teams, alice, bob):
    build_car(teams)
    assemblies.assembly_refresh(design_id=teams["car"].pk)
    commit_files(teams["chassis"], {"bom.csv": "part,qty\nM8 bolt,10\n"}, message="More bolts")
    release(teams["chassis"], "v0.2")
    head = teams["car"].repo.branch_head("main")
    view = rollup.assembly_view(
        teams["car"], check=AssemblyCheck.objects.get(design=teams["car"], commit_sha=head), viewer=alice
    )
    assert {row.path for row in view.upgrades} == {"modules/chassis", "modules/suspension"}


def test_a_material_is_matched_whatever_its_case_and_an_unknown_one_is_named(
    background_tasks_run, teams, alice
):
    toml = CAR_TOML.replace(
        'attaches = ["suspension-mount"]',
        'attaches = ["suspension-mount"]\nmaterials = { "arm.stl" = "petg" }',
    )
    toml = toml.replace('release = "v0.1"', 'release = "v0.1"\nmaterials = { "mount.stl" = "unobtainium" }')
    head = pin(
        teams["car"],
        {
            "modules/chassis": (teams["chassis"], teams["chassis_v1"]),
            "modules/suspension": (teams["suspension"], teams["suspension_v2"]),
        },
        toml=toml,
    )
    view = rollup.assembly_view(
        teams["car"], check=assemblies.assembly_check(teams["car"], commit=head), viewer=alice
    )
    assert view.mass_g == pytest.approx(round(4 * 8.0 * 1.27, 1), abs=0.1)
    assert view.unknown_materials == ["unobtainium"] and view.mass_estimated
