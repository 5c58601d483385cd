"""Demo data for a fresh hub: three people, each owning one module of a modular car, and
the car itself as an assembly of those modules (docs/assemblies.md), with history,
releases, an upgrade proposal merged and another on offer, a fork, and two makes.

`manage.py demo` calls `demo_create()`. Everything is written through the services, so the
demo takes the same paths as real use and its repositories are ordinary bare git
repositories. The car's pins arrive as a push would bring them (`_pushed`): the commit
is made with git plumbing, as `git submodule add` + `git commit` make it in a clone, and
the hub learns of it through `design_pushed`. The meshes are generated here (real binary
STL files, a few hundred triangles each) and the README images are views rendered from
those meshes.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from django.core.files.base import ContentFile
from django.db import transaction

from designs import services
from designs.git import FileEdit
from designs.models import Collaborator, Design, Licence
from hub.models import User

# numpy, trimesh and the service layer take a third of a second to import, and the usual
# run of `manage.py demo` finds the data already there: the functions that build the data
# import them when they run.


@dataclass(frozen=True)
class DemoAccount:
    username: str
    password: str
    first_name: str
    last_name: str
    role: str
    bio: str

    @property
    def email(self) -> str:
        return f"{self.username}@example.org"


# The README lists these accounts; keep the names and passwords in step with it.
ADA = DemoAccount(
    username="ada",
    password="ada-fabhub-demo",
    first_name="Ada",
    last_name="Moreau",
    role="owns the car ada/wikispeed-modular-car (an assembly) and its chassis, ada/chassis",
    bio="Coordinates the modular car; her team in Lyon builds the chassis.",
)
LINUS = DemoAccount(
    username="linus",
    password="linus-fabhub-demo",
    first_name="Linus",
    last_name="Berg",
    role="owns linus/suspension and linus/spool-holder; forks the car",
    bio="Runs the suspension team in Nairobi and prints far too many spool holders.",
)
GRACE = DemoAccount(
    username="grace",
    password="grace-fabhub-demo",
    first_name="Grace",
    last_name="Okafor",
    role="owns grace/body; collaborator with write access to the car",
    bio="Runs the body team in Montréal and keeps the bill of materials honest.",
)
ACCOUNTS = (ADA, LINUS, GRACE)

CAR_SLUG = "wikispeed-modular-car"
SPOOL_SLUG = "spool-holder"


@dataclass(frozen=True)
class Placement:
    """Where the car's assembly.toml puts a module: which design, how many, where (mm)
    and turned how (degrees about X, then Y, then Z), what it attaches to."""

    owner: str
    slug: str
    quantity: int
    position: tuple[float, float, float]
    rotation: tuple[float, float, float]
    attaches: tuple[str, ...]
    files: tuple[str, ...] = ()
    materials: tuple[tuple[str, str], ...] = ()
    comment: str = ""


# The chassis is the car's frame of reference: its centre at the origin, x forward, y to
# the left, z up. One suspension corner is drawn (front right); the car has four.
CAR_MODULES = {
    "modules/chassis": Placement(
        owner=ADA.username,
        slug="chassis",
        quantity=1,
        position=(0, 0, 0),
        rotation=(0, 0, 0),
        attaches=(),
        comment="The frame of reference: centre at the origin, x forward, y left, z up (mm).",
    ),
    "modules/suspension": Placement(
        owner=LINUS.username,
        slug="suspension",
        quantity=4,
        position=(900, -365, -25),
        rotation=(0, 0, 180),
        attaches=("suspension-mount",),
        materials=(("wishbone-arm.stl", "PETG"),),
        comment="Four corners; the one drawn is the front right, turned to point outwards.",
    ),
    "modules/body": Placement(
        owner=GRACE.username,
        slug="body",
        quantity=1,
        position=(0, 0, 30),
        rotation=(0, 0, 0),
        attaches=("body-mount",),
        files=("body-shell.stl",),
        comment="On the tops of the side rails; the assembled view shows the shell, not the brackets.",
    ),
}


def demo_exists() -> bool:
    return Design.objects.filter(owner__username=ADA.username, slug=CAR_SLUG).exists()


def demo_create() -> bool:
    """Create the demo data unless it is already there; return whether anything was made.

    One transaction covers the rows; the repositories are on disk, outside it, so a run
    that fails half-way removes the ones it made and the next run starts clean.
    """
    if demo_exists():
        return False
    made: list[Path] = []
    try:
        with transaction.atomic():
            _build(made)
    except BaseException:
        for path in made:
            shutil.rmtree(path, ignore_errors=True)
        raise
    return True


def _build(made: list[Path]) -> None:
    ada, linus, grace = (_user(account) for account in ACCOUNTS)
    chassis = _chassis(ada, made)
    suspension = _suspension(linus, made)
    body = _body(grace, made)
    car = _car(ada, grace, made, {"chassis": chassis, "suspension": suspension, "body": body})

    # linus tries his newer suspension on the car in a fork before offering it to ada.
    fork = services.design_fork(design=car, user=linus)
    made.append(fork.repo_path)
    _pushed(
        fork,
        linus,
        "Try the suspension v0.3 (40 mm longer wishbones) on the car",
        _pins({"modules/chassis": "v0.1", "modules/suspension": "v0.3", "modules/body": "v0.2"}),
    )

    spool = services.design_create(
        owner=linus,
        slug=SPOOL_SLUG,
        title="Filament spool holder",
        licence=Licence.CC_BY_SA,
        summary="A bench-mounted holder for one 1 kg filament spool; prints without supports.",
        tags=["3d-printing", "workshop"],
    )
    made.append(spool.repo_path)
    holder = spool_holder()
    _commit(
        spool,
        linus,
        "Add the spool holder",
        {
            "README.md": SPOOL_README,
            "spool-holder.stl": _stl(holder),
            "docs/spool-holder.png": preview_png(holder),
        },
    )
    # Makes: somebody built each of these, with a photo (the rendered preview stands in).
    services.make_create(
        design=spool,
        maker=grace,
        commit_sha=spool.repo.branch_head(spool.default_branch) or "",
        path="spool-holder.stl",
        photo=ContentFile(preview_png(holder), name="spool-holder.png"),
        notes="Printed in PETG, no supports; holds a 1 kg spool without sagging.",
        where="Fablab Amersfoort",
        outcome="works",
    )
    services.make_create(
        design=suspension,
        maker=ada,
        commit_sha=suspension.repo.resolve("v0.2") or "",
        path="wishbone-arm.stl",
        photo=ContentFile(preview_png(wishbone_arm(reach=320)), name="wishbone.png"),
        notes="The v0.2 arm fits the chassis mounts; the track felt narrow, and linus lengthened it in v0.3.",
        where="Lyon",
        outcome="partly",
    )

    # The hub reads each assembly after every ref move, in the background; the demo's
    # pages should not wait for that, so the car and the fork are read now.
    for design in (car, fork):
        services.assemblies.assembly_refresh(design_id=design.pk)


def _chassis(ada: User, made: list[Path]) -> Design:
    design = services.design_create(
        owner=ada,
        slug="chassis",
        title="Modular car: chassis",
        licence=Licence.CERN_OHL_S,
        summary="The car's 2.4 m ladder frame: four suspension mounts and the body mounts on its rails.",
        tags=["vehicle", "modular", "chassis"],
    )
    made.append(design.repo_path)
    frame = chassis_frame()
    _commit(
        design,
        ada,
        "Ladder frame with four suspension mounts and body mounts on the rails",
        {
            "README.md": CHASSIS_README,
            "bom.csv": CHASSIS_BOM,
            "module.toml": CHASSIS_MODULE,
            "chassis-frame.stl": _stl(frame),
            "docs/chassis.png": preview_png(frame),
        },
    )
    services.tag_create(design=design, user=ada, name="v0.1", target=None, notes=CHASSIS_RELEASE)
    return design


def _suspension(linus: User, made: list[Path]) -> Design:
    design = services.design_create(
        owner=linus,
        slug="suspension",
        title="Modular car: suspension",
        licence=Licence.CERN_OHL_S,
        summary="One corner of the car's suspension: a lower wishbone arm, bushings and ball joint.",
        tags=["vehicle", "modular", "suspension"],
    )
    made.append(design.repo_path)
    arm = wishbone_arm(reach=320)
    _commit(
        design,
        linus,
        "Add the lower wishbone arm, a printed PETG prototype",
        {
            "README.md": suspension_readme(reach=320),
            "bom.csv": SUSPENSION_BOM_FIRST,
            "module.toml": SUSPENSION_MODULE,
            "wishbone-arm.stl": _stl(arm),
            "docs/wishbone-arm.png": preview_png(arm),
        },
    )
    services.tag_create(design=design, user=linus, name="v0.1", target=None, notes="First wishbone arm.")
    _commit(
        design,
        linus,
        "Lock the pivot bolts with nyloc nuts",
        {"bom.csv": SUSPENSION_BOM_NYLOC},
    )
    services.tag_create(design=design, user=linus, name="v0.2", target=None, notes=SUSPENSION_V2)
    longer = wishbone_arm(reach=360)
    _commit(
        design,
        linus,
        "Lengthen the wishbone arm by 40 mm for a wider track",
        {
            "README.md": suspension_readme(reach=360),
            "bom.csv": SUSPENSION_BOM_LONGER,
            "wishbone-arm.stl": _stl(longer),
            "docs/wishbone-arm.png": preview_png(longer),
        },
    )
    services.tag_create(design=design, user=linus, name="v0.3", target=None, notes=SUSPENSION_V3)
    return design


def _body(grace: User, made: list[Path]) -> Design:
    design = services.design_create(
        owner=grace,
        slug="body",
        title="Modular car: body",
        licence=Licence.CERN_OHL_W,
        summary="The car's body: the outer shell and the brackets that hold its panels to the chassis rails.",
        tags=["vehicle", "modular", "body"],
    )
    made.append(design.repo_path)
    shell = body_shell()
    bracket = panel_bracket(thickness=3)
    _commit(
        design,
        grace,
        "Add the body shell and the 3 mm panel bracket",
        {
            "README.md": BODY_README,
            "bom.csv": BODY_BOM_FIRST,
            "module.toml": BODY_MODULE,
            "body-shell.stl": _stl(shell),
            "panel-bracket.stl": _stl(bracket),
            "docs/body-shell.png": preview_png(shell),
            "docs/panel-bracket.png": preview_png(bracket),
        },
    )
    services.tag_create(design=design, user=grace, name="v0.1", target=None, notes=BODY_V1)
    thicker = panel_bracket(thickness=4)
    _commit(
        design,
        grace,
        "Thicken panel bracket to 4 mm after load test",
        {"panel-bracket.stl": _stl(thicker), "docs/panel-bracket.png": preview_png(thicker)},
    )
    _commit(
        design,
        grace,
        "Update the bill of materials after the first test build",
        {"bom.csv": BODY_BOM_AFTER_BUILD},
    )
    services.tag_create(design=design, user=grace, name="v0.2", target=None, notes=BODY_V2)
    return design


def _car(ada: User, grace: User, made: list[Path], modules: dict[str, Design]) -> Design:
    car = services.design_create(
        owner=ada,
        slug=CAR_SLUG,
        title="Wikispeed-style modular car",
        licence=Licence.CERN_OHL_S,
        summary=(
            "A road car split into modules with fixed interfaces (chassis, suspension, "
            "body), each owned and released by its own team, so teams in different places "
            "can each build, test and improve one module and swap it in without "
            "redesigning the rest. This design is the assembly: it pins each module's release."
        ),
        tags=["vehicle", "modular", "wikispeed"],
    )
    made.append(car.repo_path)
    services.collaborator_set(design=car, actor=ada, user=grace, role=Collaborator.Role.WRITE)

    _commit(
        car,
        ada,
        "Start the car: its modules, their teams, and a gauge for the suspension mounts",
        {"README.md": car_readme(), "jigs/mount-gauge.stl": _stl(mount_gauge())},
    )
    _pushed(
        car,
        ada,
        "Pin the chassis v0.1 and four suspension corners v0.2",
        _pins({"modules/chassis": "v0.1", "modules/suspension": "v0.2"}),
    )
    _pushed(
        car,
        grace,
        "Pin the body v0.1 on the body mounts",
        _pins({"modules/chassis": "v0.1", "modules/suspension": "v0.2", "modules/body": "v0.1"}),
    )
    release = _commit(
        car,
        ada,
        "Show the assembled car in the README",
        {"README.md": car_readme(picture=True), "docs/car.png": preview_png(assembled_car(), size=320)},
    )
    services.tag_create(design=car, user=ada, name="v0.1", target=release, notes=RELEASE_NOTES)

    # grace released a stiffer body after the first test build: she offers it to the car
    # as the hub offers any upgrade, and ada merges it.
    proposal = services.upgrades.assembly_upgrade_propose(
        design=car, user=grace, path="modules/body", release="v0.2"
    )
    services.proposals.proposal_merge(proposal=proposal, user=ada)
    services.branch_delete(design=car, user=ada, name=proposal.source_branch)
    _commit(
        car,
        ada,
        "Document the interfaces between modules",
        {"README.md": car_readme(picture=True, interfaces=True)},
    )
    return car


def _user(account: DemoAccount) -> User:
    # Someone may already have signed up under one of these names: their account is
    # theirs, so it is used as it is and its password is left alone.
    user = User.objects.filter(username=account.username).first()
    if user is not None:
        return user
    return User.objects.create_user(
        username=account.username,
        email=account.email,
        password=account.password,
        first_name=account.first_name,
        last_name=account.last_name,
        bio=account.bio,
    )


def _commit(design: Design, author: User, message: str, files: dict[str, bytes | str]) -> str:
    uploads = []
    for path, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        name = path.rsplit("/", 1)[-1]
        uploads.append(services.Upload(path=path, content=ContentFile(data, name=name)))
    return services.design_commit(design=design, author=author, message=message, uploads=uploads)


def _pins(releases: dict[str, str]) -> dict[str, tuple[Placement, str]]:
    return {path: (CAR_MODULES[path], release) for path, release in releases.items()}


def _pushed(design: Design, author: User, message: str, pins: dict[str, tuple[Placement, str]]) -> str:
    """Commit `pins` ({path: (placement, release)}) on `design`'s default branch as
    `git submodule add` and a push would: gitlinks at the releases' commits, .gitmodules
    with relative URLs and the matching assembly.toml; then the hub's follow-up to a push."""
    repo = design.repo
    refs_before = repo.refs()
    head = repo.branch_head(design.default_branch)
    edits, gitmodules = [], []
    for path, (placement, release) in pins.items():
        module = Design.objects.get(owner__username=placement.owner, slug=placement.slug)
        commit = module.repo.resolve(release)
        assert commit is not None, f"{module.full_name} has no {release}"
        edits.append(FileEdit(path, commit, "160000"))
        gitmodules.append(
            f'[submodule "{path}"]\n\tpath = {path}\n\turl = ../../{placement.owner}/{placement.slug}.git\n'
        )
    edits.append(FileEdit(".gitmodules", repo.write_blob("".join(gitmodules).encode())))
    edits.append(FileEdit("assembly.toml", repo.write_blob(car_assembly_toml(pins).encode())))
    identity = services.person_for(author)
    tree = repo.build_tree(head, edits)
    sha = repo.commit_tree(tree, [head] if head else [], message, author=identity, committer=identity)
    repo.update_ref(f"refs/heads/{design.default_branch}", sha, head)
    services.design_pushed(design=design, refs_before=refs_before)
    return sha


def car_assembly_toml(pins: dict[str, tuple[Placement, str]]) -> str:
    """The car's assembly.toml for these pins (docs/assemblies.md has every key)."""
    lines = [
        'name = "Wikispeed-style modular car"',
        'licence = "CERN-OHL-S-2.0"',
    ]
    for path, (placement, release) in pins.items():
        lines += ["", f"# {placement.comment}", "[[module]]", f'path = "{path}"', f'release = "{release}"']
        if placement.quantity != 1:
            lines.append(f"quantity = {placement.quantity}")
        lines.append(f"position = [{', '.join(f'{v:g}' for v in placement.position)}]")
        if any(placement.rotation):
            lines.append(f"rotation = [{', '.join(f'{v:g}' for v in placement.rotation)}]")
        if placement.files:
            lines.append(f"files = {_toml_list(placement.files)}")
        if placement.attaches:
            lines.append(f"attaches = {_toml_list(placement.attaches)}")
        if placement.materials:
            table = ", ".join(f'"{name}" = "{material}"' for name, material in placement.materials)
            lines.append(f"materials = {{ {table} }}")
    return "\n".join(lines) + "\n"


def _toml_list(names: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{name}"' for name in names) + "]"


# -- meshes (millimetres, z up) -----------------------------------------------------------
#
# Parts are unions of closed solids placed so that they overlap without sharing a vertex:
# each solid stays watertight after STL merges coincident vertices, and no boolean engine
# (which trimesh needs from outside) is required.


def _box(lower: Sequence[float], upper: Sequence[float]) -> trimesh.Trimesh:

    return trimesh.creation.box(bounds=[lower, upper])


def chassis_frame() -> trimesh.Trimesh:
    """A 2.4 m ladder frame: two side rails, five cross members, four suspension mounts."""

    parts = [_box((-1200, y - 30, -30), (1200, y + 30, 30)) for y in (-300, 300)]
    parts += [_box((x - 25, -290, -25), (x + 25, 290, 25)) for x in (-1100, -550, 0, 550, 1100)]
    parts += [
        _box((x - 60, side * 345 - 20, -70), (x + 60, side * 345 + 20, 20))
        for x in (-900, 900)
        for side in (-1, 1)
    ]
    return _joined(parts)


def wishbone_arm(*, reach: float) -> trimesh.Trimesh:
    """A lower wishbone: two pivot bushings 340 mm apart, arms meeting at a ball-joint boss."""

    along_x = trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0))
    pivots = [(-170.0, 0.0), (170.0, 0.0)]
    apex = np.array((0.0, reach))
    parts = []
    for x, y in pivots:
        placed = along_x.copy()
        placed[:3, 3] = (x, y, 0)
        parts.append(trimesh.creation.annulus(r_min=8, r_max=16, height=40, sections=32, transform=placed))
        # The arm starts inside the bushing wall and ends inside the boss.
        start = np.array((x, y))
        direction = (apex - start) / np.linalg.norm(apex - start)
        begin = start + direction * 13
        end = apex - direction * 10
        length = float(np.linalg.norm(end - begin))
        arm = trimesh.creation.box(extents=(length, 22, 16))
        angle = float(np.arctan2(direction[1], direction[0]))
        transform = trimesh.transformations.rotation_matrix(angle, (0, 0, 1))
        transform[:3, 3] = (*((begin + end) / 2), 0)
        arm.apply_transform(transform)
        parts.append(arm)
    boss = trimesh.creation.cylinder(radius=22, height=30, sections=32)
    boss.apply_translation((*apex, 0))
    parts.append(boss)
    return _joined(parts)


def panel_bracket(*, thickness: float) -> trimesh.Trimesh:
    """An L bracket, 50 × 50 mm legs, 40 mm wide: one solid L profile extruded along y."""
    t = thickness
    profile = [(0, 0), (50, 0), (50, t), (t, t), (t, 50), (0, 50)]
    return _extrude(profile, depth=40, fan_from=3)


def body_shell() -> trimesh.Trimesh:
    """The body's outer shell, 3–5 mm panels: sides, nose, tail, bonnet, boot lid, four
    pillars, a windscreen and a roof; z = 0 is the top of the chassis rails."""

    parts = [_box((-1300, 777, 0), (1300, 780, 450)), _box((-1300, -780, 0), (1300, -777, 450))]
    parts += [_box((x0, -779, 2), (x0 + 6, 779, 448)) for x0 in (-1302, 1296)]
    parts += [_box((400, -779, 446), (1301, 779, 451)), _box((-1301, -779, 446), (-800, 779, 451))]
    parts += [_box((x - 20, y - 20, 445), (x + 20, y + 20, 882)) for x in (-680, 130) for y in (-670, 670)]
    parts.append(_box((-700, -690, 880), (150, 690, 884)))
    # The windscreen leans back from the bonnet's rear edge to the roof's front edge.
    run, rise = 400.0 - 150.0, 882.0 - 450.0
    screen = trimesh.creation.box(extents=(float(np.hypot(run, rise)), 1380, 4))
    transform = trimesh.transformations.rotation_matrix(np.arctan2(rise, run), (0, 1, 0))
    transform[:3, 3] = (275, 0, 666)
    screen.apply_transform(transform)
    parts.append(screen)
    return _joined(parts)


def mount_gauge() -> trimesh.Trimesh:
    """A printed check for a suspension-mount plate: a 120 × 40 mm plate whose two pegs
    sit where the plate's M12 holes must be, 80 mm apart."""

    plate = _box((-60, -20, 0), (60, 20, 4))
    pegs = []
    for x in (-40, 40):
        peg = trimesh.creation.cylinder(radius=5.8, height=12, sections=32)
        peg.apply_translation((x, 0, 7))
        pegs.append(peg)
    return _joined([plate, *pegs])


def assembled_car() -> trimesh.Trimesh:
    """The frame, the shell and one wishbone placed as the car's assembly.toml places them
    (for the README's picture; the hub draws the same from the modules themselves)."""

    parts = []
    for mesh, placement in (
        (chassis_frame(), CAR_MODULES["modules/chassis"]),
        (wishbone_arm(reach=320), CAR_MODULES["modules/suspension"]),
        (body_shell(), CAR_MODULES["modules/body"]),
    ):
        rx, ry, rz = (float(np.radians(angle)) for angle in placement.rotation)
        matrix = trimesh.transformations.euler_matrix(rx, ry, rz, axes="sxyz")
        matrix[:3, 3] = placement.position
        placed = mesh.copy()
        placed.apply_transform(matrix)
        parts.append(placed)
    return _joined(parts)


def spool_holder() -> trimesh.Trimesh:
    """A base plate, an upright and a 100 mm axle for the spool."""

    base = _box((-60, -40, -6), (60, 40, 0))
    upright = _box((-5, -36, -3), (5, 36, 120))
    axle = trimesh.creation.cylinder(radius=12, height=100, sections=48)
    axle.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
    axle.apply_translation((52, 0, 100))
    lip = trimesh.creation.cylinder(radius=18, height=4, sections=48)
    lip.apply_transform(trimesh.transformations.rotation_matrix(np.pi / 2, (0, 1, 0)))
    lip.apply_translation((101, 0, 100))
    return _joined([base, upright, axle, lip])


def _extrude(profile: Sequence[tuple[float, float]], *, depth: float, fan_from: int) -> trimesh.Trimesh:
    """Extrude a polygon drawn in the xz plane along y.

    The caps are triangulated as a fan from vertex `fan_from`, so the polygon must be
    star-shaped from that vertex (true of an L from its inner corner).
    """

    n = len(profile)
    vertices = [(x, 0.0, z) for x, z in profile] + [(x, depth, z) for x, z in profile]
    faces = []
    for i in range(n):
        j = (i + 1) % n
        faces += [(i, j, n + j), (i, n + j, n + i)]
    for k in range(1, n - 1):
        a, b = (fan_from + k) % n, (fan_from + k + 1) % n
        faces += [(fan_from, b, a), (n + fan_from, n + a, n + b)]
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces)
    # The winding above depends on the profile's direction; let trimesh orient it outward.
    trimesh.repair.fix_normals(mesh)
    return mesh


def _stl(mesh: trimesh.Trimesh) -> bytes:
    data = mesh.export(file_type="stl")
    assert isinstance(data, bytes)  # STL export is binary
    return data


def _joined(parts: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    mesh = trimesh.util.concatenate(parts)
    assert isinstance(mesh, trimesh.Trimesh)  # meshes joined are a mesh
    return mesh


# -- images -------------------------------------------------------------------------------


def preview_png(mesh: trimesh.Trimesh, size: int = 256, margin: int = 12) -> bytes:
    """A grayscale three-quarter view of the mesh, flat-shaded, on a white background."""

    # Turn the part so the camera, looking down -z, sees it from the front, right and above.
    view = trimesh.transformations.rotation_matrix(np.radians(-55), (1, 0, 0)) @ (
        trimesh.transformations.rotation_matrix(np.radians(-30), (0, 0, 1))
    )
    turned = mesh.copy()
    turned.apply_transform(view)
    light = np.array((-0.3, 0.4, 1.0)) / np.linalg.norm((-0.3, 0.4, 1.0))
    brightness = 60 + 170 * np.clip(turned.face_normals @ light, 0, 1)

    lower, upper = turned.bounds
    scale = (size - 2 * margin) / max(upper[0] - lower[0], upper[1] - lower[1])
    left = (size - (upper[0] - lower[0]) * scale) / 2
    bottom = (size - (upper[1] - lower[1]) * scale) / 2
    triangles = turned.triangles
    columns = (triangles[:, :, 0] - lower[0]) * scale + left
    rows = size - ((triangles[:, :, 1] - lower[1]) * scale + bottom)
    depths = triangles[:, :, 2]

    nearest = np.full((size, size), -np.inf)
    gray = np.full((size, size), 255.0)
    for xs3, ys3, zs3, shade in zip(columns, rows, depths, brightness, strict=True):
        (x0, x1, x2), (y0, y1, y2), (z0, z1, z2) = xs3, ys3, zs3
        area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
        if abs(area) < 1e-9:
            continue  # seen edge-on
        c0, c1 = max(int(xs3.min()), 0), min(int(xs3.max()) + 1, size)
        r0, r1 = max(int(ys3.min()), 0), min(int(ys3.max()) + 1, size)
        xs, ys = np.meshgrid(np.arange(c0, c1) + 0.5, np.arange(r0, r1) + 0.5)
        w0 = ((x1 - xs) * (y2 - ys) - (x2 - xs) * (y1 - ys)) / area
        w1 = ((x2 - xs) * (y0 - ys) - (x0 - xs) * (y2 - ys)) / area
        w2 = 1 - w0 - w1
        depth = w0 * z0 + w1 * z1 + w2 * z2
        closer = (w0 >= 0) & (w1 >= 0) & (w2 >= 0) & (depth > nearest[r0:r1, c0:c1])
        nearest[r0:r1, c0:c1][closer] = depth[closer]
        gray[r0:r1, c0:c1][closer] = shade
    return png_grayscale(gray.astype(np.uint8))


def png_grayscale(pixels: np.ndarray) -> bytes:
    """Encode an 8-bit grayscale image (rows × columns) as a PNG."""

    height, width = pixels.shape
    # Each row starts with its filter type; 0 is "none".
    raw = np.hstack([np.zeros((height, 1), dtype=np.uint8), pixels.astype(np.uint8)]).tobytes()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


# -- text ---------------------------------------------------------------------------------

TEAMS = (
    (
        "Chassis",
        "ada/chassis",
        "Lyon",
        "2.4 m ladder frame in welded steel tube, with four suspension mounts.",
    ),
    (
        "Suspension",
        "linus/suspension",
        "Nairobi",
        "Lower wishbone arm, one per corner; printed PETG prototypes.",
    ),
    (
        "Body",
        "grace/body",
        "Montréal",
        "The outer shell and the L brackets that hold its panels to the rails.",
    ),
)


def car_readme(*, picture: bool = False, interfaces: bool = False) -> str:
    lines = [
        "# Wikispeed-style modular car",
        "",
        "A road car made of modules with fixed interfaces, so that teams in different places",
        "can each build, test and improve one module and swap it in without redesigning the",
        "rest. The approach follows the [WIKISPEED](https://en.wikipedia.org/wiki/Wikispeed)",
        "team's modular way of building cars.",
        "",
        "This design is the **assembly**: each module is a design of its own, owned and",
        "released by its team, and pinned here at a release as a git submodule under",
        "`modules/`. `assembly.toml` says how many of each, where each goes and what it",
        "attaches to; the hub's **Assembly** tab shows the module tree, the rolled-up bill of",
        "materials, the mass and size, and the upgrades on offer.",
        "",
        "## Modules",
        "",
        "| Module | Design | Built in | Notes |",
        "|---|---|---|---|",
    ]
    lines += [f"| {name} | `{design}` | {place} | {notes} |" for name, design, place, notes in TEAMS]
    lines += [
        "",
        "Clone the car with every module at its pin:",
        "",
        "```sh",
        "git clone --recurse-submodules <this design's clone URL>",
        "```",
        "",
        "`jigs/mount-gauge.stl` is the integration team's own part: a printed gauge pressed on",
        "each suspension-mount plate to check its holes before a wishbone is bolted on.",
        "",
    ]
    if picture:
        lines += ["![The assembled car](docs/car.png)", ""]
    if interfaces:
        lines += [
            "## Interfaces",
            "",
            "Modules meet only at these points (each module's `module.toml` declares them);",
            "anything else may change freely.",
            "",
            "- **suspension-mount** (chassis → suspension): two M12 pivot bolts per wishbone,",
            "  340 mm apart, on the mount plates at ±900 mm from the frame centre.",
            "- **body-mount** (chassis → body): panel brackets bolted to the side rails with",
            "  2 × M5 each, 40 mm wide, no closer than 150 mm to one another.",
            "- **ball-joint** (suspension → wheel): the 44 mm boss at the end of the wishbone.",
            "",
        ]
    lines += [
        "## Licence",
        "",
        "CERN Open Hardware Licence v2 – Strongly Reciprocal (CERN-OHL-S-2.0). Each module",
        "carries its own licence; the Assembly tab warns when one asks more than this.",
        "",
    ]
    return "\n".join(lines)


RELEASE_NOTES = """\
First complete set of modules

- Chassis v0.1: ladder frame with four suspension mounts.
- Suspension v0.2, four corners: lower wishbone arm (printed prototype).
- Body v0.1: the shell and the 3 mm panel bracket.

Known issue: the 3 mm panel bracket flexes under load; the body team is testing a thicker one.
"""

CHASSIS_README = """\
# Modular car: chassis

The chassis module of `ada/wikispeed-modular-car`, built by the Lyon team: a 2.4 m
ladder frame in welded steel tube. Two side rails, five cross members, and four
suspension-mount plates at ±900 mm from the centre.

| Part | File |
|---|---|
| Ladder frame | [chassis-frame.stl](chassis-frame.stl) |

![Chassis](docs/chassis.png)

It provides two interfaces (`module.toml`): **suspension-mount** and **body-mount**.
"""

CHASSIS_BOM = """\
part,quantity,material,description
steel tube 60x60,2,steel,side rail 2400 mm
steel tube 50x50,5,steel,cross member 580 mm
mount plate,4,steel,suspension mount 120 x 40 mm
M12 bolt,8,steel,suspension pivots
"""

CHASSIS_MODULE = """\
[[provides]]
name = "suspension-mount"
description = "Four plates at ±900 mm from the centre: two M12 pivot bolts per wishbone, 340 mm apart."
files = ["chassis-frame.stl"]

[[provides]]
name = "body-mount"
description = "The tops of the side rails: M5 holes for the panel brackets, at least 150 mm apart."
files = ["chassis-frame.stl"]
"""

CHASSIS_RELEASE = """\
Ladder frame, first release

Two 2.4 m side rails, five cross members, four suspension-mount plates.
"""


def suspension_readme(*, reach: int) -> str:
    return f"""\
# Modular car: suspension

One corner of the suspension of `ada/wikispeed-modular-car`, built by the Nairobi
team: a lower wishbone arm, its two pivot bushings 340 mm apart and the 44 mm boss
for the wheel's ball joint, {reach} mm from the pivots. The car takes four.

| Part | File |
|---|---|
| Wishbone arm | [wishbone-arm.stl](wishbone-arm.stl) |

![Wishbone arm](docs/wishbone-arm.png)

It needs the chassis's **suspension-mount** and provides a **ball-joint** (`module.toml`).
"""


SUSPENSION_BOM_FIRST = """\
part,quantity,material,description
wishbone-arm,1,PETG,printed prototype
pivot bushing,2,rubber,16 mm
M12 bolt,2,steel,pivot bolts
"""

SUSPENSION_BOM_NYLOC = SUSPENSION_BOM_FIRST + "M12 nyloc nut,2,steel,locks the pivot bolts\n"

SUSPENSION_BOM_LONGER = SUSPENSION_BOM_NYLOC + "track spacer,2,steel,20 mm\n"

SUSPENSION_MODULE = """\
[[needs]]
name = "suspension-mount"
description = "A mount plate with two M12 holes, 340 mm apart."

[[provides]]
name = "ball-joint"
description = "The 44 mm boss at the end of the wishbone."
files = ["wishbone-arm.stl"]
"""

SUSPENSION_V2 = """\
Nyloc nuts on the pivot bolts

The pivot bolts are locked with nyloc nuts; the arm is unchanged.
"""

SUSPENSION_V3 = """\
Wider track

The wishbone arm reaches 40 mm further (360 mm), with a 20 mm spacer at each pivot.
"""

BODY_README = """\
# Modular car: body

The body module of `ada/wikispeed-modular-car`, built by the Montréal team: the outer
shell (side panels, nose, tail, bonnet, boot lid, windscreen and roof) and the L
bracket that holds the panels to the chassis's side rails.

| Part | File |
|---|---|
| Shell | [body-shell.stl](body-shell.stl) |
| Panel bracket | [panel-bracket.stl](panel-bracket.stl) |

![Body shell](docs/body-shell.png)

![Panel bracket](docs/panel-bracket.png)

It needs the chassis's **body-mount** (`module.toml`). Every part and fastener is in
[bom.csv](bom.csv).
"""

BODY_BOM_FIRST = """\
part,quantity,material,module
body-shell,1,composite,body
panel-bracket,12,PETG,body
M5 bolt,48,steel,fasteners
"""

BODY_BOM_AFTER_BUILD = """\
part,quantity,material,module
body-shell,1,composite,body
panel-bracket,16,PETG,body
M5 bolt,64,steel,fasteners
M5 nyloc nut,64,steel,fasteners
"""

BODY_MODULE = """\
[[needs]]
name = "body-mount"
description = "Side rails with room for a 40 mm bracket every 150 mm."
"""

BODY_V1 = """\
Shell and 3 mm panel bracket

Known issue: the 3 mm bracket flexes under load.
"""

BODY_V2 = """\
4 mm panel bracket

Thicker brackets after the load test, and four more of them; nyloc nuts on every M5 bolt.
"""

SPOOL_README = """\
# Filament spool holder

Holds one 1 kg filament spool next to the printer. Print it lying on the base plate,
20 % infill, no supports; screw the base to the bench with two wood screws.

| Part | File |
|---|---|
| Holder | [spool-holder.stl](spool-holder.stl) |

![Spool holder](docs/spool-holder.png)

Licence: CC-BY-SA-4.0.
"""
