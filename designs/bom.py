"""Row-level comparison of CSV bills of materials.

Rows are matched by a key column (part, reference, item…); a row's quantity change is
reported as a number so "bolts 4 → 6" reads as +2, not as a removed and an added line.
Rows sharing a key are merged and their quantities summed, as a BOM means it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

KEY_COLUMNS = ("part", "part number", "part_number", "part no", "reference", "ref", "item", "name", "id", "sku", "description")
QUANTITY_COLUMNS = ("qty", "quantity", "count", "amount", "pcs")
MAX_ROWS = 100_000


class BomParseError(ValueError):
    pass


@dataclass(frozen=True)
class BomChange:
    kind: str  # "added" | "removed" | "changed"
    key: str
    old: dict[str, str] | None
    new: dict[str, str] | None
    quantity_delta: float | None
    changed_fields: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BomDiff:
    key_column: str
    quantity_column: str | None
    changes: list[BomChange]

    def _count(self, kind: str) -> int:
        return sum(1 for c in self.changes if c.kind == kind)

    @property
    def added(self) -> int:
        return self._count("added")

    @property
    def removed(self) -> int:
        return self._count("removed")

    @property
    def changed(self) -> int:
        return self._count("changed")


def is_bom_path(path: str) -> bool:
    """Every CSV file is treated as a BOM candidate; one that doesn't parse falls back to text."""
    return path.lower().endswith(".csv")


def _quantity(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value.strip().replace(",", "."))
    except ValueError:
        return None


def _parse(text: str) -> tuple[list[str], list[dict[str, str]]]:
    text = text.lstrip("\ufeff")
    if not text.strip():
        raise BomParseError("The file is empty: a bill of materials needs a header row.")
    sample = text[:4096]
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = csv.reader(io.StringIO(text), dialect)
    try:
        header = [h.strip() for h in next(rows)]
        if len(header) < 2 or len(set(h.lower() for h in header)) != len(header) or not all(header):
            raise BomParseError("The first row is not a header of distinct column names.")
        records = []
        for number, row in enumerate(rows, start=1):
            if number > MAX_ROWS:
                raise BomParseError(f"The file has too many rows for a BOM diff (over {MAX_ROWS:,}).")
            if not any(cell.strip() for cell in row):
                continue
            records.append({name: (row[i].strip() if i < len(row) else "") for i, name in enumerate(header)})
    except csv.Error as exc:
        raise BomParseError(f"Not a readable CSV file: {exc}.") from exc
    return header, records


def _pick(header: list[str], wanted: tuple[str, ...]) -> str | None:
    lowered = {h.lower(): h for h in header}
    return next((lowered[name] for name in wanted if name in lowered), None)


def _index(records: list[dict[str, str]], key: str, quantity: str | None) -> dict[str, dict[str, str]]:
    merged: dict[str, dict[str, str]] = {}
    for record in records:
        name = record.get(key, "")
        if name in merged and quantity:
            total = (_quantity(merged[name].get(quantity)) or 0) + (_quantity(record.get(quantity)) or 0)
            merged[name] = {**merged[name], quantity: f"{total:g}"}
        else:
            merged[name] = record
    return merged


def diff_bom(old_text: str, new_text: str) -> BomDiff:
    old_header, old_records = _parse(old_text) if old_text.strip() else ([], [])
    new_header, new_records = _parse(new_text) if new_text.strip() else ([], [])
    header = new_header or old_header
    if not header:
        raise BomParseError("Neither version has a header row.")
    key = _pick(header, KEY_COLUMNS) or header[0]
    quantity = _pick(header, QUANTITY_COLUMNS)
    old = _index(old_records, key, quantity)
    new = _index(new_records, key, quantity)
    changes = []
    for name, record in new.items():
        before = old.get(name)
        if before is None:
            changes.append(BomChange("added", name, None, record, _quantity(record.get(quantity)) if quantity else None))
            continue
        fields = [f for f in sorted(set(before) | set(record)) if before.get(f, "") != record.get(f, "")]
        if fields:
            delta = None
            if quantity:
                old_q, new_q = _quantity(before.get(quantity)), _quantity(record.get(quantity))
                if old_q is not None and new_q is not None:
                    delta = new_q - old_q
            changes.append(BomChange("changed", name, before, record, delta, fields))
    for name, record in old.items():
        if name not in new:
            removed_q = _quantity(record.get(quantity)) if quantity else None
            changes.append(BomChange("removed", name, record, None, -removed_q if removed_q is not None else None))
    return BomDiff(key, quantity, changes)
