"""What a test asks of this process's own child processes."""

from __future__ import annotations

import os
from pathlib import Path


def git_children() -> list[str]:
    """The pids of this process's git child processes, zombies included: found by their
    name (/proc/<pid>/comm), which a zombie keeps, not by their command line, which it
    has lost."""
    found = []
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            try:
                name = Path(f"/proc/{pid}/comm").read_text().strip()
            except OSError:
                continue
            if name == "git":
                found.append(pid)
    return found
