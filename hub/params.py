"""Query parameters read strictly: a value the schema does not allow is a 400 naming the
parameter, never a silent default (`?unread=yes` must not list everything, `?id=x` must
not mark every notification read)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hub.exceptions import ValidationError


def _single(params: Any, name: str) -> str | None:
    values = params.getlist(name)
    if not values:
        return None
    if len(values) > 1:
        raise ValidationError(f"Give {name} once, not {len(values)} times.", field=name)
    return values[0]


def positive_int(params: Any, *, name: str, default: int) -> int:
    """The parameter as a whole number from 1, or `default` when absent.

    Anything else — `true`, `abc`, `0`, `-1`, an empty value — is a 400.
    """
    value = _single(params, name)
    if value is None:
        return default
    if not value.isascii() or not value.isdigit() or int(value) < 1:
        raise ValidationError(f"{name} must be a positive whole number, got {value!r}.", field=name)
    return int(value)


def optional_id(params: Any, *, name: str) -> int | None:
    """An id (a whole number from 1), or None when absent."""
    if _single(params, name) is None:
        return None
    return positive_int(params, name=name, default=0)


def choice(params: Any, *, name: str, choices: Iterable[str]) -> str | None:
    """One of `choices`, or None when absent."""
    value = _single(params, name)
    if value is None:
        return None
    allowed = list(choices)
    if value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(allowed)}; got {value!r}.", field=name)
    return value


def flag(params: Any, *, name: str) -> bool:
    """`true` or `false` (the schema's boolean); absent is false."""
    value = _single(params, name)
    if value is None:
        return False
    if value not in ("true", "false"):
        raise ValidationError(f"{name} must be true or false, got {value!r}.", field=name)
    return value == "true"
