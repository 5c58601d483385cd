"""Every door that mints a token says with what credential it was asked.

`hub.services.token_create` caps a new token by the credential that asks for it (no wider
scope, no later expiry). Its `credential` may be None only for the hub's own callers —
demo data and management commands — so a view or API that forgot it would let a
short-lived token buy a permanent one. This reads every call and says where.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRUSTED_CALLERS = ("demo.py", "management")


def calls_of(name: str):
    for package in ("hub", "designs", "machines"):
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts or any(part in path.parts for part in TRUSTED_CALLERS):
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    func = node.func
                    called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                    if called == name:
                        yield path.relative_to(ROOT), node


def test_every_token_minted_outside_demo_data_passes_the_asking_credential():
    calls = list(calls_of("token_create"))
    assert calls, "token_create is no longer called: update this test"
    unbounded = [
        f"{path}:{node.lineno}"
        for path, node in calls
        if not any(keyword.arg == "credential" for keyword in node.keywords)
    ]
    assert unbounded == []
