"""A lab's prices, as its managers set them: the currency, a fee per print, a price per
machine-hour, the credit rules (print settings), and a price per gram and density per
material. Each value is checked here with a message a person can act on; the model's
constraints are the last line (docs/labs.md, "Prices, holds and settlement")."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from hub.exceptions import NotFound, ValidationError
from hub.models import User
from machines.accounting import (
    MAX_PRICE_PER_GRAM,
    MAX_PRICE_PER_HOUR,
    MAX_PRICE_PER_JOB,
    MAX_TOLERANCE_PERCENT,
    clean_amount,
    clean_currency,
    clean_density,
)
from machines.models import CreditAccount, Lab, MaterialPrice, PrintSettings
from machines.printing import selectors as ps
from machines.selectors import require_manager

PRICE_FIELDS = (
    "currency",
    "price_per_job",
    "price_per_machine_hour",
    "credits_enabled",
    "overrun_tolerance_percent",
    "failed_prints",
)


def clean_price_settings(lab: Lab, fields: dict[str, Any]) -> dict[str, Any]:
    """The price fields among `fields`, checked (the others are left as they are)."""
    current = ps.print_settings_of(lab)
    cleaned = dict(fields)
    if "currency" in fields:
        cleaned["currency"] = clean_currency(fields["currency"])
        if cleaned["currency"] != current.currency and _credit_outstanding(lab):
            raise ValidationError(
                f"Members hold credit at {lab.name} in {current.currency}: changing the currency would "
                "change what their balances mean. Settle the balances first."
            )
    currency = cleaned.get("currency", current.currency)
    if "price_per_job" in fields:
        cleaned["price_per_job"] = clean_amount(
            fields["price_per_job"], what="The fee per print", currency=currency, maximum=MAX_PRICE_PER_JOB
        )
    if "price_per_machine_hour" in fields:
        cleaned["price_per_machine_hour"] = clean_amount(
            fields["price_per_machine_hour"],
            what="The price per machine-hour",
            currency=currency,
            maximum=MAX_PRICE_PER_HOUR,
        )
    if "overrun_tolerance_percent" in fields:
        value = fields["overrun_tolerance_percent"]
        if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TOLERANCE_PERCENT:
            raise ValidationError(
                f"The overrun tolerance is a whole percentage from 0 to {MAX_TOLERANCE_PERCENT}, not {value!r}."
            )
    if "failed_prints" in fields and fields["failed_prints"] not in PrintSettings.FailedPrints.values:
        raise ValidationError(
            f"'failed_prints' must be one of {', '.join(PrintSettings.FailedPrints.values)}."
        )
    if "credits_enabled" in fields and not isinstance(fields["credits_enabled"], bool):
        raise ValidationError("'credits_enabled' is true or false.")
    return cleaned


def _credit_outstanding(lab: Lab) -> bool:
    return CreditAccount.objects.filter(lab=lab).exclude(balance=0, held=0).exists()


def _material(value: Any) -> str:
    material = ps.canonical_material(str(value or ""))
    if not material:
        raise ValidationError("Say which material the price is for, e.g. PLA.")
    if len(material) > 40:
        raise ValidationError("A material's name is 40 characters at most.")
    return material


@transaction.atomic
def material_price_set(
    *, lab: Lab, actor: User, material: str, price_per_gram: Any, density_g_cm3: Any = None
) -> MaterialPrice:
    """Price a material at the lab (or change its price or density). The density, in
    g/cm³, turns a mesh's volume into grams before it is sliced (PLA's 1.24 if not given)."""
    require_manager(lab, actor)
    name = _material(material)
    currency = ps.print_settings_of(lab).currency
    price = clean_amount(
        price_per_gram,
        what=f"The price of a gram of {name}",
        currency=currency,
        places=4,
        maximum=MAX_PRICE_PER_GRAM,
    )
    row = MaterialPrice.objects.select_for_update().filter(lab=lab, material=name).first()
    if density_g_cm3 in (None, ""):
        density = row.density_g_cm3 if row is not None else Decimal("1.240")
    else:
        density = clean_density(density_g_cm3, material=name)
    if row is None:
        return MaterialPrice.objects.create(
            lab=lab, material=name, price_per_gram=price, density_g_cm3=density
        )
    row.price_per_gram, row.density_g_cm3 = price, density
    row.save(update_fields=["price_per_gram", "density_g_cm3"])
    return row


@transaction.atomic
def material_price_delete(*, lab: Lab, actor: User, material: str) -> None:
    require_manager(lab, actor)
    name = _material(material)
    if not MaterialPrice.objects.filter(lab=lab, material=name).delete()[0]:
        raise NotFound(f"{lab.name} has no price for {name}.")


def material_prices_of(lab: Lab) -> list[MaterialPrice]:
    return list(MaterialPrice.objects.filter(lab=lab).order_by("material"))
