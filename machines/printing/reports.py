"""The monthly lab report, as CSV: the month's prints (one row per PrintRecord) and, below
them, the month's credit movements (one row per ledger entry). The month is the lab's own
calendar month, in its time zone. docs/labs.md lists the columns.

Spreadsheets run a cell that starts with = + - or @ as a formula, so any text a person
typed (names, paths, notes) that starts with one of them, or with a tab or carriage
return, is written with a leading apostrophe (OWASP's advice on CSV injection). Numbers
the hub writes itself are left as they are.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, time
from decimal import Decimal

from hub.exceptions import NotFound
from hub.models import User
from machines.accounting import lab_currency
from machines.models import CreditEntry, Lab, PrintRecord
from machines.selectors import require_manager
from machines.timeline import wall_clock

PRINT_COLUMNS = [
    "date",
    "person",
    "design",
    "path",
    "machine",
    "material",
    "grams",
    "hours",
    "cost",
    "currency",
    "result",
]
LEDGER_COLUMNS = [
    "date",
    "person",
    "movement",
    "amount",
    "balance_after",
    "held_after",
    "currency",
    "job",
    "booking",
    "by",
    "note",
]
LEDGER_TITLE = "Credit movements"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def safe_cell(value: object) -> str:
    """Text as a spreadsheet shows it, never as a formula it runs."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def parse_month(value: str) -> date:
    """'2026-03' → 1 March 2026; anything else is not a report there is."""
    match = _MONTH.match(value or "")
    if not match or not 1 <= int(match.group(2)) <= 12 or int(match.group(1)) < 2000:
        raise NotFound(f"No report for {value!r}: months are written YYYY-MM, e.g. 2026-03.")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_span(lab: Lab, first: date) -> tuple[datetime, datetime]:
    """The month's start and end as instants, in the lab's zone."""
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return wall_clock(first, time(0), lab.zone), wall_clock(following, time(0), lab.zone)


def _local(instant: datetime, lab: Lab) -> str:
    return instant.astimezone(lab.zone).strftime("%Y-%m-%d %H:%M")


def _hours(seconds: int | None) -> str:
    return "" if seconds is None else f"{Decimal(seconds) / Decimal(3600):.2f}"


def lab_month_report(*, lab: Lab, month: str, actor: User) -> str:
    """The lab's report for `month` (YYYY-MM) as CSV text; managers only."""
    require_manager(lab, actor)
    start, end = month_span(lab, parse_month(month))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(PRINT_COLUMNS)
    records = PrintRecord.objects.filter(lab=lab, ended_at__gte=start, ended_at__lt=end).order_by(
        "ended_at", "pk"
    )
    for r in records:
        writer.writerow(
            [
                _local(r.ended_at, lab),
                safe_cell(r.owner_name),
                safe_cell(r.design_name),
                safe_cell(r.path),
                safe_cell(r.machine_name),
                safe_cell(r.material),
                "" if r.grams is None else f"{r.grams:.2f}",
                _hours(r.seconds),
                "" if r.cost is None else str(r.cost),
                r.currency,
                r.result,
            ]
        )
    writer.writerow([])
    writer.writerow([LEDGER_TITLE])
    writer.writerow(LEDGER_COLUMNS)
    entries = (
        CreditEntry.objects.filter(account__lab=lab, created_at__gte=start, created_at__lt=end)
        .select_related("account__user", "actor")
        .order_by("created_at", "pk")
    )
    currency = lab_currency(lab)
    for e in entries:
        writer.writerow(
            [
                _local(e.created_at, lab),
                safe_cell(e.account.user.username),
                e.kind,
                str(e.amount),
                str(e.balance_after),
                str(e.held_after),
                currency,
                e.job_id or "",
                e.booking_id or "",
                safe_cell(e.actor.username if e.actor else ""),
                safe_cell(e.note),
            ]
        )
    return out.getvalue()
