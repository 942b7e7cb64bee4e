"""Durable key/value state for a restartable party, in its ledger's SQLite database.

Implements the actors' ``StateStore`` port. It shares the ledger's connection, so a write
made inside ``books.atomic()`` commits or rolls back with the ledger work of the same
protocol step: after a crash the payment center's transactions and its money agree.
Each write is one SQL statement (atomic by itself: no savepoint needed); only a batch of
more than :data:`ROWS_PER_STATEMENT` rows takes several, inside a savepoint.

Two tables: ``party_state`` holds JSON documents by (table, key); ``outbox`` holds the
sealed SMS of committed steps not yet known to be sent, one row each with the envelope as a
BLOB (a rowid table: a staged SMS is one row on one leaf page, no overflow pages).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import orjson

from mpay.books.ledger import Ledger

_PARTY_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS party_state (
    tbl   TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (tbl, key)
) WITHOUT ROWID
"""

_OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY,
    recipient   TEXT NOT NULL,
    type        TEXT NOT NULL,
    contract_no TEXT,
    envelope    BLOB NOT NULL
)
"""

#: the ``party_state`` table where an earlier version kept the outbox (hex in JSON)
_LEGACY_OUTBOX_TABLE = "outbox"

#: most rows one multi-row statement writes or deletes (5 variables each at most: far
#: below SQLite's limit of 32766); a larger batch runs as several inside a savepoint
ROWS_PER_STATEMENT = 256


#: the fallback for what orjson refuses (integers beyond 64 bits, non-string keys)
_STDLIB_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def encode_document(value: dict) -> str:
    """Compact JSON with sorted keys: one canonical text per document. orjson writes it
    several times faster than the stdlib; a transaction writes 17 documents."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except orjson.JSONEncodeError:
        return _STDLIB_JSON.encode(value)


_UPSERT_TAIL = " ON CONFLICT (tbl, key) DO UPDATE SET value = excluded.value"
_UPSERT = "INSERT INTO party_state (tbl, key, value) VALUES (?, ?, ?)" + _UPSERT_TAIL
_OUTBOX_INSERT = "INSERT INTO outbox (seq, recipient, type, contract_no, envelope) VALUES "


def _upsert_rows(count: int) -> str:
    """One upsert of ``count`` documents. Rows are applied in order, so a key given twice
    ends with its last value, as with ``count`` single puts."""
    return "INSERT INTO party_state (tbl, key, value) VALUES " + ",".join(["(?,?,?)"] * count) + _UPSERT_TAIL


class SqliteStateStore:
    """Tables of JSON documents keyed by text, and the outbox, in the ledger's database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    @classmethod
    async def open(cls, ledger: Ledger) -> "SqliteStateStore":
        """Create the tables if needed; move an outbox kept by an earlier version (JSON
        documents in ``party_state``) into the ``outbox`` table, so a restart sends it."""

        def setup(c: sqlite3.Connection) -> None:
            c.execute(_PARTY_STATE_SCHEMA)
            c.execute(_OUTBOX_SCHEMA)
            legacy = c.execute(
                "SELECT key, value FROM party_state WHERE tbl = ?", (_LEGACY_OUTBOX_TABLE,)
            ).fetchall()
            if legacy:
                rows = []
                for key, value in legacy:
                    record = json.loads(value)
                    rows.append(
                        (int(key), record["to"], record["type"], record["contract_no"], bytes.fromhex(record["envelope"]))
                    )
                c.executemany(_OUTBOX_INSERT + "(?,?,?,?,?)", rows)
                c.execute("DELETE FROM party_state WHERE tbl = ?", (_LEGACY_OUTBOX_TABLE,))

        await ledger.run_sync(setup)
        return cls(ledger)

    # -- documents --

    async def put(self, table: str, key: str, value: dict) -> None:
        await self._ledger.execute(_UPSERT, (table, key, encode_document(value)))

    async def put_many(self, items: Sequence[tuple[str, str, dict]]) -> None:
        """Several ``(table, key, value)`` puts, all or none, in order: one statement (past
        :data:`ROWS_PER_STATEMENT`, several in a savepoint or a transaction of their own)."""
        if len(items) <= ROWS_PER_STATEMENT:
            if items:
                params = [p for table, key, value in items for p in (table, key, encode_document(value))]
                await self._ledger.execute(_upsert_rows(len(items)), params)
            return
        rows = [(table, key, encode_document(value)) for table, key, value in items]
        await self._ledger.run_sync(lambda c: c.executemany(_UPSERT, rows))

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

    # -- the outbox --

    async def outbox_add(self, entries: Sequence[tuple[int, str, str, str | None, bytes]]) -> None:
        """Stage sealed SMS ``(seq, recipient, type, contract_no, envelope)``, all or none, as
        :meth:`put_many` does; a sequence number already staged is refused (IntegrityError)."""
        if len(entries) > ROWS_PER_STATEMENT:
            rows = list(entries)
            await self._ledger.run_sync(lambda c: c.executemany(_OUTBOX_INSERT + "(?,?,?,?,?)", rows))
        elif entries:
            params = [p for entry in entries for p in entry]
            await self._ledger.execute(_OUTBOX_INSERT + ",".join(["(?,?,?,?,?)"] * len(entries)), params)

    async def outbox_remove(self, seqs: Sequence[int]) -> None:
        """Forget sent SMS by sequence number, all or none, as :meth:`put_many` does: after a
        step's commit that is one statement, committed by itself."""
        if len(seqs) > ROWS_PER_STATEMENT:
            rows = [(seq,) for seq in seqs]
            await self._ledger.run_sync(lambda c: c.executemany("DELETE FROM outbox WHERE seq = ?", rows))
        elif seqs:
            marks = ",".join("?" * len(seqs))
            await self._ledger.execute(f"DELETE FROM outbox WHERE seq IN ({marks})", tuple(seqs))

    async def outbox_load(self) -> list[tuple[int, str, str, str | None, bytes]]:
        """Every staged SMS ``(seq, recipient, type, contract_no, envelope)``, by sequence number."""
        rows = await self._ledger.execute(
            "SELECT seq, recipient, type, contract_no, envelope FROM outbox ORDER BY seq"
        )
        return [tuple(row) for row in rows]  # type: ignore[misc]
