"""The rules a push must pass (designs/push_rules.py), run by git as the pre-receive hook
(designs/hooks/).

It runs in git's process tree without Django: the view that starts git passes the
design's rules in FABHUB_* environment variables. Messages go to stderr, which git
shows the pusher as `remote: …` lines.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

if __name__ == "__main__" and "hub" not in sys.modules:
    # git starts this file afresh for every push. The `hub` package's __init__ starts the
    # Celery app, whose imports took longer than the rules themselves on a small push
    # (and ~0.3 s on any): the rules use none of it, so hub's modules load without it.
    _hub = types.ModuleType("hub")
    _hub.__path__ = [str(Path(__file__).resolve().parent.parent / "hub")]
    sys.modules["hub"] = _hub

from designs.git import Repository  # noqa: E402
from designs.push_rules import PushRules, push_errors  # noqa: E402


def main() -> int:
    updates = []
    errors = []
    # git passes ref names as bytes it never checked for an encoding: the hub stores,
    # shows and serves them as text, so a name that is not UTF-8 is refused here.
    for line in sys.stdin.buffer:
        old, new, raw_ref = line.split()
        try:
            ref = raw_ref.decode("utf-8")
        except UnicodeDecodeError:
            shown = raw_ref.decode("utf-8", errors="backslashreplace")
            errors.append(f"{shown}: ref names must be UTF-8 text.")
            continue
        updates.append((old.decode("ascii"), new.decode("ascii"), ref))
    repo = Repository(os.environ.get("GIT_DIR", "."))
    errors += push_errors(repo, updates, PushRules.from_env(dict(os.environ)))
    for error in errors:
        print(f"fabhub: {error}", file=sys.stderr)
    if errors:
        print("fabhub: push refused; nothing was changed.", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
