"""The import rules that import-linter cannot state: names, not modules.

import-linter (the contracts in pyproject.toml, run by `make test`) keeps the layers and
forbids cycles; these tests keep what it cannot see: a private `_name` taken from another
module, and a task queued by a name no module registers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from hub.queue import UnknownTask, enqueue, task_named

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("hub", "designs", "machines")
IMPORTERS = (*PACKAGES, "tests")


def source_files(packages: tuple[str, ...] = PACKAGES) -> list[Path]:
    return sorted(
        path
        for package in packages
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts
    )


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_module(node: ast.ImportFrom, importer: Path) -> str:
    if not node.level:
        return node.module or ""
    base = module_name(importer).split(".")
    keep = len(base) - node.level + (1 if importer.name == "__init__.py" else 0)
    return ".".join(base[:keep] + ([node.module] if node.module else []))


def test_no_private_name_is_imported_from_another_module():
    """What two modules share is public; a `_name` stays in the module that defines it."""
    crossings = []
    checked = 0
    for path in source_files(IMPORTERS):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            source = imported_module(node, path)
            if source.split(".")[0] not in PACKAGES:
                continue
            checked += 1
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    crossings.append(f"{module_name(path)} imports {source}.{alias.name}")
    assert checked >= 100  # the scan found the imports (a broken scan finds none)
    assert crossings == []


def queued_task_names() -> list[str]:
    names = []
    for path in source_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", getattr(node.func, "attr", None)) == "enqueue"
                and node.args
            ):
                first = node.args[0]
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path.relative_to(ROOT)}:{node.lineno} queues a task by something other than its name"
                )
                names.append(first.value)
    return names


def test_every_queued_task_name_is_a_registered_task():
    names = queued_task_names()
    assert len(names) >= 10  # the scan found the call sites (a broken scan finds none)
    for name in names:
        assert task_named(name).name == name


def test_queueing_an_unknown_task_fails_in_the_caller():
    with pytest.raises(UnknownTask, match="designs.tasks.no_such_task"):
        enqueue("designs.tasks.no_such_task", 1)
    with pytest.raises(UnknownTask, match="nowhere.tasks"):
        enqueue("nowhere.tasks.anything")
