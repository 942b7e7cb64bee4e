"""The SQLite state store: documents, batched puts, and the outbox of sealed SMS."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from mpay.actors.ports import StateStore
from mpay.books.ledger import Ledger
from mpay.books.state_store import ROWS_PER_STATEMENT, SqliteStateStore


@pytest.fixture(params=[False, True], ids=["thread", "inline"])
async def store(request, tmp_path: Path):
    ledger = await Ledger.open(tmp_path / "pc.sqlite", name="pc", inline=request.param)
    yield await SqliteStateStore.open(ledger)
    await ledger.close()


async def test_store_implements_the_port(store: SqliteStateStore) -> None:
    assert isinstance(store, StateStore)


async def test_put_many_is_the_same_as_puts_in_order(store: SqliteStateStore) -> None:
    await store.put("meta", "receiver", {"next_seq": 1})
    await store.put_many([
        ("replay", "bob", {"window": [1, "1"]}),
        ("meta", "receiver", {"next_seq": 2}),
        ("replay", "alice", {"window": [3, "7"]}),
        ("replay", "bob", {"window": [2, "3"]}),  # a key twice: the last value stays
    ])
    await store.put_many([])
    assert await store.load("replay") == {"alice": {"window": [3, "7"]}, "bob": {"window": [2, "3"]}}
    assert await store.load("meta") == {"receiver": {"next_seq": 2}}


async def test_put_many_beyond_one_statement_is_all_or_none(store: SqliteStateStore) -> None:
    many = [("txns", f"k{i:04d}", {"i": i}) for i in range(ROWS_PER_STATEMENT * 2 + 1)]
    await store.put_many(many)
    assert len(await store.load("txns")) == len(many)
    with pytest.raises(RuntimeError):
        async with store._ledger.atomic():
            await store.put("txns", "k0000", {"i": -1})
            async with store._ledger.atomic():  # a nested block: its own savepoint
                await store.put_many([(t, k, {"i": -2}) for t, k, _ in many])
                raise RuntimeError("the step failed")
    assert (await store.load("txns"))["k0000"] == {"i": 0}


async def test_the_outbox_keeps_envelopes_byte_for_byte_by_sequence_number(store: SqliteStateStore) -> None:
    envelopes = {seq: bytes([0xD8, 0x60, seq]) + bytes(range(256)) * 3 for seq in (7, 3, 12)}
    await store.outbox_add([(seq, "shop", "settlement_notice", "C-1", env) for seq, env in envelopes.items()])
    await store.outbox_add([(20, "bank", "top_up_notice", None, b"\x00")])
    assert await store.outbox_load() == [
        (3, "shop", "settlement_notice", "C-1", envelopes[3]),
        (7, "shop", "settlement_notice", "C-1", envelopes[7]),
        (12, "shop", "settlement_notice", "C-1", envelopes[12]),
        (20, "bank", "top_up_notice", None, b"\x00"),
    ]
    with pytest.raises(sqlite3.IntegrityError):  # a staged number twice: none of the batch stays
        await store.outbox_add([(21, "bank", "x", None, b"a"), (7, "bank", "x", None, b"b")])
    await store.outbox_remove([3, 12, 99])
    assert [row[0] for row in await store.outbox_load()] == [7, 20]
    await store.outbox_remove([])
    batch = [(100 + i, "shop", "x", None, b"e") for i in range(ROWS_PER_STATEMENT + 1)]
    await store.outbox_add(batch)
    await store.outbox_remove([row[0] for row in batch])
    assert [row[0] for row in await store.outbox_load()] == [7, 20]


async def test_an_outbox_staged_in_a_step_that_rolls_back_is_not_kept(store: SqliteStateStore) -> None:
    with pytest.raises(RuntimeError):
        async with store._ledger.atomic():
            await store.put("txns", "C-1", {"state": "settled"})
            await store.outbox_add([(1, "shop", "settlement_notice", "C-1", b"\xd8\x60")])
            raise RuntimeError("crash before commit")
    assert await store.outbox_load() == []
    assert await store.load("txns") == {}


async def test_an_outbox_kept_by_an_earlier_version_is_moved_on_open(tmp_path: Path) -> None:
    """Earlier versions kept the outbox as hex in JSON documents of ``party_state``."""
    path = tmp_path / "pc.sqlite"
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE party_state (tbl TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, "
        "PRIMARY KEY (tbl, key)) WITHOUT ROWID"
    )
    old = {"to": "alice", "envelope": "d86001ff", "type": "settlement_notice", "contract_no": "C-9"}
    db.execute("INSERT INTO party_state VALUES ('outbox', ?, ?)", (f"{42:020d}", json.dumps(old)))
    db.execute("INSERT INTO party_state VALUES ('txns', 'C-9', '{}')")
    db.commit()
    db.close()
    ledger = await Ledger.open(path, name="pc")
    try:
        store = await SqliteStateStore.open(ledger)
        assert await store.outbox_load() == [(42, "alice", "settlement_notice", "C-9", b"\xd8\x60\x01\xff")]
        assert await store.load("outbox") == {}
        assert await store.load("txns") == {"C-9": {}}
        await SqliteStateStore.open(ledger)  # opening again moves nothing twice
        assert len(await store.outbox_load()) == 1
    finally:
        await ledger.close()
