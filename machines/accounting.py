"""What making a part costs at a lab: its prices, and the estimate of a job.

A lab's prices (docs/labs.md) are a fixed fee per job, a price per machine-hour (a machine
may set its own), and a price per gram of each material with that material's density (to
estimate grams from a mesh's volume before it is sliced). Money is `Decimal` in the lab's
currency, rounded to the cent only at the end; a lab with no prices is free (cost 0).

Credits (holds at submission, settlement after the print) build on these estimates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from hub.exceptions import ValidationError
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


def lab_prices(lab: Lab, *, settings_row: PrintSettings | None = None) -> Prices:
    """The lab's prices (two queries; one when the caller passes the lab's print settings,
    saved or the unsaved defaults, as it just read them); defaults for a lab that set none."""
    settings_ = settings_row if settings_row is not None else PrintSettings.objects.filter(lab=lab).first()
    rows = MaterialPrice.objects.filter(lab=lab).values_list("material", "price_per_gram", "density_g_cm3")
    return prices_from(settings_, rows)


def prices_from(settings_: PrintSettings | None, rows: Iterable[tuple[str, Decimal, Decimal]]) -> Prices:
    """`lab_prices` from the lab's print settings and its material prices (material, price
    per gram, density; by material) as a caller read them."""
    listed = list(rows)
    return Prices(
        currency=settings_.currency if settings_ else "EUR",
        per_job=settings_.price_per_job if settings_ else Decimal(0),
        per_machine_hour=settings_.price_per_machine_hour if settings_ else Decimal(0),
        per_gram={m.upper(): p for m, p, _ in listed},
        density={m.upper(): d for m, _, d in listed},
    )


def lab_currency(lab: Lab) -> str:
    """The currency the lab's prices and credits are in (EUR for a lab that set none)."""
    code = PrintSettings.objects.filter(lab=lab).values_list("currency", flat=True).first()
    return code or "EUR"


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


# -- what a print used, and what it cost ------------------------------------------------------

# Filament is 1.75 mm across unless a slicer said otherwise: a G-code that gives only its
# length (mm) is weighed as a cylinder of this diameter.
FILAMENT_DIAMETER_MM = Decimal("1.75")
# Before slicing, time comes from the plastic volume at this rate (mm³/s, 0.4 mm nozzle):
# machines.where uses the same figure for its estimates.
VOLUME_RATE_MM3_S = Decimal("3.0")


def grams_from_length(length_mm: float, *, density_g_cm3: Decimal) -> Decimal:
    """Grams of filament in `length_mm` of 1.75 mm filament."""
    radius = FILAMENT_DIAMETER_MM / 2
    area_mm2 = Decimal("3.14159265") * radius * radius
    return Decimal(str(length_mm)) * area_mm2 / Decimal(1000) * density_g_cm3


def seconds_from_volume(volume_mm3: float, *, fill_share: Decimal = DEFAULT_FILL_SHARE) -> int:
    """Print time of a part of this volume before it is sliced (an estimate, at least a minute)."""
    plastic = Decimal(str(abs(volume_mm3))) * fill_share
    return max(60, int(plastic / VOLUME_RATE_MM3_S))


def used_share(*, finished: bool, progress: float | None) -> Decimal:
    """How much of a print's G-code ran: all of a finished one, else its last progress."""
    if finished:
        return Decimal(1)
    if progress is None:
        return Decimal(0)
    return min(Decimal(1), max(Decimal(0), Decimal(str(progress)) / Decimal(100)))


# -- checking prices a manager types ------------------------------------------------------------

# ISO 4217 codes in use (2025). A code outside it (XYZ, EURO, eur) is refused.
ISO_4217 = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN
    BWP BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD
    FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY
    KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP
    MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR
    RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT
    TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER
    ZAR ZMW ZWG ZWL
    """.split()
)
# Currencies without minor units: a price in them is whole.
NO_MINOR_UNIT = frozenset("BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX VND VUV XAF XOF XPF".split())

# Beyond these a price is a typing mistake, not a price: a print's fee or an hour of a
# machine above 10,000, a gram of material above 100 (precious-metal filaments cost ~2).
MAX_PRICE_PER_JOB = Decimal(10000)
MAX_PRICE_PER_HOUR = Decimal(10000)
MAX_PRICE_PER_GRAM = Decimal(100)
# Filaments weigh 0.9 (PP) to ~4 g/cm³ (metal-filled); nothing is denser than osmium.
MIN_DENSITY = Decimal("0.5")
MAX_DENSITY = Decimal("22.6")
MAX_TOLERANCE_PERCENT = 1000


def clean_currency(value: object) -> str:
    code = str(value or "").strip()
    if code.upper() in ISO_4217 and code != code.upper():
        raise ValidationError(f"Write the currency in capitals: {code.upper()}, not {code}.")
    if code not in ISO_4217:
        raise ValidationError(
            f"{code or 'An empty code'} is not an ISO 4217 currency: give its code, e.g. EUR, USD or CHF."
        )
    return code


def clean_amount(
    value: object, *, what: str, currency: str, places: int = 2, maximum: Decimal, allow_zero: bool = True
) -> Decimal:
    """A money amount typed by a person: a number, not negative, at most `places` decimals
    (none in a currency without minor units), at most `maximum`."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(f"{what} must be a number, not {value!r}.") from None
    if not amount.is_finite():
        raise ValidationError(f"{what} must be a number, not {value!r}.")
    if amount < 0:
        raise ValidationError(f"{what} cannot be negative ({amount} {currency}).")
    if not allow_zero and amount == 0:
        raise ValidationError(f"{what} must be more than 0.")
    if currency in NO_MINOR_UNIT and places == 2 and amount != amount.to_integral_value():
        raise ValidationError(f"{what} is in whole {currency}: {currency} has no smaller unit.")
    exponent = amount.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise ValidationError(
            f"{what} has too many decimals ({amount}): give it to {places} places at most, e.g. {amount:.{places}f}."
        )
    if amount > maximum:
        raise ValidationError(
            f"{what} of {amount} {currency} is not plausible: at most {maximum} {currency}."
        )
    return amount


def clean_density(value: object, *, material: str) -> Decimal:
    try:
        density = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationError(
            f"The density of {material} must be a number of g/cm³, not {value!r}."
        ) from None
    if not density.is_finite() or not MIN_DENSITY <= density <= MAX_DENSITY:
        raise ValidationError(
            f"A density of {density} g/cm³ for {material} is not plausible: give it in g/cm³, "
            f"between {MIN_DENSITY} and {MAX_DENSITY} (PLA is 1.24)."
        )
    exponent = density.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > 3:
        raise ValidationError(f"Give the density of {material} to 3 decimals at most, e.g. {density:.3f}.")
    return density
