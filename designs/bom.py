"""Row-level comparison of two versions of a CSV bill of materials.

Rows are matched by a key column, so a reordered file shows no changes and "bolt 4 → 6"
reads as one changed row with a quantity delta of +2 rather than a removed and an
added line. Decisions, each chosen to be the least surprising for a person reading
the result:

* Every ``.csv`` file is a candidate (`is_bom_path`): the name says nothing reliable,
  and text that does not look like a BOM raises `BomParseError`, after which the
  caller can show a plain text diff instead.
* Column names match case-insensitively, ignoring surrounding and repeated spaces.
  Results use each column's name as the new version writes it.
* The key column is the first of `KEY_COLUMNS`, in that order of preference, that
  both versions have; failing that, the first shared column other than the quantity.
  The quantity column is the first of `QUANTITY_COLUMNS` both versions have.
* Rows that share a key are kept apart rather than merged: the second "R1" is keyed
  "R1 (2)", the third "R1 (3)", and the nth occurrence in the old version is compared
  with the nth in the new one. Merging would have to invent values for the other
  columns and could hide a change.
* Empty text stands for a version in which the file does not exist, so every row of
  the other version is added or removed.
* An added row's quantity delta is its quantity and a removed row's is minus its
  quantity, as if the missing side had 0.
* Changes come in the new version's row order, followed by removed rows in the old
  version's order.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

KEY_COLUMNS = (
    "part", "part number", "part_number", "part no", "reference", "ref", "designator",
    "refs", "item", "name", "id", "sku", "description",
)  # fmt: skip
QUANTITY_COLUMNS = ("qty", "quantity", "count", "amount", "pcs")
DELIMITERS = ",;\t"
MAX_ROWS = 100_000

# Enough lines for the sniffer to see the pattern; more only makes it slower.
_SNIFF_CHARS = 16 * 1024
# An optional sign, digits and one decimal point or comma ("1,5" is how much of
# Europe writes 1.5); no exponents, "nan", "inf" or "1_000", which float() accepts.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)")

BomChangeKind = Literal["added", "removed", "changed"]


class BomParseError(ValueError):
    """The text is not CSV with a header row; the message is meant for people."""


@dataclass(frozen=True)
class BomChange:
    kind: BomChangeKind
    key: str
    old: dict[str, str] | None
    new: dict[str, str] | None
    quantity_delta: float | None
    changed_fields: list[str]


@dataclass(frozen=True)
class BomDiff:
    key_column: str
    quantity_column: str | None
    changes: list[BomChange]

    @property
    def added(self) -> int:
        return self._count("added")

    @property
    def removed(self) -> int:
        return self._count("removed")

    @property
    def changed(self) -> int:
        return self._count("changed")

    def _count(self, kind: BomChangeKind) -> int:
        return sum(1 for change in self.changes if change.kind == kind)


@dataclass(frozen=True)
class _Table:
    columns: dict[str, str]  # matching name → name as written, in file order
    rows: list[dict[str, str]]  # keyed by matching name


def is_bom_path(path: str) -> bool:
    """Whether a file may hold a BOM: any ``.csv`` (see the module docstring)."""
    return path.lower().endswith(".csv")


def diff_bom(old_text: str, new_text: str) -> BomDiff:
    """Compare two versions of a CSV BOM row by row; raise `BomParseError` if either
    is not CSV with a header row, or if they share no column to match rows by."""
    old = _parse(old_text, "old")
    new = _parse(new_text, "new")
    if old is None and new is None:
        raise BomParseError("Neither version of the file has any content to compare.")
    names = _column_names(old, new)
    shared = [name for name in names if _has_column(old, name) and _has_column(new, name)]
    if not shared:
        raise BomParseError(
            "The old and new versions have no column in common, so their rows cannot be matched."
        )
    quantity = _first_of(QUANTITY_COLUMNS, shared)
    key = _first_of(KEY_COLUMNS, shared) or next((name for name in shared if name != quantity), shared[0])
    old_rows = _keyed(old, key)
    new_rows = _keyed(new, key)
    changes = [
        change
        for name, row in new_rows.items()
        if (change := _compare(name, old_rows.get(name), row, names, quantity)) is not None
    ]
    changes += [
        change
        for name, row in old_rows.items()
        if name not in new_rows and (change := _compare(name, row, None, names, quantity)) is not None
    ]
    return BomDiff(
        key_column=names[key],
        quantity_column=names[quantity] if quantity else None,
        changes=[_displayed(change, names) for change in changes],
    )


def _parse(text: str, version: str) -> _Table | None:
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None
    if "\0" in text:
        raise BomParseError(f"The {version} version is a binary file, not CSV.")
    reader = csv.reader(
        io.StringIO(text, newline=""),
        delimiter=_sniff_delimiter(text),
        skipinitialspace=True,
        strict=True,
    )
    try:
        lines = (cells for cells in reader if any(cell.strip() for cell in cells))
        columns = _header(next(lines, []), version)
        names = list(columns)
        rows: list[dict[str, str]] = []
        for cells in lines:
            if len(rows) == MAX_ROWS:
                raise BomParseError(
                    f"The {version} version has too many rows to compare (more than {MAX_ROWS:,})."
                )
            rows.append(_row(cells, names, version, reader.line_num))
    except csv.Error as error:
        raise BomParseError(
            f"The {version} version is not valid CSV (line {reader.line_num}: {error})."
        ) from error
    return _Table(columns, rows)


def _sniff_delimiter(text: str) -> str:
    sample = text[:_SNIFF_CHARS]
    # Cut at a line end: a half line looks inconsistent to the sniffer.
    if len(text) > _SNIFF_CHARS and "\n" in sample:
        sample = sample[: sample.rindex("\n")]
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        return ","


def _header(cells: list[str], version: str) -> dict[str, str]:
    names = [cell.strip() for cell in cells]
    # Spreadsheets often save a few empty columns after the real ones.
    while names and not names[-1]:
        names.pop()
    if sum(1 for name in names if name) < 2:
        raise BomParseError(
            f"The {version} version does not start with a header row: a bill of "
            "materials needs at least two named columns."
        )
    if any(_parse_quantity(name) is not None for name in names):
        raise BomParseError(
            f"The first row of the {version} version holds numbers, so it looks like "
            "data rather than a header row of column names."
        )
    names = [name or f"Column {number}" for number, name in enumerate(names, start=1)]
    matching = _disambiguated(_matching_name(name) for name in names)
    # A repeated column gets the same " (2)" suffix on its written name.
    return {
        match: name + match[len(_matching_name(name)) :] for name, match in zip(names, matching, strict=True)
    }


def _row(cells: list[str], columns: list[str], version: str, line: int) -> dict[str, str]:
    if any(cell.strip() for cell in cells[len(columns) :]):
        raise BomParseError(
            f"Line {line} of the {version} version has more values than the header has columns."
        )
    # Short rows are common (trailing empty cells left out) and mean empty values.
    cells = cells + [""] * (len(columns) - len(cells))
    return {column: cell.strip() for column, cell in zip(columns, cells, strict=False)}


def _matching_name(name: str) -> str:
    return " ".join(name.split()).lower()


def _disambiguated(names: Iterable[str]) -> list[str]:
    """The names with " (2)", " (3)"… added to repeats so that every one is unique."""
    taken: set[str] = set()
    last_number: dict[str, int] = {}
    unique_names = []
    for name in names:
        unique = name
        # Remembering the last number keeps thousands of repeats linear; the loop
        # only spins when a real name happens to look like a numbered repeat.
        while unique in taken:
            last_number[name] = last_number.get(name, 1) + 1
            unique = f"{name} ({last_number[name]})".lstrip()
        taken.add(unique)
        unique_names.append(unique)
    return unique_names


def _column_names(old: _Table | None, new: _Table | None) -> dict[str, str]:
    # The new version's names and order first: that is the file people look at now.
    names = dict(new.columns) if new else {}
    for match, name in old.columns.items() if old else ():
        names.setdefault(match, name)
    return names


def _has_column(table: _Table | None, name: str) -> bool:
    # A missing version has no header to disagree with.
    return table is None or name in table.columns


def _first_of(candidates: Iterable[str], names: list[str]) -> str | None:
    return next((name for name in candidates if name in names), None)


def _keyed(table: _Table | None, key: str) -> dict[str, dict[str, str]]:
    rows = table.rows if table else []
    keys = _disambiguated(row[key] for row in rows)
    return dict(zip(keys, rows, strict=True))


def _compare(
    key: str,
    old: dict[str, str] | None,
    new: dict[str, str] | None,
    columns: Iterable[str],
    quantity: str | None,
) -> BomChange | None:
    old_quantity = _quantity_in(old, quantity)
    new_quantity = _quantity_in(new, quantity)
    if old is None:
        return BomChange("added", key, None, new, new_quantity, [])
    if new is None:
        removed = None if old_quantity is None else 0.0 - old_quantity
        return BomChange("removed", key, old, None, removed, [])
    changed = [
        column for column in columns if _differs(column, old.get(column, ""), new.get(column, ""), quantity)
    ]
    if not changed:
        return None
    delta = new_quantity - old_quantity if old_quantity is not None and new_quantity is not None else None
    return BomChange("changed", key, old, new, delta, changed)


def _differs(column: str, old: str, new: str, quantity: str | None) -> bool:
    if column == quantity:
        # "2" and "2.0" are the same quantity written differently.
        old_number, new_number = _parse_quantity(old), _parse_quantity(new)
        if old_number is not None and new_number is not None:
            return old_number != new_number
    return old != new


def _quantity_in(row: dict[str, str] | None, quantity: str | None) -> float | None:
    if row is None or quantity is None:
        return None
    return _parse_quantity(row.get(quantity, ""))


def _parse_quantity(text: str) -> float | None:
    text = text.strip()
    if not _NUMBER.fullmatch(text):
        return None
    number = float(text.replace(",", "."))
    # Hundreds of digits overflow to infinity, which no subtraction can use.
    return number if math.isfinite(number) else None


def _displayed(change: BomChange, names: dict[str, str]) -> BomChange:
    """The change with columns under the names people wrote rather than matching names."""

    def written(row: dict[str, str] | None) -> dict[str, str] | None:
        return None if row is None else {names[column]: value for column, value in row.items()}

    return BomChange(
        change.kind,
        change.key,
        written(change.old),
        written(change.new),
        change.quantity_delta,
        [names[column] for column in change.changed_fields],
    )


@dataclass(frozen=True)
class BomLine:
    """One part of a BOM, for adding BOMs up: its key, how many (1 when the BOM has no
    quantity column or the cell is not a number), and its description if any."""

    key: str
    quantity: float
    description: str


def bom_lines(text: str) -> list[BomLine]:
    """The parts of a CSV BOM, keyed as `diff_bom` keys them; raises `BomParseError`.
    Repeated keys are added together here: a rolled-up BOM counts parts, not rows."""
    table = _parse(text, "")
    if table is None:
        return []
    names = list(table.columns)
    quantity = _first_of(QUANTITY_COLUMNS, names)
    key = _first_of(KEY_COLUMNS, names) or next((name for name in names if name != quantity), names[0])
    described = next(
        (name for name in ("description", "name", "item") if name in names and name != key), None
    )
    lines: dict[str, BomLine] = {}
    for row in table.rows:
        name = row.get(key, "").strip()
        if not name:
            continue
        count = _quantity_in(row, quantity)
        count = 1.0 if count is None else count
        earlier = lines.get(name)
        lines[name] = BomLine(
            key=name,
            quantity=count + (earlier.quantity if earlier else 0.0),
            description=earlier.description if earlier else (row.get(described, "") if described else ""),
        )
    return list(lines.values())
