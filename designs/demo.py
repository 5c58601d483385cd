"""Demo data for a fresh hub: three people, a modular car with history, a release, a fork.

`manage.py demo` calls `demo_create()`. Everything is written through the services, so the
demo takes the same paths as real use and its repositories are ordinary bare git
repositories. The meshes are generated here (real binary STL files, a few hundred
triangles each) and the README images are views rendered from those meshes.
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
    role="owner of ada/wikispeed-modular-car",
    bio="Coordinates the modular car; her team in Lyon builds the chassis.",
)
LINUS = DemoAccount(
    username="linus",
    password="linus-fabhub-demo",
    first_name="Linus",
    last_name="Berg",
    role="forks the car; owns linus/spool-holder",
    bio="Builds suspension prototypes in Malmö and prints far too many spool holders.",
)
GRACE = DemoAccount(
    username="grace",
    password="grace-fabhub-demo",
    first_name="Grace",
    last_name="Okafor",
    role="collaborator with write access to the car",
    bio="Runs the body-panel team in Nairobi and keeps the bill of materials honest.",
)
ACCOUNTS = (ADA, LINUS, GRACE)

CAR_SLUG = "wikispeed-modular-car"
SPOOL_SLUG = "spool-holder"


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

    car = services.design_create(
        owner=ada,
        slug=CAR_SLUG,
        title="Wikispeed-style modular car",
        licence=Licence.CERN_OHL_S,
        summary=(
            "A road car split into modules with fixed interfaces (chassis, suspension, "
            "body), so teams in different places can each build, test and improve one "
            "module and swap it in without redesigning the rest."
        ),
        tags=["vehicle", "modular", "wikispeed"],
    )
    made.append(car.repo_path)
    services.collaborator_set(design=car, actor=ada, user=grace, role=Collaborator.Role.WRITE)

    chassis = chassis_frame()
    wishbone = wishbone_arm(reach=320)
    bracket = panel_bracket(thickness=3)
    _commit(
        car,
        ada,
        "Start the car with the chassis ladder frame",
        {
            "README.md": _car_readme(["chassis"]),
            "chassis/chassis-frame.stl": _stl(chassis),
            "docs/chassis.png": preview_png(chassis),
        },
    )
    _commit(
        car,
        ada,
        "Add the front suspension wishbone arm",
        {
            "README.md": _car_readme(["chassis", "suspension"]),
            "suspension/wishbone-arm.stl": _stl(wishbone),
            "docs/suspension.png": preview_png(wishbone),
        },
    )
    release = _commit(
        car,
        ada,
        "Add the body panel bracket and a bill of materials",
        {
            "README.md": _car_readme(["chassis", "suspension", "body"]),
            "body/panel-bracket.stl": _stl(bracket),
            "docs/body.png": preview_png(bracket),
            "bom.csv": BOM_FIRST,
        },
    )
    services.tag_create(design=car, user=ada, name="v0.1", target=release, notes=RELEASE_NOTES)

    thicker = panel_bracket(thickness=4)
    _commit(
        car,
        ada,
        "Thicken panel bracket to 4 mm after load test",
        {
            "body/panel-bracket.stl": _stl(thicker),
            "docs/body.png": preview_png(thicker),
        },
    )
    _commit(
        car,
        grace,
        "Update the bill of materials after the first test build",
        {
            "bom.csv": BOM_AFTER_BUILD,
        },
    )
    _commit(
        car,
        ada,
        "Document the interfaces between modules",
        {
            "README.md": _car_readme(["chassis", "suspension", "body"], interfaces=True),
        },
    )

    fork = services.design_fork(design=car, user=linus)
    made.append(fork.repo_path)
    longer = wishbone_arm(reach=360)
    _commit(
        fork,
        linus,
        "Lengthen the wishbone arm by 40 mm for a wider track",
        {
            "suspension/wishbone-arm.stl": _stl(longer),
            "docs/suspension.png": preview_png(longer),
        },
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
        design=car,
        maker=linus,
        commit_sha=car.repo.branch_head(car.default_branch) or "",
        path="suspension/wishbone-arm.stl",
        photo=ContentFile(preview_png(wishbone), name="wishbone.png"),
        notes="The arm fits the chassis mounts; the track felt narrow, so I forked it.",
        where="Home workshop",
        outcome="partly",
    )


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

MODULES = {
    "chassis": (
        "Chassis",
        "chassis/chassis-frame.stl",
        "Lyon",
        "2.4 m ladder frame in welded steel tube, with four suspension mounts.",
    ),
    "suspension": (
        "Suspension",
        "suspension/wishbone-arm.stl",
        "Nairobi",
        "Lower wishbone arm; printed PETG prototype before the steel version.",
    ),
    "body": (
        "Body",
        "body/panel-bracket.stl",
        "Montréal",
        "L bracket that holds the body panels to the side rails.",
    ),
}


def _car_readme(modules: Sequence[str], *, interfaces: bool = False) -> str:
    lines = [
        "# Wikispeed-style modular car",
        "",
        "A road car made of modules with fixed interfaces, so that teams in different places",
        "can each build, test and improve one module and swap it in without redesigning the",
        "rest. The approach follows the [WIKISPEED](https://en.wikipedia.org/wiki/Wikispeed)",
        "team's modular way of building cars.",
        "",
        "## Modules",
        "",
        "| Module | Part | Built in | Notes |",
        "|---|---|---|---|",
    ]
    for key in modules:
        name, path, place, notes = MODULES[key]
        lines.append(f"| {name} | [{path.rsplit('/', 1)[-1]}]({path}) | {place} | {notes} |")
    lines.append("")
    for key in modules:
        lines += [f"![{MODULES[key][0]}](docs/{key}.png)", ""]
    if interfaces:
        lines += [
            "## Interfaces",
            "",
            "Modules meet only at these points; anything else may change freely.",
            "",
            "- **Suspension → chassis**: two M12 pivot bolts per wishbone, 340 mm apart, on the",
            "  mount plates at ±900 mm from the frame centre.",
            "- **Body → chassis**: panel brackets bolted to the side rails with 2 × M5 each,",
            "  40 mm wide, no closer than 150 mm to one another.",
            "- **Suspension → wheel**: ball joint in the 44 mm boss at the end of the wishbone.",
            "",
        ]
    if "body" in modules:
        lines += [
            "## Bill of materials",
            "",
            "Every part and fastener is in [bom.csv](bom.csv).",
            "",
        ]
    lines += [
        "## Licence",
        "",
        "CERN Open Hardware Licence v2 – Strongly Reciprocal (CERN-OHL-S-2.0).",
        "",
    ]
    return "\n".join(lines)


BOM_FIRST = """\
part,quantity,material,module
chassis-frame,1,steel tube,chassis
wishbone-arm,4,PETG,suspension
panel-bracket,12,PETG,body
M5 bolt,48,steel,fasteners
"""

BOM_AFTER_BUILD = """\
part,quantity,material,module
chassis-frame,1,steel tube,chassis
wishbone-arm,4,PETG,suspension
panel-bracket,16,PETG,body
M5 bolt,64,steel,fasteners
M5 nyloc nut,64,steel,fasteners
"""

RELEASE_NOTES = """\
First complete set of modules

- Chassis: ladder frame with four suspension mounts.
- Suspension: lower wishbone arm (printed prototype).
- Body: panel bracket, 3 mm.
- Bill of materials for one car.

Known issue: the 3 mm panel bracket flexes under load; a thicker one is being tested.
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
