"""Prepaid credits: a member's balance at a lab, what jobs and bookings hold of it, and the
ledger of every movement (docs/labs.md, "Prices, holds and settlement").

Every function here changes one account, and each does it the same way: inside
`transaction.atomic`, the account's row is locked (`select_for_update`), the change is
checked against what the lock shows, then written by a conditional `update()` whose
condition repeats the check (a second guard, should a path ever miss the lock), and one
`CreditEntry` records the movement with the balance and held amount after it. The
database's constraints (`held >= 0`, `balance >= held`) are the last line: whatever the
code does, a balance never goes below what is held, so never below zero.

These functions do not ask whether the lab uses credits: the print queue and bookings
call them only when `PrintSettings.credits_enabled`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import transaction
from django.db.models import F, QuerySet

from hub.exceptions import Conflict, PermissionDenied, ValidationError
from hub.models import User
from machines.accounting import MAX_PRICE_PER_JOB, clean_amount, lab_currency, money
from machines.models import Booking, CreditAccount, CreditEntry, Lab, PrintJob, PrintSettings
from machines.selectors import lab_role, require_manager

K = CreditEntry.Kind
ZERO = Decimal(0)
# A top-up above this is a typing mistake (a hundred times the largest plausible fee).
MAX_TOP_UP = MAX_PRICE_PER_JOB * 100


@dataclass(frozen=True)
class Settlement:
    """What the end of a print or booking did: the hold released, the amount charged to
    the member, and what the lab absorbed (beyond the tolerance, or beyond the balance)."""

    released: Decimal
    charged: Decimal
    absorbed: Decimal


# -- reads ----------------------------------------------------------------------------------


def credit_account(*, lab: Lab, user: User) -> CreditAccount | None:
    return CreditAccount.objects.filter(lab=lab, user=user).first()


def credit_accounts_of_lab(lab: Lab) -> QuerySet[CreditAccount]:
    """Every account of the lab, by member name (managers' list)."""
    return CreditAccount.objects.filter(lab=lab).select_related("user").order_by("user__username")


def credit_entries(*, lab: Lab, user: User) -> QuerySet[CreditEntry]:
    """A member's ledger at a lab, newest first."""
    return (
        CreditEntry.objects.filter(account__lab=lab, account__user=user)
        .select_related("actor", "job", "booking")
        .order_by("-created_at", "-pk")
    )


def credits_enabled(lab: Lab) -> bool:
    return PrintSettings.objects.filter(lab=lab, credits_enabled=True).exists()


# -- writes ---------------------------------------------------------------------------------


def _locked(lab: Lab, user: User) -> CreditAccount:
    """The member's account at the lab, made if it is the first movement, locked until commit."""
    CreditAccount.objects.get_or_create(lab=lab, user=user)
    return CreditAccount.objects.select_for_update().get(lab=lab, user=user)


def _entry(
    account: CreditAccount,
    kind: str,
    amount: Decimal,
    *,
    job: PrintJob | None = None,
    booking: Booking | None = None,
    actor: User | None = None,
    note: str = "",
) -> CreditEntry:
    account.refresh_from_db(fields=["balance", "held"])
    return CreditEntry.objects.create(
        account=account,
        kind=kind,
        amount=amount,
        balance_after=account.balance,
        held_after=account.held,
        job=job,
        booking=booking,
        actor=actor,
        note=note[:300],
    )


def _guarded_update(account: CreditAccount, *, condition: dict, **changes) -> None:
    """The conditional update behind every movement: the lock already made the check, so a
    miss here means something wrote around the lock."""
    if not CreditAccount.objects.filter(pk=account.pk, **condition).update(**changes):
        raise Conflict("The credit account changed meanwhile; try again.")


def _what(job: PrintJob | None, booking: Booking | None) -> str:
    if booking is not None:
        return "this booking"
    return "this job"


def credit_top_up(*, lab: Lab, user: User, amount: Decimal, actor: User, note: str = "") -> CreditEntry:
    """A manager records money a member paid in: their balance grows by `amount`."""
    require_manager(lab, actor)
    if lab_role(lab, user) not in ("member", "manager"):
        raise ValidationError(
            f"{user.username} is not a member of {lab.name}: only members have credit there."
        )
    currency = lab_currency(lab)
    amount = clean_amount(amount, what="A top-up", currency=currency, maximum=MAX_TOP_UP, allow_zero=False)
    with transaction.atomic():
        account = _locked(lab, user)
        _guarded_update(account, condition={}, balance=F("balance") + amount)
        return _entry(account, K.TOP_UP, amount, actor=actor, note=note.strip())


def credit_hold(
    *,
    lab: Lab,
    user: User,
    amount: Decimal,
    job: PrintJob | None = None,
    booking: Booking | None = None,
    note: str = "",
) -> CreditEntry | None:
    """Reserve `amount` of the member's balance for a job or booking, or refuse with what
    they have and what it needs. Nothing to hold: no entry, None."""
    amount = money(amount)
    if amount < 0:
        raise ValueError("a hold is not negative")
    if amount == 0:
        return None
    with transaction.atomic():
        account = _locked(lab, user)
        free = account.balance - account.held
        if free < amount:
            currency = lab_currency(lab)
            held = (
                f" ({account.held} {currency} of it held for other jobs or bookings)" if account.held else ""
            )
            raise ValidationError(
                f"Your balance at {lab.name} is {account.balance} {currency}{held}, {_what(job, booking)} "
                f"needs {amount} {currency}: ask a manager to top it up.",
                balance=str(account.balance),
                held=str(account.held),
                needed=str(amount),
                currency=currency,
            )
        _guarded_update(account, condition={"balance__gte": F("held") + amount}, held=F("held") + amount)
        return _entry(account, K.HOLD, amount, job=job, booking=booking, note=note)


def credit_release(
    *,
    lab: Lab,
    user: User,
    amount: Decimal,
    job: PrintJob | None = None,
    booking: Booking | None = None,
    note: str = "",
) -> CreditEntry | None:
    """Give back `amount` held for a job or booking (cancelled, refused, or held too much)."""
    amount = money(amount)
    if amount <= 0:
        return None
    with transaction.atomic():
        account = _locked(lab, user)
        if account.held < amount:
            raise Conflict(f"Only {account.held} is held on this account; {amount} cannot be released.")
        _guarded_update(account, condition={"held__gte": amount}, held=F("held") - amount)
        return _entry(account, K.RELEASE, -amount, job=job, booking=booking, note=note)


def credit_settle(
    *,
    lab: Lab,
    user: User,
    held: Decimal,
    actual: Decimal,
    policy: str,
    tolerance_percent: int,
    job: PrintJob | None = None,
    booking: Booking | None = None,
    note: str = "",
) -> Settlement:
    """Settle a hold against what the print or booking really cost.

    `policy` "refund": the hold is released and nothing charged (a failed print at a lab
    that refunds them). "charge": the hold is released and `actual` charged, but at most
    the hold plus `tolerance_percent` of it, and at most what the member's balance has
    once the hold is released (less what other jobs hold); the lab absorbs the rest, on
    an ABSORBED row of the ledger that leaves the balance as it is.
    """
    held, actual = money(held), money(actual)
    if held < 0 or actual < 0:
        raise ValueError("a hold and a cost are not negative")
    if policy not in PrintSettings.FailedPrints.values:
        raise ValueError(f"unknown settlement policy {policy!r}")
    with transaction.atomic():
        account = _locked(lab, user)
        if account.held < held:
            raise Conflict(f"Only {account.held} is held on this account; {held} cannot be settled.")
        released = held
        if released:
            _guarded_update(account, condition={"held__gte": released}, held=F("held") - released)
            _entry(account, K.RELEASE, -released, job=job, booking=booking, note=note)
            account.refresh_from_db(fields=["balance", "held"])
        if policy == PrintSettings.FailedPrints.REFUND or actual == 0:
            return Settlement(released=released, charged=ZERO, absorbed=ZERO)
        ceiling = held + money(held * Decimal(tolerance_percent) / Decimal(100))
        charged = min(actual, ceiling, account.balance - account.held)
        charged = max(charged, ZERO)
        absorbed = actual - charged
        if charged:
            _guarded_update(
                account,
                condition={"balance__gte": F("held") + charged},
                balance=F("balance") - charged,
            )
            _entry(account, K.CHARGE, -charged, job=job, booking=booking, note=note)
        if absorbed:
            why = (
                f"beyond the {tolerance_percent} % tolerance on the hold"
                if actual > ceiling
                else "beyond the member's balance"
            )
            _entry(account, K.ABSORBED, absorbed, job=job, booking=booking, note=f"{note} ({why})".strip())
        return Settlement(released=released, charged=charged, absorbed=absorbed)


def require_own_or_manager(*, lab: Lab, user: User, actor: User) -> None:
    """A ledger is its member's and the lab's managers' to read; others are told no."""
    if actor.pk == user.pk and lab_role(lab, actor) in ("member", "manager"):
        return
    if lab_role(lab, actor) == "manager":
        return
    raise PermissionDenied(f"Only {user.username} and the managers of {lab.name} see this account.")
