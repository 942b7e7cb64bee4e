"""The ledger: accounts, immutable transfers, two-phase holds, errors, atomic blocks."""

from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

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
from mpay.books.checkpointer import CHECKPOINT_EVERY_COMMITS, WalCheckpointer
from mpay.books.invariants import check_ledger
from mpay.books.ledger import (
    AMOUNT_MAX,
    CREATED,
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    EXISTS,
    LINKED,
    MAX_ID_CHARS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    WAL_AUTOCHECKPOINT_PAGES,
    Ledger,
    Transfer,
)


@pytest.fixture
async def ledger(clock):
    led = await Ledger.open(":memory:", name="test", clock=clock)
    await led.create_account("source", "CNY")
    await led.create_account("alice", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS)
    await led.create_account("bob", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS)
    await led.create_account("escrow", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS)
    await led.create_account("pts", "PTS")
    await led.create_transfer(Transfer("fund", "source", "alice", 10_000))
    yield led
    rep = await check_ledger(led)
    assert rep.ok, rep.messages
    await led.close()


async def balance(led: Ledger, account_id: str) -> int:
    return (await led.account(account_id)).available


# --- accounts -----------------------------------------------------------------------------


async def test_account_open_is_idempotent_and_conflicts_are_refused(ledger: Ledger) -> None:
    assert await ledger.create_account("alice", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS) is False
    with pytest.raises(AccountExists):
        await ledger.create_account("alice", "CNY", 0)
    with pytest.raises(AccountExists):
        await ledger.create_account("alice", "PTS", DEBITS_MUST_NOT_EXCEED_CREDITS)
    with pytest.raises(UnknownAccount):
        await ledger.account("nobody")


# --- plain transfers ----------------------------------------------------------------------


async def test_transfer_moves_money_and_same_id_is_a_no_op(ledger: Ledger) -> None:
    t = Transfer("t1", "alice", "bob", 2_500, "CNY", code="pay", user_data="c-1")
    assert await ledger.create_transfer(t) == CREATED
    assert await ledger.create_transfer(t) == EXISTS
    assert await balance(ledger, "alice") == 7_500
    assert await balance(ledger, "bob") == 2_500
    # a duplicate stays a no-op even when its amount would no longer be covered
    await ledger.create_transfer(Transfer("t2", "alice", "bob", 7_500))
    assert await ledger.create_transfer(t) == EXISTS
    assert await balance(ledger, "alice") == 0


async def test_same_id_with_different_content_is_a_conflict(ledger: Ledger) -> None:
    await ledger.create_transfer(Transfer("t1", "alice", "bob", 100))
    for other in (
        Transfer("t1", "alice", "bob", 101),
        Transfer("t1", "alice", "escrow", 100),
        Transfer("t1", "alice", "bob", 100, user_data="x"),
        Transfer("t1", "alice", "bob", 100, flags=PENDING),
    ):
        with pytest.raises(TransferIdConflict):
            await ledger.create_transfer(other)
    assert await balance(ledger, "bob") == 100


@pytest.mark.parametrize("amount", [0, -1, 1.5, True, "10", None, AMOUNT_MAX + 1])
async def test_invalid_amounts_are_refused(ledger: Ledger, amount: object) -> None:
    with pytest.raises(AmountInvalid):
        await ledger.create_transfer(Transfer("bad", "source", "bob", amount))  # type: ignore[arg-type]
    assert await ledger.get_transfer("bad") is None


async def test_balance_overflow_is_refused(ledger: Ledger) -> None:
    await ledger.create_account("mint", "CNY")
    await ledger.create_transfer(Transfer("big", "mint", "bob", AMOUNT_MAX))
    with pytest.raises(AmountInvalid):
        await ledger.create_transfer(Transfer("one_more", "source", "bob", 1))
    assert (await ledger.account("bob")).credits_posted == AMOUNT_MAX


async def test_unknown_account_currency_mismatch_and_malformed(ledger: Ledger) -> None:
    with pytest.raises(UnknownAccount):
        await ledger.create_transfer(Transfer("u", "alice", "nobody", 1))
    with pytest.raises(CurrencyMismatch):
        await ledger.create_transfer(Transfer("m", "alice", "pts", 1))
    with pytest.raises(CurrencyMismatch):
        await ledger.create_transfer(Transfer("m2", "alice", "bob", 1, currency="USD"))
    with pytest.raises(TransferInvalid):
        await ledger.create_transfer(Transfer("same", "alice", "alice", 1))
    with pytest.raises(TransferInvalid):
        await ledger.create_transfer(Transfer("x" * (MAX_ID_CHARS + 1), "alice", "bob", 1))
    with pytest.raises(TransferInvalid):
        await ledger.create_transfer(Transfer("f", "alice", "bob", 1, flags=PENDING | VOID_PENDING))
    with pytest.raises(TransferInvalid):
        await ledger.create_transfer(Transfer("p", flags=POST_PENDING))
    assert await balance(ledger, "alice") == 10_000


async def test_overdraft_protected_account_never_goes_below_zero(ledger: Ledger) -> None:
    with pytest.raises(InsufficientFunds):
        await ledger.create_transfer(Transfer("over", "alice", "bob", 10_001))
    await ledger.create_transfer(Transfer("all", "alice", "bob", 10_000))
    assert await balance(ledger, "alice") == 0
    # the opposite flag: an asset account cannot be credited beyond its debits
    await ledger.create_account("clearing", "CNY", CREDITS_MUST_NOT_EXCEED_DEBITS)
    with pytest.raises(InsufficientFunds):
        await ledger.create_transfer(Transfer("c", "bob", "clearing", 1))


# --- two-phase transfers ------------------------------------------------------------------


async def test_hold_reserves_and_full_post_settles(ledger: Ledger) -> None:
    await ledger.create_transfer(Transfer("h", "alice", "escrow", 4_000, flags=PENDING))
    assert await balance(ledger, "alice") == 6_000
    with pytest.raises(InsufficientFunds):  # the hold is not spendable twice
        await ledger.create_transfer(Transfer("t", "alice", "bob", 6_001))
    await ledger.create_transfer(Transfer("p", flags=POST_PENDING, pending_id="h"))
    a = await ledger.account("alice")
    assert (a.debits_pending, a.debits_posted, a.available) == (0, 4_000, 6_000)
    assert (await ledger.account("escrow")).credit_balance == 4_000
    assert await ledger.pending_state("h") == "posted"


async def test_partial_post_returns_the_rest(ledger: Ledger) -> None:
    await ledger.create_transfer(Transfer("h", "alice", "escrow", 4_000, flags=PENDING))
    with pytest.raises(AmountInvalid):
        await ledger.create_transfer(Transfer("p", flags=POST_PENDING, pending_id="h", amount=4_001))
    await ledger.create_transfer(Transfer("p", flags=POST_PENDING, pending_id="h", amount=1_500))
    assert await balance(ledger, "alice") == 8_500
    assert (await ledger.account("escrow")).credit_balance == 1_500


async def test_void_returns_everything_and_a_hold_resolves_once(ledger: Ledger) -> None:
    await ledger.create_transfer(Transfer("h", "alice", "escrow", 4_000, flags=PENDING))
    await ledger.create_transfer(Transfer("v", flags=VOID_PENDING, pending_id="h"))
    assert await balance(ledger, "alice") == 10_000
    assert await ledger.create_transfer(Transfer("v", flags=VOID_PENDING, pending_id="h")) == EXISTS
    with pytest.raises(PendingAlreadyResolved):
        await ledger.create_transfer(Transfer("p", flags=POST_PENDING, pending_id="h"))
    with pytest.raises(PendingAlreadyResolved):
        await ledger.create_transfer(Transfer("v2", flags=VOID_PENDING, pending_id="h"))
    with pytest.raises(PendingNotFound):
        await ledger.create_transfer(Transfer("p3", flags=POST_PENDING, pending_id="nothing"))
    with pytest.raises(PendingNotFound):  # a plain transfer is not a hold
        await ledger.create_transfer(Transfer("p4", flags=POST_PENDING, pending_id="fund"))
    with pytest.raises(TransferInvalid):  # a post names the hold's accounts or none
        await ledger.create_transfer(Transfer("h2", "alice", "escrow", 1, flags=PENDING))
        await ledger.create_transfer(Transfer("p5", "alice", "bob", flags=POST_PENDING, pending_id="h2"))
    assert await balance(ledger, "alice") == 9_999
    assert await balance(ledger, "bob") == 0


async def test_expired_hold_cannot_be_posted_and_expiry_voids_it(ledger: Ledger, clock) -> None:
    clock.now = 100.0
    await ledger.create_transfer(Transfer("h", "alice", "escrow", 3_000, flags=PENDING, timeout_s=60))
    await ledger.create_transfer(Transfer("keep", "alice", "escrow", 1_000, flags=PENDING, timeout_s=600))
    assert (await ledger.get_transfer("h")).expires_at_s == 160.0  # type: ignore[union-attr]
    clock.now = 160.0
    with pytest.raises(PendingExpired):
        await ledger.create_transfer(Transfer("p", flags=POST_PENDING, pending_id="h"))
    assert await ledger.expire_pending() == ["h"]
    assert await ledger.expire_pending() == []
    assert await ledger.pending_state("h") == "expired"
    assert await ledger.pending_state("keep") == "pending"
    assert await balance(ledger, "alice") == 9_000
    with pytest.raises(PendingExpired):
        await ledger.create_transfer(Transfer("v", flags=VOID_PENDING, pending_id="h"))
    # virtual time passed explicitly wins over the clock
    await ledger.create_transfer(Transfer("p2", flags=POST_PENDING, pending_id="keep"), now_s=200.0)


async def test_unexpired_hold_past_timeout_can_still_be_voided(ledger: Ledger) -> None:
    await ledger.create_transfer(Transfer("h", "alice", "escrow", 3_000, flags=PENDING, timeout_s=10), now_s=0)
    await ledger.create_transfer(Transfer("v", flags=VOID_PENDING, pending_id="h"), now_s=50)
    assert await ledger.pending_state("h") == "voided"
    assert await ledger.expire_pending(100) == []


# --- batches and atomic blocks ------------------------------------------------------------


async def test_linked_batch_is_all_or_nothing(ledger: Ledger) -> None:
    batch = [
        Transfer("b1", "alice", "bob", 1_000),
        Transfer("b2", "bob", "escrow", 1_000),
        Transfer("b3", "alice", "bob", 9_001),  # alice has only 9,000 left
    ]
    with pytest.raises(InsufficientFunds) as info:
        await ledger.create_transfers(batch)
    assert info.value.index == 2 and info.value.transfer_id == "b3"  # type: ignore[attr-defined]
    assert await ledger.get_transfer("b1") is None
    assert await balance(ledger, "alice") == 10_000
    assert await ledger.create_transfers(batch[:2]) == [CREATED, CREATED]
    stored = [await ledger.get_transfer(i) for i in ("b1", "b2")]
    assert [t.flags & LINKED for t in stored] == [LINKED, 0]  # type: ignore[union-attr]
    # a hold and its post in one batch; a duplicate id inside a batch is a no-op
    assert await ledger.create_transfers(
        [
            Transfer("h", "alice", "escrow", 10, flags=PENDING),
            Transfer("hp", flags=POST_PENDING, pending_id="h"),
            Transfer("h", "alice", "escrow", 10, flags=PENDING),
        ]
    ) == [CREATED, CREATED, EXISTS]
    assert await balance(ledger, "alice") == 8_990


@pytest.mark.parametrize("in_block", [False, True])
async def test_batch_mixing_stored_and_new_ids_applies_each_transfer_once(
    ledger: Ledger, in_block: bool
) -> None:
    # The ledger first tries a batch as if every id were new and lets the primary key catch a
    # stored one: the rows already inserted must go again before the batch is decided anew.
    old = Transfer("old", "alice", "bob", 100)
    await ledger.create_transfer(old)
    batch = [Transfer("n1", "alice", "bob", 10), old, Transfer("n2", "alice", "escrow", 20)]

    async def apply(transfers: list[Transfer]) -> list[str]:
        if not in_block:
            return await ledger.create_transfers(transfers)
        async with ledger.atomic():
            return await ledger.create_transfers(transfers)

    assert await apply(batch) == [CREATED, EXISTS, CREATED]
    assert await apply(batch) == [EXISTS, EXISTS, EXISTS]
    with pytest.raises(TransferIdConflict) as info:
        await apply([Transfer("n3", "alice", "bob", 1), Transfer("old", "alice", "bob", 99)])
    assert info.value.index == 1  # type: ignore[attr-defined]
    assert await ledger.get_transfer("n3") is None
    assert [await balance(ledger, a) for a in ("alice", "bob", "escrow")] == [9_870, 110, 20]
    # a stored resolution of a hold is caught the same way, and reported as before
    await apply(
        [Transfer("h", "alice", "escrow", 5, flags=PENDING), Transfer("v", flags=VOID_PENDING, pending_id="h")]
    )
    with pytest.raises(PendingAlreadyResolved):
        await apply([Transfer("n4", "alice", "bob", 1), Transfer("p", flags=POST_PENDING, pending_id="h")])
    assert await ledger.get_transfer("n4") is None
    assert await balance(ledger, "alice") == 9_870


@pytest.mark.parametrize("in_block", [False, True])
async def test_write_failing_after_the_insert_leaves_no_half_posting(
    ledger: Ledger, in_block: bool
) -> None:
    # Between a transfer's INSERT and its balance UPDATEs only an I/O error could strike;
    # a trigger stands in for it. The caller catches it inside its block and commits.
    await ledger.execute(
        "CREATE TRIGGER test_fail_bob BEFORE UPDATE ON ledger_accounts WHEN NEW.id = 'bob' "
        "BEGIN SELECT RAISE(ABORT, 'disk trouble'); END"
    )
    if in_block:
        async with ledger.atomic():
            await ledger.create_transfer(Transfer("kept", "alice", "escrow", 100))
            with pytest.raises(sqlite3.IntegrityError, match="disk trouble"):
                await ledger.create_transfer(Transfer("t", "alice", "bob", 100))
            with pytest.raises(sqlite3.IntegrityError, match="disk trouble"):
                await ledger.create_transfers(
                    [Transfer("b1", "alice", "escrow", 1), Transfer("b2", "alice", "bob", 1)]
                )
        assert await ledger.get_transfer("kept") is not None
    else:
        with pytest.raises(sqlite3.IntegrityError, match="disk trouble"):
            await ledger.create_transfer(Transfer("t", "alice", "bob", 100))
    assert [await ledger.get_transfer(i) for i in ("t", "b1", "b2")] == [None, None, None]
    await ledger.execute("DROP TRIGGER test_fail_bob")
    assert await balance(ledger, "alice") == (9_900 if in_block else 10_000)
    assert await balance(ledger, "bob") == 0


async def test_one_failing_statement_inside_a_block_leaves_nothing_of_itself(ledger: Ledger) -> None:
    # execute() runs one statement without a savepoint: SQLite undoes a failing statement
    # whole (here its first row, before the duplicate key) and keeps the block's other writes.
    await ledger.execute("CREATE TABLE pc_state (contract_no TEXT PRIMARY KEY, state TEXT)")
    async with ledger.atomic():
        await ledger.execute("INSERT INTO pc_state VALUES ('c1', 'held')")
        with pytest.raises(sqlite3.IntegrityError):
            await ledger.execute("INSERT INTO pc_state VALUES ('c2', 'held'), ('c1', 'again')")
    assert await ledger.execute("SELECT * FROM pc_state") == [("c1", "held")]


async def test_transfers_are_append_only(ledger: Ledger) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await ledger.execute("UPDATE ledger_transfers SET amount = 1 WHERE id = 'fund'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        await ledger.execute("DELETE FROM ledger_transfers")
    assert (await ledger.get_transfer("fund")).amount == 10_000  # type: ignore[union-attr]


async def test_atomic_block_rolls_back_everything_including_other_stores(ledger: Ledger) -> None:
    await ledger.execute("CREATE TABLE pc_state (contract_no TEXT PRIMARY KEY, state TEXT)")
    with pytest.raises(RuntimeError):
        async with ledger.atomic():
            await ledger.create_transfer(Transfer("t1", "alice", "bob", 100))
            await ledger.execute("INSERT INTO pc_state VALUES ('c1', 'held')")
            raise RuntimeError("crash in the middle of a protocol step")
    assert await ledger.get_transfer("t1") is None
    assert await ledger.execute("SELECT * FROM pc_state") == []
    async with ledger.atomic():
        await ledger.create_transfer(Transfer("t1", "alice", "bob", 100))
        await ledger.execute("INSERT INTO pc_state VALUES ('c1', 'held')")
    assert await ledger.execute("SELECT state FROM pc_state") == [("held",)]


async def test_refused_operation_inside_a_block_leaves_the_rest(ledger: Ledger) -> None:
    async with ledger.atomic():
        await ledger.create_transfer(Transfer("ok", "alice", "bob", 100))
        with pytest.raises(InsufficientFunds):
            await ledger.create_transfers([Transfer("x1", "alice", "bob", 1), Transfer("x2", "alice", "bob", 10**6)])
        try:
            async with ledger.atomic():  # a nested block is a savepoint
                await ledger.create_transfer(Transfer("inner", "alice", "bob", 5))
                raise ValueError
        except ValueError:
            pass
    assert await ledger.get_transfer("ok") is not None
    assert [await ledger.get_transfer(i) for i in ("x1", "inner")] == [None, None]
    assert await balance(ledger, "bob") == 100


async def test_other_tasks_wait_for_an_open_block(ledger: Ledger) -> None:
    seen: list[int] = []
    inside = asyncio.Event()
    release = asyncio.Event()

    async def writer() -> None:
        async with ledger.atomic():
            await ledger.create_transfer(Transfer("w", "alice", "bob", 700))
            inside.set()
            await release.wait()

    async def reader() -> None:
        await inside.wait()
        seen.append(await balance(ledger, "bob"))

    w = asyncio.create_task(writer())
    r = asyncio.create_task(reader())
    await inside.wait()
    await asyncio.sleep(0.01)
    assert seen == []  # the reader does not see (or interleave with) the open block
    release.set()
    await asyncio.gather(w, r)
    assert seen == [700]


async def test_cancelled_step_rolls_back_and_the_ledger_stays_usable(ledger: Ledger) -> None:
    inside = asyncio.Event()

    async def step() -> None:
        async with ledger.atomic():
            await ledger.create_transfer(Transfer("c1", "alice", "bob", 300))
            inside.set()
            await asyncio.Event().wait()  # never finishes: cancelled from outside

    task = asyncio.create_task(step())
    await inside.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ledger.get_transfer("c1") is None
    await ledger.create_transfer(Transfer("c2", "alice", "bob", 300))
    assert await balance(ledger, "bob") == 300


async def test_tasks_started_inside_a_block_join_it(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError):
        async with ledger.atomic():
            await asyncio.gather(
                ledger.create_transfer(Transfer("g1", "alice", "bob", 1)),
                ledger.create_transfer(Transfer("g2", "alice", "escrow", 2)),
            )
            assert await balance(ledger, "alice") == 9_997  # no deadlock, same transaction
            raise RuntimeError
    assert await balance(ledger, "alice") == 10_000


async def test_file_database_uses_wal_and_survives_reopen(tmp_path, clock) -> None:
    path = tmp_path / "pc.db"
    led = await Ledger.open(path, name="pc", clock=clock)
    await led.create_account("a", "CNY")
    await led.create_account("b", "CNY")
    await led.create_transfer(Transfer("t", "a", "b", 42))
    assert await led.execute("PRAGMA journal_mode") == [("wal",)]
    await led.close()
    led = await Ledger.open(path, name="pc")
    assert (await led.account("b")).credits_posted == 42
    await led.close()
    with pytest.raises(ValueError):
        await Ledger.open(path, synchronous="sometimes")


async def test_wal_checkpoints_every_so_many_pages(tmp_path) -> None:
    led = await Ledger.open(tmp_path / "pc.db", name="pc")
    assert await led.execute("PRAGMA wal_autocheckpoint") == [(WAL_AUTOCHECKPOINT_PAGES,)]
    await led.close()


async def _wait_for(predicate, timeout_s: float = 30.0) -> None:
    """Poll until ``predicate()`` holds (the checkpoint thread works on its own time)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "the checkpoint thread did not get there"
        await asyncio.sleep(0.01)


async def test_checkpoint_thread_copies_the_wal_back_while_the_writer_goes_on(tmp_path) -> None:
    path = tmp_path / "pc.db"
    led = await Ledger.open(path, name="pc", inline=True, checkpoint_thread=True)
    assert led.checkpointer is not None and led.checkpointer.every_commits == CHECKPOINT_EVERY_COMMITS
    led.checkpointer.every_commits = 20
    await led.create_account("source", "CNY")
    await led.create_account("sink", "CNY")
    db_bytes_before = path.stat().st_size
    for i in range(60):  # three requests
        await led.create_transfer(Transfer(f"t{i}", "source", "sink", 1 + i))
    await _wait_for(lambda: led.checkpointer.stats.checkpoints >= 1)
    stats = led.checkpointer.stats
    assert stats.error is None and stats.wall_s > 0
    assert path.stat().st_size > db_bytes_before  # the pages reached the database file
    # the writer never waited for it: every transfer is there, in order
    assert (await led.account("sink")).credits_posted == sum(range(1, 61))
    thread = led.checkpointer._thread
    await led.close()
    assert not thread.is_alive()
    led = await Ledger.open(path, name="pc")
    assert (await led.account("sink")).credits_posted == sum(range(1, 61))
    assert led.checkpointer is None  # off unless asked for
    await led.close()


async def test_a_failing_checkpoint_thread_leaves_the_writer_alone(tmp_path) -> None:
    led = await Ledger.open(tmp_path / "pc.db", name="pc", inline=True, checkpoint_thread=True)
    ckpt = led.checkpointer
    ckpt.every_commits = 1
    ckpt._conn.close()  # its next checkpoint fails
    await led.create_account("source", "CNY")
    await _wait_for(lambda: ckpt.stats.error is not None)
    assert "closed" in ckpt.stats.error and ckpt.stats.checkpoints == 0
    for i in range(5):  # the writer goes on; its own automatic checkpoint is the backstop
        await led.create_account(f"a{i}", "CNY")
    assert len(await led.execute("SELECT id FROM ledger_accounts")) == 6
    await led.close()


def test_checkpointer_needs_a_positive_interval(tmp_path) -> None:
    sqlite3.connect(tmp_path / "x.db").close()
    with pytest.raises(ValueError, match="every_commits"):
        WalCheckpointer(str(tmp_path / "x.db"), every_commits=0)


async def test_an_in_memory_ledger_has_no_checkpoint_thread() -> None:
    led = await Ledger.open(":memory:", name="m", inline=True, checkpoint_thread=True)
    assert led.checkpointer is None
    await led.close()


async def test_inline_statements_inside_a_block_join_it(tmp_path) -> None:
    led = await Ledger.open(tmp_path / "pc.db", name="pc", inline=True)
    await led.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(RuntimeError):
        async with led.atomic():
            await led.execute("INSERT INTO t VALUES (1)")
            assert await led.execute("SELECT x FROM t") == [(1,)]
            raise RuntimeError("the step failed")
    async with led.atomic():
        await led.execute("INSERT INTO t VALUES (2)")
    await led.execute("INSERT INTO t VALUES (3)")  # outside a block: commits by itself
    assert await led.execute("SELECT x FROM t ORDER BY x") == [(2,), (3,)]
    await led.close()
    with pytest.raises(LedgerError):
        await led.execute("SELECT 1")
