"""The agent's durable state: one SQLite file that outlives restarts of either side.

- the **outbox**: reports numbered 1, 2, 3… in the order they happened, kept until the hub
  confirms it applied them (`accepted_through`), then dropped; a report is written here
  before it is ever sent, so a hub outage or an agent restart loses none;
- the **commands** the agent took on, by id: a command is marked *running* before it
  touches a printer and *done* in the same transaction that queues its answer, so a
  command delivered again (the hub never saw the answer) is never run twice.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (seq INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY, status TEXT NOT NULL, body TEXT NOT NULL, at REAL NOT NULL
);
"""


class AgentState:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a report the agent counted is on disk
        self._db.executescript(SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE name = 'instance'").fetchone()
        if row is None:
            # A new state: a new id, so the hub knows this agent's numbering starts afresh.
            self._db.execute(
                "INSERT INTO meta (name, value) VALUES ('instance', ?)", (secrets.token_hex(16),)
            )
            row = self._db.execute("SELECT value FROM meta WHERE name = 'instance'").fetchone()
        self.instance: str = row[0]

    def close(self) -> None:
        self._db.close()

    # -- the outbox

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _insert_report(self, report: dict[str, Any]) -> int:
        row = self._db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        seq = (row[0] if row else 0) + 1
        self._db.execute("INSERT OR REPLACE INTO counters (name, value) VALUES ('seq', ?)", (seq,))
        self._db.execute(
            "INSERT INTO outbox (seq, body) VALUES (?, ?)", (seq, json.dumps({**report, "seq": seq}))
        )
        return seq

    def append(self, report: dict[str, Any]) -> int:
        """Number `report` with the next sequence number and keep it until acknowledged."""
        with self._transaction():
            return self._insert_report(report)

    def pending(self, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM outbox ORDER BY seq LIMIT ?", (limit,)).fetchall()
        return [json.loads(body) for (body,) in rows]

    def next_seq(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'seq'").fetchone()
        return (row[0] if row else 0) + 1

    def pending_count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM outbox").fetchone()[0])

    def acknowledge(self, through: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq <= ?", (through,))

    # -- commands

    def command_status(self, command_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT status FROM commands WHERE id = ?", (command_id,)).fetchone()
        return row[0] if row else None

    def command_begin(self, command: dict[str, Any]) -> bool:
        """Take the command on; False if it was taken on before (by this or another run)."""
        with self._lock:
            cursor = self._db.execute(
                "INSERT OR IGNORE INTO commands (id, status, body, at) VALUES (?, 'running', ?, ?)",
                (command["id"], json.dumps(command), time.time()),
            )
            return cursor.rowcount == 1

    def command_finish(self, command_id: str, answer: dict[str, Any]) -> int:
        """Mark the command done and queue its answer, in one transaction."""
        with self._transaction():
            self._db.execute(
                "UPDATE commands SET status = 'done', at = ? WHERE id = ?", (time.time(), command_id)
            )
            return self._insert_report(answer)

    def running_commands(self) -> list[dict[str, Any]]:
        """Commands begun but not finished: the agent stopped while running them."""
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM commands WHERE status = 'running' ORDER BY at"
            ).fetchall()
        return [json.loads(body) for (body,) in rows]

    def forget_commands_before(self, at: float) -> None:
        with self._lock:
            self._db.execute("DELETE FROM commands WHERE status = 'done' AND at < ?", (at,))
