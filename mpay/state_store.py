"""Durable key/value state for a restartable party, in its ledger's SQLite database.

Implements the actors' ``StateStore`` port. It shares the ledger's connection, so a write
made inside ``books.atomic()`` commits or rolls back with the ledger work of the same
protocol step: after a crash the payment center's transactions and its money agree.
Each ``put`` and ``delete`` is one SQL statement (atomic by itself: no savepoint needed).
"""

from __future__ import annotations

import json

import orjson

from mpay.ledger import Ledger

_SCHEMA = """
CREATE TABLE IF NOT EXISTS party_state (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID
"""


#: the fallback for what orjson refuses (integers beyond 64 bits, non-string keys)
_STDLIB_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def encode_document(value: dict) -> str:
    """Compact JSON with sorted keys: one canonical text per document. orjson writes it
    several times faster than the stdlib; a put happens 21 times per transaction."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return _STDLIB_JSON.encode(value)
_UPSERT = (
    "INSERT INTO party_state (tbl, key, value) VALUES (?, ?, ?) "
    "ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value"
)


class SqliteStateStore:
    """Tables of JSON documents keyed by text, in the ledger's database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @classmethod
    async def open(cls, ledger: Ledger) -> "SqliteStateStore":
        await ledger.execute(_SCHEMA)
        return cls(ledger)

    async def put(self, table: str, key: str, value: dict) -> None:
        await self._ledger.execute(_UPSERT, (table, key, encode_document(value)))

    async def delete(self, table: str, key: str) -> None:
        await self._ledger.execute("DELETE FROM party_state WHERE tbl = ? AND key = ?", (table, key))

    async def delete_many(self, table: str, keys: list[str]) -> None:
        """One statement, so all or none without a transaction block of its own."""
        if keys:
            marks = ",".join("?" * len(keys))
            await self._ledger.execute(
                f"DELETE FROM party_state WHERE tbl = ? AND key IN ({marks})", (table, *keys)
            )

    async def load(self, table: str) -> dict[str, dict]:
        rows = await self._ledger.execute(
            "SELECT key, value FROM party_state WHERE tbl = ? ORDER BY key", (table,)
        )
        return {key: json.loads(value) for key, value in rows}
