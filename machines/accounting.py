"""What making a part costs at a lab: its prices, and the estimate of a job.

A lab's prices (docs/labs.md) are a fixed fee per job, a price per machine-hour (a machine
may set its own), and a price per gram of each material with that material's density (to
estimate grams from a mesh's volume before it is sliced). Money is `Decimal` in the lab's
currency, rounded to the cent only at the end; a lab with no prices is free (cost 0).

Credits (holds at submission, settlement after the print) build on these estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from machines.models import Lab, Machine, MaterialPrice, PrintSettings

CENT = Decimal("0.01")
# Printed parts are not solid: slicers' default infill and walls fill about this share of
# a part's volume. An estimate from the volume says so; the slicer's grams replace it.
DEFAULT_FILL_SHARE = Decimal("0.35")
# PLA's density, for a material the lab has not priced.
DEFAULT_DENSITY = Decimal("1.240")


def money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Prices:
    currency: str = "EUR"
    per_job: Decimal = Decimal(0)
    per_machine_hour: Decimal = Decimal(0)
    per_gram: dict[str, Decimal] = field(default_factory=dict)  # material (upper case) → price
    density: dict[str, Decimal] = field(default_factory=dict)  # material (upper case) → g/cm³

    @property
    def is_free(self) -> bool:
        return not (self.per_job or self.per_machine_hour or any(self.per_gram.values()))

    def gram_price(self, material: str) -> Decimal:
        return self.per_gram.get(material.upper(), Decimal(0))

    def density_of(self, material: str) -> Decimal:
        return self.density.get(material.upper(), DEFAULT_DENSITY)


def lab_prices(lab: Lab) -> Prices:
    """The lab's prices (two queries); defaults for a lab that set none."""
    settings_ = PrintSettings.objects.filter(lab=lab).first()
    rows = MaterialPrice.objects.filter(lab=lab).values_list("material", "price_per_gram", "density_g_cm3")
    return Prices(
        currency=settings_.currency if settings_ else "EUR",
        per_job=settings_.price_per_job if settings_ else Decimal(0),
        per_machine_hour=settings_.price_per_machine_hour if settings_ else Decimal(0),
        per_gram={m.upper(): p for m, p, _ in rows},
        density={m.upper(): d for m, _, d in rows},
    )


def grams_from_volume(
    volume_mm3: float, *, density_g_cm3: Decimal, fill_share: Decimal = DEFAULT_FILL_SHARE
) -> Decimal:
    """Grams of filament for a part of this volume, before slicing (an estimate)."""
    if volume_mm3 < 0:
        raise ValueError("a volume is not negative")
    return Decimal(str(volume_mm3)) / Decimal(1000) * density_g_cm3 * fill_share


def job_cost(
    prices: Prices,
    *,
    material: str,
    grams: Decimal | float | None,
    seconds: float | None,
    machine: Machine | None = None,
    copies: int = 1,
) -> Decimal:
    """The cost of `copies` prints using `grams` of `material` for `seconds` each (what is
    unknown costs nothing): fee + grams × price + hours × the machine's or lab's rate."""
    hourly = (
        machine.price_per_hour
        if machine is not None and machine.price_per_hour is not None
        else prices.per_machine_hour
    )
    grams_d = Decimal(str(grams)) if grams is not None else Decimal(0)
    hours = Decimal(str(seconds)) / Decimal(3600) if seconds is not None else Decimal(0)
    if grams_d < 0 or hours < 0 or copies < 1:
        raise ValueError("grams, time and copies are not negative")
    each = prices.per_job + grams_d * prices.gram_price(material) + hours * hourly
    return money(each * copies)
