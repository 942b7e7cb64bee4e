"""Durable key/value state for a restartable party, in its ledger's SQLite database.

Implements the actors' ``StateStore`` port. It shares the ledger's connection, so a write
made inside ``books.atomic()`` commits or rolls back with the ledger work of the same
protocol step: after a crash the payment center's transactions and its money agree.
"""

from __future__ import annotations

import json
import sqlite3

from mpay.ledger import Ledger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS party_state (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID
"""


class SqliteStateStore:
    """Tables of JSON documents keyed by text, in the ledger's database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @classmethod
    async def open(cls, ledger: Ledger) -> "SqliteStateStore":
        await ledger.execute(_SCHEMA)
        return cls(ledger)

    async def put(self, table: str, key: str, value: dict) -> None:
        document = json.dumps(value, separators=(",", ":"), sort_keys=True)
        await self._ledger.execute(
            "INSERT INTO party_state (tbl, key, value) VALUES (?, ?, ?) "
            "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value",
            (table, key, document),
        )

    async def delete(self, table: str, key: str) -> None:
        await self._ledger.execute("DELETE FROM party_state WHERE tbl = ? AND key = ?", (table, key))

    async def load(self, table: str) -> dict[str, dict]:
        def work(c: sqlite3.Connection) -> list[tuple[str, str]]:
            return c.execute(
                "SELECT key, value FROM party_state WHERE tbl = ? ORDER BY key", (table,)
            ).fetchall()

        return {key: json.loads(value) for key, value in await self._ledger.read(work)}
