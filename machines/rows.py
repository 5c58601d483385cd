"""Rows of hand-written SQL as the ORM would read them: each value through its field's
database converters (dates, times, decimals, booleans and JSON on SQLite; few on
PostgreSQL), so that a hand-built Model instance or tuple holds the same values a queryset
would. Used where compiling a queryset cost more than running it: where-to-make, the
booking context and the dispatcher's candidates."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field
from django.db.models.expressions import Col

# (position in the row, the column's converters, the column they are called with)
Conversions = list[tuple[int, list[Callable[..., Any]], Col]]


def column_conversions(fields: Sequence[Field | None], db: BaseDatabaseWrapper) -> Conversions:
    """The converters of each field's column on `db`, by position in the row; a None
    field (a value read as it is) and fields without converters are left out."""
    found: Conversions = []
    for index, field in enumerate(fields):
        if field is None:
            continue
        column = field.get_col(field.model._meta.db_table)
        converters = db.ops.get_db_converters(column) + column.get_db_converters(db)
        if converters:
            found.append((index, converters, column))
    return found


def converted(values: list[Any], conversions: Conversions, db: BaseDatabaseWrapper) -> list[Any]:
    """`values` (one row, as a list) with each converted value in place; returned."""
    for index, converters, column in conversions:
        value = values[index]
        for convert in converters:
            value = convert(value, column, db)
        values[index] = value
    return values
