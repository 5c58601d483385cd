"""Small typed readers of the environment, so settings say what they expect."""

from __future__ import annotations

import os

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return int(value)


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


def env_mapping(name: str) -> dict[str, list[str]]:
    """`KEY=value value, KEY2=value`: comma-separated entries, each a key and its
    space-separated values (the trust list: issuer address or DID = public keys)."""
    mapping: dict[str, list[str]] = {}
    for entry in env_list(name, []):
        key, separator, values = entry.partition("=")
        if not separator or not key.strip() or not values.split():
            raise ImproperlyConfigured(f"{name}: {entry!r} is not KEY=value [value …]")
        mapping.setdefault(key.strip(), []).extend(values.split())
    return mapping
