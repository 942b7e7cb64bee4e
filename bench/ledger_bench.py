"""Ledger postings per second next to a plain SQLite insert loop, in the same run.

    .venv/bin/python bench/ledger_bench.py [--n N] [--memory] [--synchronous NORMAL|FULL]

Two workloads, each measured for the ledger and for the plain loop on the same rows:

* ``commit each``: every posting is its own transaction (one protocol step = one commit).
  Ledger: ``create_transfer`` (validation, idempotency check, two balance updates, one
  append-only row). Plain: aiosqlite ``execute(INSERT)`` + ``commit()`` of the same row
  into a table of the same columns, no triggers, no balances.
* ``one transaction``: N postings inside one ``atomic()`` block vs N inserts and one commit.

A third line, plain ``sqlite3`` without aiosqlite, shows what the thread hop costs.
Files live in a temporary WAL directory (``--memory``: ``:memory:`` databases).
This is a measurement script, not a test: figures vary with the machine and its load.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiosqlite  # noqa: E402

from mpay.books.ledger import DEBITS_MUST_NOT_EXCEED_CREDITS, Ledger, Transfer  # noqa: E402

PLAIN_SCHEMA = (
    "CREATE TABLE plain_transfers (id TEXT PRIMARY KEY, debit_account TEXT NOT NULL, "
    "credit_account TEXT NOT NULL, amount INTEGER NOT NULL, currency TEXT NOT NULL, flags INTEGER NOT NULL, "
    "pending_id TEXT, timeout_s REAL, expires_at_s REAL, code TEXT NOT NULL, user_data TEXT NOT NULL, "
    "at_s REAL NOT NULL)"
)
PLAIN_INSERT = "INSERT INTO plain_transfers VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"


def _row(prefix: str, i: int) -> tuple:
    return (f"{prefix}{i}", "source", "wallet", 100, "CNY", 0, None, None, None, "bench", f"c{i}", float(i))


def _db(tmp: Path | None, name: str) -> str:
    return ":memory:" if tmp is None else str(tmp / f"{name}.db")


async def _ledger(tmp: Path | None, name: str, synchronous: str, inline: bool = False) -> Ledger:
    ledger = await Ledger.open(_db(tmp, name), name=name, synchronous=synchronous, inline=inline)
    await ledger.create_account("source", "CNY")
    await ledger.create_account("wallet", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS)
    return ledger


async def _plain(tmp: Path | None, name: str, synchronous: str) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(_db(tmp, name))
    if tmp is not None:
        await conn.execute("PRAGMA journal_mode=WAL")
    await conn.execute(f"PRAGMA synchronous={synchronous}")
    await conn.execute(PLAIN_SCHEMA)
    await conn.commit()
    return conn


async def ledger_commit_each(tmp: Path | None, n: int, synchronous: str, inline: bool = False) -> float:
    """One posting per SQL transaction; ``inline`` runs the SQL on the loop's thread (the
    simulator's mode) instead of aiosqlite's worker thread. Each mode writes a database of
    its own: the same ids in a used one would only find their transfers (``EXISTS``)."""
    ledger = await _ledger(tmp, "ledger_inline" if inline else "ledger_each", synchronous, inline)
    t0 = time.perf_counter()
    for i in range(n):
        await ledger.create_transfer(
            Transfer(f"t{i}", "source", "wallet", 100, "CNY", code="bench", user_data=f"c{i}"), now_s=float(i)
        )
    dt = time.perf_counter() - t0
    await ledger.close()
    return n / dt


async def plain_commit_each(tmp: Path | None, n: int, synchronous: str) -> float:
    conn = await _plain(tmp, "plain_each", synchronous)
    t0 = time.perf_counter()
    for i in range(n):
        await conn.execute(PLAIN_INSERT, _row("t", i))
        await conn.commit()
    dt = time.perf_counter() - t0
    await conn.close()
    return n / dt


async def ledger_one_tx(tmp: Path | None, n: int, synchronous: str) -> float:
    ledger = await _ledger(tmp, "ledger_one", synchronous)
    t0 = time.perf_counter()
    async with ledger.atomic():
        for i in range(n):
            await ledger.create_transfer(
                Transfer(f"t{i}", "source", "wallet", 100, "CNY", code="bench", user_data=f"c{i}"), now_s=float(i)
            )
    dt = time.perf_counter() - t0
    await ledger.close()
    return n / dt


async def plain_one_tx(tmp: Path | None, n: int, synchronous: str) -> float:
    conn = await _plain(tmp, "plain_one", synchronous)
    t0 = time.perf_counter()
    for i in range(n):
        await conn.execute(PLAIN_INSERT, _row("t", i))
    await conn.commit()
    dt = time.perf_counter() - t0
    await conn.close()
    return n / dt


def sqlite3_commit_each(tmp: Path | None, n: int, synchronous: str) -> float:
    conn = sqlite3.connect(_db(tmp, "sqlite3_each"))
    if tmp is not None:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(PLAIN_SCHEMA)
    conn.commit()
    t0 = time.perf_counter()
    for i in range(n):
        conn.execute(PLAIN_INSERT, _row("t", i))
        conn.commit()
    dt = time.perf_counter() - t0
    conn.close()
    return n / dt


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="postings per measurement (default 5000)")
    parser.add_argument("--memory", action="store_true", help="use :memory: databases instead of WAL files")
    parser.add_argument("--synchronous", default="NORMAL", choices=["NORMAL", "FULL"])
    args = parser.parse_args(argv)
    if args.n < 1:
        print("ledger_bench: --n must be at least 1", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mpay-bench-") as d:
        tmp = None if args.memory else Path(d)
        where = ":memory:" if tmp is None else f"WAL files, synchronous={args.synchronous}"
        versions = f"Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version}"
        print(f"ledger benchmark: n={args.n}, {where}, {versions}")
        for label, ledger_fn, plain_fn in (
            ("commit each", ledger_commit_each, plain_commit_each),
            ("one transaction", ledger_one_tx, plain_one_tx),
        ):
            # warm up both paths once (imports, page cache), then measure
            await ledger_fn(None, min(200, args.n), args.synchronous)
            ledger_rate = await ledger_fn(tmp, args.n, args.synchronous)
            plain_rate = await plain_fn(tmp, args.n, args.synchronous)
            print(
                f"  {label:16s} ledger {ledger_rate:10,.0f} postings/s   plain aiosqlite inserts "
                f"{plain_rate:10,.0f} rows/s   ratio {ledger_rate / plain_rate:.2f}"
            )
        inline_rate = await ledger_commit_each(tmp, args.n, args.synchronous, inline=True)
        raw = sqlite3_commit_each(tmp, args.n, args.synchronous)
        print(
            f"  {'inline, each':16s} ledger {inline_rate:10,.0f} postings/s   plain sqlite3 inserts    "
            f"{raw:10,.0f} rows/s   ratio {inline_rate / raw:.2f}   (no thread hop on either side)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
