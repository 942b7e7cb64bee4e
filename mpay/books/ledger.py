"""A durable double-entry ledger on aiosqlite, modelled on TigerBeetle.

Accounts carry ``debits_pending/posted`` and ``credits_pending/posted``; transfers are
immutable rows (SQLite triggers refuse UPDATE and DELETE). A transfer moves ``amount`` from
its debit account to its credit account. Two-phase transfers are escrow: a *pending*
transfer (hold) reserves the amount; a later *post_pending* transfer settles all or part of
it (the rest is released) and a *void_pending* transfer releases it all. Each hold is
resolved at most once (a UNIQUE index on ``pending_id``), optionally expires after
``timeout_s`` of virtual time, and an expired hold can only be voided.

Every public operation is atomic, and :meth:`Ledger.atomic` groups them: the outermost
block is one ``BEGIN IMMEDIATE ... COMMIT``; operations and nested blocks inside it join it,
and a refused operation inside a larger protocol step leaves nothing behind while the step's
other writes stay. A savepoint is taken only where a failure could leave half of something:
around a nested block, a :meth:`Ledger.run_sync` function, and the writes of a transfer batch
(an INSERT, then the balance UPDATEs); validation only reads, and one SQL statement is atomic
by itself. Other stores sharing the database (the payment center's escrow state, the credit
bureau) write through :meth:`Ledger.execute`, :meth:`Ledger.run_one_write` or
:meth:`Ledger.run_sync` inside the same block, so one protocol step commits all-or-nothing.

The ledger never reads the wall clock: ``now_s`` is passed in, or taken from the injected
``clock`` callable (the simulator passes its virtual clock).

Performance: the work of one operation runs as one function (prepared statements cached by
sqlite3), not one call per SQL statement, and with few statements: a posting is BEGIN, one
SELECT of both accounts, the INSERT (whose primary key and unique ``pending_id`` stand in for
the idempotency and resolved-once lookups until they refuse), the balance UPDATEs, COMMIT.
By default (``inline=False``) that function runs on aiosqlite's worker thread, so the event
loop never blocks on the database. With ``inline=True`` it runs right on the event loop's
thread: a WAL commit with ``synchronous=NORMAL`` takes tens of microseconds, less than the
hop to the worker thread and back, and the virtual-time kernel waits for every handler
anyway, so a simulation loses nothing by blocking the loop that long and runs about a
quarter faster: the simulator's worlds use it (``mpay run --ledger-thread`` goes back to the
worker thread; figures in docs/performance.md). Same statements, transactions and
durability either way.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import math
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from mpay.actors.ports import (
    AccountExists,
    AmountInvalid,
    CurrencyMismatch,
    InsufficientFunds,
    LedgerError,
    PendingAlreadyResolved,
    PendingExpired,
    PendingNotFound,
    TransferIdConflict,
    TransferInvalid,
    UnknownAccount,
)
from mpay.books.checkpointer import WalCheckpointer

T = TypeVar("T")

# --- limits and flags -----------------------------------------------------------------------

#: Largest amount and largest balance column: SQLite's signed 64-bit INTEGER.
AMOUNT_MAX = 2**63 - 1
#: Longest account or transfer id.
MAX_ID_CHARS = 128
#: Longest currency code ("CNY", "PTS").
MAX_CURRENCY_CHARS = 8
#: Longest ``code`` (a short label: "hold", "settle", ...).
MAX_CODE_CHARS = 32
#: Longest ``user_data`` (e.g. a contract number).
MAX_USER_DATA_CHARS = 256
#: Most transfers in one ``create_transfers`` batch (TigerBeetle's batch size).
MAX_BATCH = 8190
#: Longest hold timeout: ten years of virtual time.
MAX_TIMEOUT_S = 10 * 365 * 86400.0

# Account flags (TigerBeetle names).
DEBITS_MUST_NOT_EXCEED_CREDITS = 1
CREDITS_MUST_NOT_EXCEED_DEBITS = 2
_ACCOUNT_FLAGS = DEBITS_MUST_NOT_EXCEED_CREDITS | CREDITS_MUST_NOT_EXCEED_DEBITS

# Transfer flags.
PENDING = 1
POST_PENDING = 2
VOID_PENDING = 4
LINKED = 8
_KIND_FLAGS = PENDING | POST_PENDING | VOID_PENDING

#: ``code`` of the void transfer written by :meth:`Ledger.expire_pending`.
EXPIRED_CODE = "expired"
#: Suffix of the id of that void transfer (``<pending_id>~expired``).
EXPIRED_SUFFIX = "~expired"

SCHEMA_VERSION = 1

#: WAL frames after which a commit checkpoints them into the database (SQLite's default is
#: 1000). Fewer checkpoints mean fewer fsyncs, and a page rewritten many times between two
#: checkpoints is copied once. The WAL file grows to about this many frames of 4120 bytes
#: (page and frame header): ~41 MB per ledger, reused from its start after each checkpoint.
WAL_AUTOCHECKPOINT_PAGES = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS ledger_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_accounts (
    id TEXT PRIMARY KEY,
    currency TEXT NOT NULL,
    flags INTEGER NOT NULL,
    code TEXT NOT NULL,
    debits_pending INTEGER NOT NULL DEFAULT 0 CHECK (debits_pending >= 0),
    debits_posted INTEGER NOT NULL DEFAULT 0 CHECK (debits_posted >= 0),
    credits_pending INTEGER NOT NULL DEFAULT 0 CHECK (credits_pending >= 0),
    credits_posted INTEGER NOT NULL DEFAULT 0 CHECK (credits_posted >= 0),
    at_s REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger_transfers (
    id TEXT PRIMARY KEY,
    debit_account TEXT NOT NULL,
    credit_account TEXT NOT NULL,
    amount INTEGER NOT NULL CHECK (amount > 0),
    currency TEXT NOT NULL,
    flags INTEGER NOT NULL,
    pending_id TEXT,
    timeout_s REAL,
    expires_at_s REAL,
    code TEXT NOT NULL,
    user_data TEXT NOT NULL,
    at_s REAL NOT NULL
);
-- each hold is resolved (posted, voided or expired) at most once
CREATE UNIQUE INDEX IF NOT EXISTS ledger_transfers_pending_once
    ON ledger_transfers (pending_id) WHERE pending_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS ledger_transfers_expiry
    ON ledger_transfers (expires_at_s) WHERE expires_at_s IS NOT NULL;
CREATE TRIGGER IF NOT EXISTS ledger_transfers_no_update
    BEFORE UPDATE ON ledger_transfers
    BEGIN SELECT RAISE(ABORT, 'ledger_transfers is append-only: UPDATE refused'); END;
CREATE TRIGGER IF NOT EXISTS ledger_transfers_no_delete
    BEFORE DELETE ON ledger_transfers
    BEGIN SELECT RAISE(ABORT, 'ledger_transfers is append-only: DELETE refused'); END;
"""

_T_COLS = (
    "id, debit_account, credit_account, amount, currency, flags, pending_id, timeout_s, "
    "expires_at_s, code, user_data, at_s"
)
_SQL_GET_TRANSFER = f"SELECT {_T_COLS} FROM ledger_transfers WHERE id = ?"
_SQL_INSERT_TRANSFER = f"INSERT INTO ledger_transfers ({_T_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
_SQL_RESOLVER = "SELECT id, flags, code FROM ledger_transfers WHERE pending_id = ?"
_A_COLS = (
    "id, currency, flags, code, debits_pending, debits_posted, credits_pending, "
    "credits_posted, at_s"
)
_SQL_GET_ACCOUNT = f"SELECT {_A_COLS} FROM ledger_accounts WHERE id = ?"
_SQL_UPDATE_ACCOUNT = (
    "UPDATE ledger_accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, "
    "credits_posted = ? WHERE id = ?"
)
#: what validating a transfer needs of an account: ``[currency, flags, dp, dpo, cp, cpo]``
_B_COLS = "currency, flags, debits_pending, debits_posted, credits_pending, credits_posted"
_SQL_GET_BALANCES = f"SELECT {_B_COLS} FROM ledger_accounts WHERE id = ?"
_SQL_GET_BALANCES_PAIR = (
    "SELECT d.currency, d.flags, d.debits_pending, d.debits_posted, d.credits_pending, d.credits_posted, "
    "c.currency, c.flags, c.debits_pending, c.debits_posted, c.credits_pending, c.credits_posted "
    "FROM ledger_accounts d, ledger_accounts c WHERE d.id = ? AND c.id = ?"
)
#: a transfer's flags and, if a hold, the flags and code of the transfer that resolved it
_SQL_HOLD_STATE = (
    "SELECT t.flags, r.flags, r.code FROM ledger_transfers t "
    "LEFT JOIN ledger_transfers r ON r.pending_id = t.id WHERE t.id = ?"
)


# --- records --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    """An account row. Balances are derived from the four TigerBeetle columns."""

    id: str
    currency: str
    flags: int = 0
    code: str = ""
    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0
    at_s: float = 0.0

    @property
    def credit_balance(self) -> int:
        """Posted credits - posted debits (a liability/wallet balance)."""
        return self.credits_posted - self.debits_posted

    @property
    def debit_balance(self) -> int:
        """Posted debits - posted credits (an asset balance, e.g. money at the bank)."""
        return self.debits_posted - self.credits_posted

    @property
    def available(self) -> int:
        """What a credit-normal account can still spend: posted credits - all debits."""
        return self.credits_posted - self.debits_posted - self.debits_pending


@dataclass(frozen=True, slots=True)
class Transfer:
    """A transfer request (and, read back, a stored transfer).

    For ``POST_PENDING`` / ``VOID_PENDING`` the accounts may be left empty and ``amount``
    ``None`` (post: all of the hold; void: the hold's amount); they are filled from the hold.
    ``currency`` ``None`` means "the accounts' currency".
    """

    id: str
    debit_account: str = ""
    credit_account: str = ""
    amount: int | None = None
    currency: str | None = None
    flags: int = 0
    pending_id: str | None = None
    timeout_s: float | None = None
    code: str = ""
    user_data: str = ""
    #: set when read back from the database
    at_s: float | None = None
    expires_at_s: float | None = None


#: ``create_transfers`` per-transfer results
CREATED = "created"
EXISTS = "exists"


def _transfer_from_row(row: Sequence[Any]) -> Transfer:
    return Transfer(
        id=row[0],
        debit_account=row[1],
        credit_account=row[2],
        amount=row[3],
        currency=row[4],
        flags=row[5],
        pending_id=row[6],
        timeout_s=row[7],
        expires_at_s=row[8],
        code=row[9],
        user_data=row[10],
        at_s=row[11],
    )


def _account_from_row(row: Sequence[Any]) -> Account:
    return Account(*row)


def _fail(exc: LedgerError, index: int, transfer_id: str) -> LedgerError:
    """Annotate a refusal with the batch position of the transfer that caused it."""
    exc.index = index  # type: ignore[attr-defined]
    exc.transfer_id = transfer_id  # type: ignore[attr-defined]
    return exc


def _check_text(value: object, what: str, limit: int, *, empty_ok: bool = False) -> None:
    if not isinstance(value, str) or (not value and not empty_ok) or len(value) > limit:
        raise TransferInvalid(f"{what} must be a string of 1..{limit} characters, got {value!r}")


def check_amount(amount: object, what: str = "amount") -> int:
    if type(amount) is not int or amount <= 0 or amount > AMOUNT_MAX:
        raise AmountInvalid(f"{what} must be an int in 1..{AMOUNT_MAX}, got {amount!r}")
    return amount


# --- the ledger ----------------------------------------------------------------------------


class Ledger:
    """One institution's books in one SQLite database. Open with :meth:`open`."""

    def __init__(
        self,
        conn: aiosqlite.Connection,
        raw: sqlite3.Connection,
        *,
        name: str,
        path: str,
        clock: Callable[[], float] | None,
    ) -> None:
        self._conn = conn
        self._raw = raw
        self.name = name
        self.path = path
        self._clock = clock
        self._lock = asyncio.Lock()
        #: token of the open outermost block; tasks whose context carries it are inside it
        self._block: object | None = None
        self._block_ctx: contextvars.ContextVar[object | None] = contextvars.ContextVar(
            f"ledger_block_{name}_{id(self)}", default=None
        )
        self._savepoints = itertools.count(1)
        self._closed = False
        self._inline = False
        #: checkpoints on a thread of their own (``checkpoint_thread=True``), else None
        self.checkpointer: WalCheckpointer | None = None

    # -- opening and closing --

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        name: str = "ledger",
        clock: Callable[[], float] | None = None,
        synchronous: str = "NORMAL",
        inline: bool = False,
        checkpoint_thread: bool = False,
    ) -> Ledger:
        """Open (creating if needed) the ledger database at ``path`` (or ``":memory:"``).

        WAL journal; ``synchronous="NORMAL"`` by default: a commit survives a process crash,
        and only an OS crash or power loss may lose the last commits (never half of one).
        ``"FULL"`` also survives power loss at the cost of an fsync per commit.

        The WAL is checkpointed every :data:`WAL_AUTOCHECKPOINT_PAGES` (10,000) pages, so
        the ``-wal`` file stays under about 41 MB while no other connection holds an old
        snapshot open (a reader that does makes it grow until it lets go).
        ``checkpoint_thread=True`` (the simulator's worlds): a thread of the ledger's own
        checkpoints every :data:`~mpay.books.checkpointer.CHECKPOINT_EVERY_COMMITS` commits, so a
        commit never waits for the copy and its fsyncs (:mod:`mpay.books.checkpointer`); the
        automatic checkpoint above stays as the backstop.
        """
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"synchronous must be NORMAL or FULL (or OFF/EXTRA), not {synchronous!r}")
        spath = str(path)
        # check_same_thread=False: with ``inline`` the loop's thread runs the SQL; aiosqlite's
        # thread only opens and closes the connection, never at the same time.
        conn = await aiosqlite.connect(spath, isolation_level=None, check_same_thread=False)
        raw = conn._connection  # the sqlite3 connection, used by one thread at a time
        if raw is None or not hasattr(conn, "_execute"):  # pragma: no cover - aiosqlite changed
            await conn.close()
            raise RuntimeError("this aiosqlite version lacks Connection._execute")
        ledger = cls(conn, raw, name=name, path=spath, clock=clock)
        ledger._inline = inline

        def setup(c: sqlite3.Connection) -> None:
            if spath != ":memory:":
                mode = c.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise RuntimeError(f"{spath}: could not switch to WAL (got {mode})")
                c.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
            c.execute(f"PRAGMA synchronous={synchronous.upper()}")
            c.execute("PRAGMA busy_timeout=5000")
            c.execute("BEGIN IMMEDIATE")
            try:
                for stmt in _SCHEMA.split(";\n"):
                    if stmt.strip():
                        c.execute(stmt)
                c.execute(
                    "INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('schema_version', ?)",
                    (str(SCHEMA_VERSION),),
                )
                c.execute("INSERT OR IGNORE INTO ledger_meta (key, value) VALUES ('name', ?)", (name,))
                c.execute("COMMIT")
            except BaseException:
                c.execute("ROLLBACK")
                raise

        try:
            await conn._execute(setup, raw)
            if checkpoint_thread and spath != ":memory:":
                ledger.checkpointer = WalCheckpointer(spath)
        except BaseException:
            await conn.close()
            raise
        return ledger

    async def close(self) -> None:
        """Close the connection (waits for a running atomic block of another task)."""
        if self._closed:
            return
        async with self._lock:
            self._closed = True
            if self.checkpointer is not None:  # first: the last connection to close checkpoints
                self.checkpointer.close()
            await self._conn.close()

    @property
    def connection(self) -> aiosqlite.Connection:
        """The aiosqlite connection, for stores sharing this database.

        Prefer :meth:`execute` / :meth:`run_sync`: they join the current :meth:`atomic`
        block. A bare ``connection.execute`` outside any block autocommits by itself.
        """
        return self._conn

    def now_s(self) -> float:
        """Virtual time from the injected clock (0.0 without a clock)."""
        return float(self._clock()) if self._clock is not None else 0.0

    # -- transactions --

    def _in_block(self) -> bool:
        """True in the task that opened the current block, and in tasks it started inside
        it (they inherit its context, e.g. through ``asyncio.gather``)."""
        return self._block is not None and self._block_ctx.get() is self._block

    async def _hop(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise LedgerError(f"ledger {self.name} is closed")
        if self._inline:
            return fn(self._raw)
        return await self._conn._execute(fn, self._raw)

    def _committed(self) -> None:
        """A transaction of this ledger committed (counted towards the next checkpoint)."""
        if self.checkpointer is not None:
            self.checkpointer.committed()

    @asynccontextmanager
    async def atomic(self, *, savepoint: bool = True) -> AsyncIterator[None]:
        """Re-entrant transaction: the outermost block is BEGIN IMMEDIATE ... COMMIT
        (ROLLBACK on exception); a nested block is a SAVEPOINT that joins it, so an
        exception caught inside the outer block undoes only the nested part.

        ``savepoint=False``: a nested block joins without a savepoint, for a group whose
        writes are one operation (reads, then one atomic write): nothing to undo."""
        if self._in_block():
            if not savepoint:
                yield
                return
            sp = f"ledger_sp{next(self._savepoints)}"
            await self._hop(lambda c: c.execute(f"SAVEPOINT {sp}"))
            try:
                yield
            except BaseException:
                await self._hop(lambda c: (c.execute(f"ROLLBACK TO {sp}"), c.execute(f"RELEASE {sp}")))
                raise
            else:
                await self._hop(lambda c: c.execute(f"RELEASE {sp}"))
            return
        async with self._lock:
            try:
                await self._hop(_begin_immediate)
            except BaseException:  # e.g. cancelled while BEGIN ran: do not leave it open
                await self._hop(_rollback_quietly)
                raise
            token = object()
            self._block = token
            ctx_token = self._block_ctx.set(token)
            try:
                yield
            except BaseException:
                await self._hop(_rollback_quietly)
                raise
            else:
                try:
                    await self._hop(_commit)
                except BaseException:
                    await self._hop(_rollback_quietly)
                    raise
                self._committed()
            finally:
                self._block = None
                try:
                    self._block_ctx.reset(ctx_token)
                except ValueError:  # the block ended in another context (a task it moved to)
                    self._block_ctx.set(None)

    async def run_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(sqlite3_connection)`` on the database thread as one atomic unit: its own
        transaction, or a savepoint inside the caller's :meth:`atomic` block."""
        if self._in_block():
            return await self._hop(lambda c: _in_savepoint(c, fn))
        async with self._lock:
            result = await self._hop(lambda c: _in_transaction(c, fn))
        self._committed()
        return result

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read-only ``fn(sqlite3_connection)``; sees the caller's uncommitted writes
        inside an :meth:`atomic` block, and waits for other tasks' blocks to finish."""
        if self._in_block():
            return await self._hop(fn)
        async with self._lock:
            return await self._hop(lambda c: _in_read(c, fn))

    async def execute(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Execute one SQL statement and return its rows: for stores that share this database.

        Inside an :meth:`atomic` block it joins the block; outside one it commits by itself.
        One statement is atomic in SQLite on its own (a failing statement leaves nothing
        behind, inside a transaction too) and reads one snapshot, so it needs neither a
        savepoint nor a BEGIN ... COMMIT of its own (sqlite3 refuses several statements)."""
        if self._inline and self._block is not None and self._block_ctx.get() is self._block:
            # the common case, a statement of the caller's block on the loop's thread: no hop
            return self._raw.execute(sql, parameters).fetchall()

        def work(c: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return c.execute(sql, parameters).fetchall()

        if self._in_block():
            return await self._hop(work)
        async with self._lock:
            rows = await self._hop(work)
        self._committed()  # one statement outside a block commits by itself
        return rows

    async def run_one_write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Like :meth:`run_sync` for a ``fn`` that writes with one statement at most, among
        reads: inside a block it needs no savepoint (reads leave nothing to undo, one
        statement is atomic); outside one, BEGIN IMMEDIATE keeps what it read true."""
        if self._in_block():
            return await self._hop(fn)
        async with self._lock:
            result = await self._hop(lambda c: _in_transaction(c, fn))
        self._committed()
        return result

    # -- accounts --

    async def create_account(
        self, account_id: str, currency: str, flags: int = 0, code: str = "", *, now_s: float | None = None
    ) -> bool:
        """Open an account; returns True if created, False if it already existed identically.
        Raises AccountExists if it exists with another currency, flags or code."""
        _check_text(account_id, "account id", MAX_ID_CHARS)
        if not isinstance(currency, str) or not currency or len(currency) > MAX_CURRENCY_CHARS:
            raise CurrencyMismatch(f"currency must be 1..{MAX_CURRENCY_CHARS} characters, got {currency!r}")
        if type(flags) is not int or flags & ~_ACCOUNT_FLAGS or flags == _ACCOUNT_FLAGS:
            raise TransferInvalid(f"account flags {flags!r}: use one of the two balance flags or none")
        _check_text(code, "account code", MAX_CODE_CHARS, empty_ok=True)
        at_s = self.now_s() if now_s is None else float(now_s)

        def work(c: sqlite3.Connection) -> bool:
            row = c.execute(_SQL_GET_ACCOUNT, (account_id,)).fetchone()
            if row is not None:
                if (row[1], row[2], row[3]) != (currency, flags, code):
                    raise AccountExists(
                        f"account {account_id} exists as {row[1]}/flags={row[2]}/code={row[3]!r}"
                    )
                return False
            c.execute(
                "INSERT INTO ledger_accounts (id, currency, flags, code, at_s) VALUES (?,?,?,?,?)",
                (account_id, currency, flags, code, at_s),
            )
            return True

        return await self.run_one_write(work)

    async def account(self, account_id: str) -> Account:
        """One account; raises UnknownAccount."""
        rows = await self.execute(_SQL_GET_ACCOUNT, (account_id,))
        if not rows:
            raise UnknownAccount(f"no account {account_id!r} in {self.name}")
        return _account_from_row(rows[0])

    async def accounts(self) -> list[Account]:
        """Every account, ordered by id."""
        rows = await self.execute(f"SELECT {_A_COLS} FROM ledger_accounts ORDER BY id")
        return [_account_from_row(r) for r in rows]

    # -- transfers --

    async def get_transfer(self, transfer_id: str) -> Transfer | None:
        rows = await self.execute(_SQL_GET_TRANSFER, (transfer_id,))
        return _transfer_from_row(rows[0]) if rows else None

    async def transfers(self) -> list[Transfer]:
        """Every transfer in commit order."""
        rows = await self.execute(f"SELECT {_T_COLS} FROM ledger_transfers ORDER BY rowid")
        return [_transfer_from_row(r) for r in rows]

    async def pending_state(self, pending_id: str) -> str:
        """'pending', 'posted', 'voided' or 'expired'; raises PendingNotFound."""
        rows = await self.execute(_SQL_HOLD_STATE, (pending_id,))
        if not rows or not rows[0][0] & PENDING:
            raise PendingNotFound(f"no hold {pending_id!r} in {self.name}")
        _, resolver_flags, resolver_code = rows[0]
        if resolver_flags is None:
            return "pending"
        if resolver_flags & POST_PENDING:
            return "posted"
        return "expired" if resolver_code == EXPIRED_CODE else "voided"

    async def create_transfer(self, transfer: Transfer, *, now_s: float | None = None) -> str:
        """One transfer; returns CREATED or EXISTS (same id, same content: a no-op)."""
        return (await self.create_transfers([transfer], now_s=now_s))[0]

    async def create_transfers(self, batch: Sequence[Transfer], *, now_s: float | None = None) -> list[str]:
        """Apply a batch atomically: all transfers or none (a linked chain). Returns per
        transfer CREATED or EXISTS; raises the first refusal (a LedgerError with ``index``
        and ``transfer_id`` attributes) and then nothing of the batch is applied."""
        if not batch:
            return []
        if len(batch) > MAX_BATCH:
            raise TransferInvalid(f"batch of {len(batch)} transfers exceeds {MAX_BATCH}")
        at_s = self.now_s() if now_s is None else float(now_s)
        if not math.isfinite(at_s):
            raise TransferInvalid(f"now_s must be finite, got {now_s!r}")
        items = list(batch)
        if self._in_block():  # the writes get a savepoint: the caller may catch a failure
            return await self._hop(lambda c: _apply_batch(c, items, at_s))
        async with self._lock:  # a transaction of its own: it rolls back on any failure
            results = await self._hop(lambda c: _in_transaction(c, _apply_batch, items, at_s, atomic_writes=False))
        self._committed()
        return results

    async def expire_pending(self, now_s: float | None = None) -> list[str]:
        """Void every hold whose timeout has passed at ``now_s`` (TigerBeetle-style expiry);
        returns their ids. An expired hold can no longer be posted (PendingExpired)."""
        at_s = self.now_s() if now_s is None else float(now_s)

        def work(c: sqlite3.Connection) -> list[str]:
            rows = c.execute(
                "SELECT t.id FROM ledger_transfers t WHERE t.expires_at_s IS NOT NULL "
                "AND t.expires_at_s <= ? AND NOT EXISTS "
                "(SELECT 1 FROM ledger_transfers r WHERE r.pending_id = t.id) ORDER BY t.rowid",
                (at_s,),
            ).fetchall()
            ids = [r[0] for r in rows]
            voids = [
                Transfer(id=pid + EXPIRED_SUFFIX, flags=VOID_PENDING, pending_id=pid, code=EXPIRED_CODE)
                for pid in ids
            ]
            for start in range(0, len(voids), MAX_BATCH):  # run_sync makes them all-or-nothing
                _apply_batch(c, voids[start : start + MAX_BATCH], at_s, link=False, atomic_writes=False)
            return ids

        return await self.run_sync(work)


# --- the core, run on the database thread ---------------------------------------------------


def _begin_immediate(c: sqlite3.Connection) -> None:
    c.execute("BEGIN IMMEDIATE")


def _commit(c: sqlite3.Connection) -> None:
    c.execute("COMMIT")


def _rollback_quietly(c: sqlite3.Connection) -> None:
    if c.in_transaction:
        c.execute("ROLLBACK")


def _in_transaction(c: sqlite3.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    c.execute("BEGIN IMMEDIATE")
    try:
        result = fn(c, *args, **kwargs)
        c.execute("COMMIT")
    except BaseException:
        _rollback_quietly(c)
        raise
    return result


def _in_savepoint(c: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    c.execute("SAVEPOINT ledger_op")
    try:
        result = fn(c)
    except BaseException:
        c.execute("ROLLBACK TO ledger_op")
        c.execute("RELEASE ledger_op")
        raise
    c.execute("RELEASE ledger_op")
    return result


def _in_read(c: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    c.execute("BEGIN")  # deferred: one consistent snapshot for multi-statement reads
    try:
        return fn(c)
    finally:
        _rollback_quietly(c)


#: a planned batch: per-transfer results, the rows to insert, the balances after it
_Plan = tuple[list[str], list[tuple[Any, ...]], dict[str, list[Any]]]


def _apply_batch(
    c: sqlite3.Connection, batch: list[Transfer], at_s: float, *, link: bool = True, atomic_writes: bool = True
) -> list[str]:
    """Validate the whole batch in memory, then write it: nothing is written on a refusal.

    ``atomic_writes``: the writes (INSERT, then the balance UPDATEs) get a savepoint of their
    own, for a caller that cannot undo half of them (inside someone's :meth:`Ledger.atomic`
    block); pass False inside a transaction that rolls back on any exception.

    The first pass skips two lookups whose answer is nearly always "none": a stored transfer
    with the same id (idempotency) and an earlier resolution of the hold being posted or
    voided. The indexes refuse both anyway (the primary key, the unique ``pending_id``): if
    either exists, the INSERT fails, nothing stays written, and a second pass with every
    lookup decides. That pass also decides every refusal, so results, errors and their order
    (the id first, before any balance check) are those of the lookup-first algorithm.
    """
    cur = c.cursor()  # one cursor for the batch's statements, not one per statement
    try:
        results, rows, accounts = _plan(cur, batch, at_s, look_up=False)
    except LedgerError:
        pass  # the full pass below raises the refusal, or finds the id already stored
    else:
        if _write(cur, rows, accounts, link=link, guard=atomic_writes or len(rows) > 1, optimistic=True):
            return results
    results, rows, accounts = _plan(cur, batch, at_s, look_up=True)
    _write(cur, rows, accounts, link=link, guard=atomic_writes, optimistic=False)
    return results


def _plan(c: sqlite3.Cursor, batch: list[Transfer], at_s: float, *, look_up: bool) -> _Plan:
    """Validate every transfer of ``batch`` in order against the balances as they change."""
    accounts: dict[str, list[Any]] = {}  # id -> [currency, flags, dp, dpo, cp, cpo]
    new: dict[str, tuple[Any, ...]] = {}  # rows created in this batch, by id
    resolved: dict[str, tuple[Any, ...]] = {}  # pending_id -> resolving row in this batch
    results: list[str] = []
    rows: list[tuple[Any, ...]] = []
    for index, t in enumerate(batch):
        try:
            row = _one(c, t, at_s, accounts, new, resolved, look_up)
        except LedgerError as exc:
            raise _fail(exc, index, getattr(t, "id", "?")) from None
        if row is None:
            results.append(EXISTS)
        else:
            results.append(CREATED)
            rows.append(row)
            new[row[0]] = row
            if row[6] is not None:
                resolved[row[6]] = row
    return results, rows, accounts


def _write(
    c: sqlite3.Cursor,
    rows: list[tuple[Any, ...]],
    accounts: dict[str, list[Any]],
    *,
    link: bool,
    guard: bool,
    optimistic: bool,
) -> bool:
    """Insert the planned transfers and store the balances they changed, inside a savepoint
    if ``guard``. Returns False if ``optimistic`` and an index refused the INSERT; then
    nothing of it stays written (one INSERT fails whole; several roll back to the guard)."""
    if not rows:
        return True
    if link and len(rows) > 1:
        rows = [r[:5] + (r[5] | LINKED,) + r[6:] for r in rows[:-1]] + rows[-1:]
    if guard:
        c.execute("SAVEPOINT ledger_write")
    try:
        try:
            if len(rows) == 1:
                c.execute(_SQL_INSERT_TRANSFER, rows[0])
            else:
                c.executemany(_SQL_INSERT_TRANSFER, rows)
        except sqlite3.IntegrityError:
            if not optimistic:
                raise
            inserted = False
        else:
            inserted = True
            c.executemany(_SQL_UPDATE_ACCOUNT, [(a[2], a[3], a[4], a[5], aid) for aid, a in accounts.items()])
    except BaseException:
        if guard:
            c.execute("ROLLBACK TO ledger_write")
            c.execute("RELEASE ledger_write")
        raise
    if guard:
        if not inserted:
            c.execute("ROLLBACK TO ledger_write")
        c.execute("RELEASE ledger_write")
    return inserted


def _stored(
    c: sqlite3.Cursor, new: dict[str, tuple[Any, ...]], transfer_id: str, look_up: bool
) -> Transfer | None:
    """A transfer created earlier in the batch or (if ``look_up``) stored before it."""
    row = new.get(transfer_id)
    if row is None and look_up:
        row = c.execute(_SQL_GET_TRANSFER, (transfer_id,)).fetchone()
    return None if row is None else _transfer_from_row(row)


def _balances(c: sqlite3.Cursor, accounts: dict[str, list[Any]], account_id: str) -> list[Any]:
    """An account's ``[currency, flags, dp, dpo, cp, cpo]``, read once per batch."""
    acc = accounts.get(account_id)
    if acc is None:
        row = c.execute(_SQL_GET_BALANCES, (account_id,)).fetchone()
        if row is None:
            raise UnknownAccount(f"no account {account_id!r}")
        acc = accounts[account_id] = list(row)
    return acc


def _balances_pair(
    c: sqlite3.Cursor, accounts: dict[str, list[Any]], debit_id: str, credit_id: str
) -> tuple[list[Any], list[Any]]:
    """Both accounts of a transfer, in one SELECT when neither is read yet; an unknown
    account is reported as :func:`_balances` does, the debit account first."""
    if debit_id != credit_id and debit_id not in accounts and credit_id not in accounts:
        row = c.execute(_SQL_GET_BALANCES_PAIR, (debit_id, credit_id)).fetchone()
        if row is not None:
            dr = accounts[debit_id] = list(row[:6])
            cr = accounts[credit_id] = list(row[6:])
            return dr, cr
    return _balances(c, accounts, debit_id), _balances(c, accounts, credit_id)


def _one(
    c: sqlite3.Cursor,
    t: Transfer,
    at_s: float,
    accounts: dict[str, list[Any]],
    new: dict[str, tuple[Any, ...]],
    resolved: dict[str, tuple[Any, ...]],
    look_up: bool,
) -> tuple[Any, ...] | None:
    """Validate one transfer against the current balances; mutate the cached accounts.
    Returns the normalised row to insert, or None for a duplicate (same id, same content)."""
    if not isinstance(t, Transfer):
        raise TransferInvalid(f"not a Transfer: {t!r}")
    # the common case (plain str within its limit) inline; _check_text decides the rest
    tid, code, user_data = t.id, t.code, t.user_data
    if type(tid) is not str or not 0 < len(tid) <= MAX_ID_CHARS:
        _check_text(tid, "transfer id", MAX_ID_CHARS)
    if type(code) is not str or len(code) > MAX_CODE_CHARS:
        _check_text(code, "code", MAX_CODE_CHARS, empty_ok=True)
    if type(user_data) is not str or len(user_data) > MAX_USER_DATA_CHARS:
        _check_text(user_data, "user_data", MAX_USER_DATA_CHARS, empty_ok=True)
    flags = t.flags
    if type(flags) is not int or flags & ~(_KIND_FLAGS | LINKED):
        raise TransferInvalid(f"unknown transfer flags {flags!r}")
    kind = flags & _KIND_FLAGS
    if kind not in (0, PENDING, POST_PENDING, VOID_PENDING):
        raise TransferInvalid("at most one of pending / post_pending / void_pending")
    timeout_s = t.timeout_s
    pending: Transfer | None = None
    if kind == POST_PENDING or kind == VOID_PENDING:
        if not t.pending_id:
            raise TransferInvalid("a post or void needs pending_id")
        if timeout_s is not None:
            raise TransferInvalid("only a pending transfer takes timeout_s")
        pending = _stored(c, new, t.pending_id, True)
        if pending is None or not pending.flags & PENDING:
            raise PendingNotFound(f"no hold {t.pending_id!r}")
        debit_id, credit_id, currency = pending.debit_account, pending.credit_account, pending.currency
        if t.debit_account not in ("", debit_id) or t.credit_account not in ("", credit_id):
            raise TransferInvalid(f"accounts differ from those of hold {pending.id}")
        if t.currency not in (None, currency):
            raise CurrencyMismatch(f"hold {pending.id} is in {currency}, not {t.currency}")
        assert pending.amount is not None
        amount = pending.amount if t.amount is None else check_amount(t.amount)
    else:
        if t.pending_id is not None:
            raise TransferInvalid("pending_id only on a post or void")
        debit_id, credit_id, currency = t.debit_account, t.credit_account, t.currency
        if type(debit_id) is not str or not 0 < len(debit_id) <= MAX_ID_CHARS:
            _check_text(debit_id, "debit account", MAX_ID_CHARS)
        if type(credit_id) is not str or not 0 < len(credit_id) <= MAX_ID_CHARS:
            _check_text(credit_id, "credit account", MAX_ID_CHARS)
        amount = check_amount(t.amount)
        if timeout_s is not None:
            if kind != PENDING:
                raise TransferInvalid("only a pending transfer takes timeout_s")
            if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not (
                0 < timeout_s <= MAX_TIMEOUT_S
            ):
                raise TransferInvalid(f"timeout_s must be in (0, {MAX_TIMEOUT_S}], got {timeout_s!r}")
            timeout_s = float(timeout_s)

    # Idempotency: the id decides first, before any balance check.
    existing = _stored(c, new, tid, look_up)
    if existing is not None:
        same = (
            existing.debit_account == debit_id
            and existing.credit_account == credit_id
            and existing.amount == amount
            and (currency is None or existing.currency == currency)
            and (existing.flags & ~LINKED) == kind
            and existing.pending_id == t.pending_id
            and existing.timeout_s == timeout_s
            and existing.code == code
            and existing.user_data == user_data
        )
        if same:
            return None
        raise TransferIdConflict(f"transfer {tid} exists with different content")

    if pending is not None:
        assert pending.amount is not None
        prior = resolved.get(pending.id)
        if prior is not None:
            is_resolved, prior_code = True, prior[9]
        elif look_up:
            row = c.execute(_SQL_RESOLVER, (pending.id,)).fetchone()
            is_resolved = row is not None
            prior_code = row[2] if is_resolved else None
        else:  # a stored resolution makes the INSERT fail (unique pending_id)
            is_resolved, prior_code = False, None
        if is_resolved:
            if prior_code == EXPIRED_CODE:
                raise PendingExpired(f"hold {pending.id} expired")
            raise PendingAlreadyResolved(f"hold {pending.id} was already posted or voided")
        if kind == POST_PENDING and pending.expires_at_s is not None and at_s >= pending.expires_at_s:
            raise PendingExpired(f"hold {pending.id} expired at {pending.expires_at_s} s")
        if kind == POST_PENDING and amount > pending.amount:
            raise AmountInvalid(f"post of {amount} exceeds hold {pending.id} of {pending.amount}")
        if kind == VOID_PENDING and amount != pending.amount:
            raise AmountInvalid(f"void of {amount} differs from hold {pending.id} of {pending.amount}")
        dr, cr = _balances_pair(c, accounts, debit_id, credit_id)
        if kind == POST_PENDING and (dr[3] + amount > AMOUNT_MAX or cr[5] + amount > AMOUNT_MAX):
            raise AmountInvalid("posted balance would overflow 64 bits")
        dr[2] -= pending.amount
        cr[4] -= pending.amount
        if kind == POST_PENDING:
            dr[3] += amount
            cr[5] += amount
        return (tid, debit_id, credit_id, amount, currency, kind, t.pending_id, None, None, code, user_data, at_s)

    if debit_id == credit_id:
        raise TransferInvalid("debit and credit account are the same")
    dr, cr = _balances_pair(c, accounts, debit_id, credit_id)
    if dr[0] != cr[0]:
        raise CurrencyMismatch(f"{debit_id} is {dr[0]}, {credit_id} is {cr[0]}")
    if currency is not None and currency != dr[0]:
        raise CurrencyMismatch(f"transfer in {currency}, accounts in {dr[0]}")
    if dr[1] & DEBITS_MUST_NOT_EXCEED_CREDITS and dr[2] + dr[3] + amount > dr[5]:
        raise InsufficientFunds(f"{debit_id}: {dr[5] - dr[3] - dr[2]} available, {amount} needed")
    if cr[1] & CREDITS_MUST_NOT_EXCEED_DEBITS and cr[4] + cr[5] + amount > cr[3]:
        raise InsufficientFunds(f"{credit_id}: credits would exceed debits")
    col_d, col_c = (2, 4) if kind == PENDING else (3, 5)
    if dr[col_d] + amount > AMOUNT_MAX or cr[col_c] + amount > AMOUNT_MAX:
        raise AmountInvalid("balance would overflow 64 bits")
    dr[col_d] += amount
    cr[col_c] += amount
    expires = at_s + timeout_s if timeout_s is not None else None
    return (tid, debit_id, credit_id, amount, dr[0], kind, None, timeout_s, expires, code, user_data, at_s)
