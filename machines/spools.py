"""A lab's filament stock: spools, which one is loaded on which printer, what prints use.

Managers add, edit, archive and load spools; a print that ends takes its grams off the
spool loaded on its printer (`spool_use`, called once per print from the job's end). The
lab's managers hear once when a spool runs low (`low_stock_notified_at`; an edit that
brings it back above its threshold, a refill, resets it).

Loading a spool is what tells the queue which material and colour a printer has: it sets
`Printer.material` and `Printer.colour`, in the canonical forms the queue compares.
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Greatest
from django.utils import timezone

from hub.exceptions import Conflict, ValidationError
from hub.models import User
from hub.queue import enqueue
from machines.models import Lab, Printer, Spool
from machines.notifications import notify_managers
from machines.selectors import require_manager

logger = logging.getLogger(__name__)

# Spools for FDM printers weigh from 250 g to 10 kg or so; anything above this is a typo.
MAX_SPOOL_G = Decimal(100_000)
MATERIAL_MAX = 40


def canonical_material(value: str) -> str:
    """How the queue compares materials: 'petg ' and 'PETG' are one material."""
    return " ".join(value.split()).upper()


def canonical_colour(value: str) -> str:
    return " ".join(value.split()).lower()


def _grams(value: Decimal | float | int | str, name: str) -> Decimal:
    try:
        grams = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{name} must be a number of grams.") from None
    if not grams.is_finite() or grams < 0:
        raise ValidationError(f"{name} cannot be negative.")
    if grams > MAX_SPOOL_G:
        raise ValidationError(f"{name} of {grams} g is more than any spool holds (at most {MAX_SPOOL_G} g).")
    return grams.quantize(Decimal("0.1"))


def _material(value: str) -> str:
    material = canonical_material(value or "")
    if not material:
        raise ValidationError("Say which material the spool holds, e.g. PLA.")
    if len(material) > MATERIAL_MAX:
        raise ValidationError(f"A material name has at most {MATERIAL_MAX} characters.")
    return material


def _colour(value: str) -> str:
    colour = canonical_colour(value or "")
    if len(colour) > MATERIAL_MAX:
        raise ValidationError(f"A colour has at most {MATERIAL_MAX} characters.")
    return colour


def _check_amounts(initial: Decimal, remaining: Decimal) -> None:
    if initial <= 0:
        raise ValidationError("A spool's full weight must be more than 0 g.")
    if remaining > initial:
        raise ValidationError(f"{remaining} g remaining is more than the spool's full weight ({initial} g).")


def spool_create(
    *,
    lab: Lab,
    actor: User,
    material: str,
    initial_g: Decimal | float | int | str,
    colour: str = "",
    remaining_g: Decimal | float | int | str | None = None,
    low_stock_g: Decimal | float | int | str = Decimal(100),
) -> Spool:
    """A new spool in the lab's stock (full unless `remaining_g` says otherwise)."""
    require_manager(lab, actor)
    initial = _grams(initial_g, "The full weight")
    remaining = initial if remaining_g is None else _grams(remaining_g, "The remaining weight")
    _check_amounts(initial, remaining)
    return Spool.objects.create(
        lab=lab,
        material=_material(material),
        colour=_colour(colour),
        initial_g=initial,
        remaining_g=remaining,
        low_stock_g=_grams(low_stock_g, "The low-stock threshold"),
    )


@transaction.atomic
def spool_update(
    *,
    spool: Spool,
    actor: User,
    material: str | None = None,
    colour: str | None = None,
    initial_g: Decimal | float | int | str | None = None,
    remaining_g: Decimal | float | int | str | None = None,
    low_stock_g: Decimal | float | int | str | None = None,
) -> Spool:
    """Change a spool (a refill is a new `remaining_g`). A spool back above its threshold
    may warn again when it next runs low; a loaded spool's new material or colour is the
    printer's too."""
    require_manager(spool.lab, actor)
    row = Spool.objects.select_for_update().get(pk=spool.pk)
    if row.archived_at is not None:
        raise Conflict("This spool is archived: add a new one instead.")
    if material is not None:
        row.material = _material(material)
    if colour is not None:
        row.colour = _colour(colour)
    if initial_g is not None:
        row.initial_g = _grams(initial_g, "The full weight")
    if remaining_g is not None:
        row.remaining_g = _grams(remaining_g, "The remaining weight")
    if low_stock_g is not None:
        row.low_stock_g = _grams(low_stock_g, "The low-stock threshold")
    _check_amounts(row.initial_g, row.remaining_g)
    if row.remaining_g >= row.low_stock_g:
        row.low_stock_notified_at = None
    row.save()
    if row.printer_id is not None:
        _set_loaded(row.printer_id, row)
    return row


@transaction.atomic
def spool_archive(*, spool: Spool, actor: User) -> Spool:
    """Out of the stock for good (used up, thrown away): unloaded, kept for the record."""
    require_manager(spool.lab, actor)
    Spool.objects.filter(pk=spool.pk, archived_at__isnull=True).update(
        archived_at=timezone.now(), printer=None
    )
    spool.refresh_from_db()
    return spool


@transaction.atomic
def spool_load(*, spool: Spool, printer: Printer, actor: User) -> Spool:
    """Load `spool` on `printer`: the spool that was on it goes back to the shelf, the
    printer's material and colour become the spool's, and the dispatcher looks again
    (a job waiting for this material may start)."""
    require_manager(spool.lab, actor)
    if printer.machine.lab_id != spool.lab_id:
        raise ValidationError("A spool is loaded on a printer of its own lab.")
    row = Spool.objects.select_for_update().get(pk=spool.pk)
    if row.archived_at is not None:
        raise Conflict("This spool is archived.")
    # One spool per printer (the one-to-one): take the previous one off first.
    Spool.objects.filter(printer=printer).exclude(pk=row.pk).update(printer=None)
    Spool.objects.filter(pk=row.pk).update(printer=printer)
    _set_loaded(printer.pk, row)
    enqueue("machines.tasks.dispatch_print_jobs", spool.lab_id)
    row.refresh_from_db()
    return row


@transaction.atomic
def spool_unload(*, spool: Spool, actor: User) -> Spool:
    """Back on the shelf. The printer keeps its material as recorded (filament may still
    be in the nozzle); loading another spool changes it."""
    require_manager(spool.lab, actor)
    Spool.objects.filter(pk=spool.pk).update(printer=None)
    spool.refresh_from_db()
    return spool


def _set_loaded(printer_id: int, spool: Spool) -> None:
    Printer.objects.filter(pk=printer_id).update(material=spool.material, colour=spool.colour)


def spool_use(*, printer: Printer, grams: float | Decimal | None) -> Spool | None:
    """Take `grams` off the spool loaded on `printer` after a print; returns the spool, or
    None if no spool is loaded. Never below 0 (a spool weighed wrong runs out on paper, not
    into a negative stock); grams that are not a positive finite number take nothing.
    Tells the lab's managers once when the spool falls below its low-stock threshold."""
    if grams is None:
        return None
    try:
        amount = Decimal(str(grams))
    except (InvalidOperation, ValueError):
        amount = Decimal(0)
    if not amount.is_finite() or amount <= 0:
        logger.warning("not deducting %r g from the spool on %s", grams, printer)
        return Spool.objects.filter(printer=printer, archived_at__isnull=True).first()
    amount = min(amount, MAX_SPOOL_G).quantize(Decimal("0.1"))
    with transaction.atomic():
        rows = Spool.objects.filter(printer=printer, archived_at__isnull=True)
        # One UPDATE, no read-modify-write: two prints ending at once both count.
        if not rows.update(remaining_g=Greatest(F("remaining_g") - amount, Value(Decimal(0)))):
            return None
        now = timezone.now()
        # The notice is a claim too: only the first update that finds it low sends it.
        claimed = rows.filter(low_stock_notified_at__isnull=True, remaining_g__lt=F("low_stock_g")).update(
            low_stock_notified_at=now
        )
        spool = rows.select_related("lab").get()
        if claimed:
            notify_managers(
                spool.lab,
                subject=f"Low stock: {spool.material} {spool.colour}".strip() + f" on {printer.machine.name}",
                body=(
                    f"The {spool.material} {spool.colour} spool loaded on {printer.machine.name} has about "
                    f"{spool.remaining_g} g left (warning below {spool.low_stock_g} g)."
                ).replace("  ", " "),
            )
    return spool
