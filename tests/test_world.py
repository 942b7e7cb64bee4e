"""Whole-world properties: determinism, where the card data goes, restart of the payment center."""

from __future__ import annotations

from pathlib import Path

import pytest

from mpay.study.runner import run_scenario
from mpay.schema.scenario import load_scenario, parse_scenario
from mpay.sim.world import World
from mpay.protocol.messages import CARD_SECRET_TYPES

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

MIXED = {
    "name": "mixed",
    "seed": 11,
    "network": {"latency_s": 1.0, "jitter_mean_s": 3.0, "duplicate": 0.05},
    "workload": {
        "customers": 12,
        "merchants": 3,
        "transactions": 40,
        "wallet_fen": 20_000,
        "spread_s": 3_600,
        "customer_behaviour": {"p_decline": 0.1, "p_reject": 0.2, "p_ignore_delivery": 0.1},
        "merchant_behaviour": {"p_never_ship": 0.1, "p_ignore_refund": 0.3},
    },
}


def _trace(run_dir: Path) -> list[str]:
    return (run_dir / "trace.jsonl").read_text(encoding="utf-8").splitlines()


async def test_same_scenario_and_seed_give_the_same_trace(tmp_path: Path) -> None:
    scenario = parse_scenario(MIXED)
    first = await run_scenario(scenario, tmp_path / "a")
    second = await run_scenario(scenario, tmp_path / "b")
    assert first.failures == [] and second.failures == []
    trace_a, trace_b = _trace(tmp_path / "a"), _trace(tmp_path / "b")
    assert len(trace_a) > 500
    assert trace_a == trace_b
    strip = lambda s: {k: v for k, v in s.items() if k != "wall_s"}  # noqa: E731
    assert strip(first.summary) == strip(second.summary)
    # and the seed matters: another seed takes another path
    other = await run_scenario(scenario.model_copy(update={"seed": 12}), tmp_path / "c")
    assert _trace(tmp_path / "c") != trace_a
    assert other.summary["network"]["duplicated"] > 0


async def test_checkpoints_from_their_own_thread_change_nothing_in_a_run(tmp_path: Path) -> None:
    """A world's two databases checkpoint from threads of their own (mpay/books/checkpointer.py);
    a checkpoint asked for after every commit gives the same run as the default."""
    scenario = parse_scenario(MIXED)
    checkpointers = []

    def eager(world: World) -> None:
        for books in (world.pc_books, world.bank_books):
            assert books.ledger.checkpointer is not None
            books.ledger.checkpointer.every_commits = 1
            checkpointers.append(books.ledger.checkpointer)

    default = await run_scenario(scenario, tmp_path / "a")
    eager_run = await run_scenario(scenario, tmp_path / "b", on_world=eager)
    assert checkpointers[0].stats.checkpoints > 0 and checkpointers[0].stats.error is None
    assert not any(c._thread.is_alive() for c in checkpointers)
    assert _trace(tmp_path / "b") == _trace(tmp_path / "a")
    assert eager_run.summary["transactions"] == default.summary["transactions"]
    assert all(eager_run.summary["invariants"].values())


async def test_card_number_and_pin_never_leave_the_bank(tmp_path: Path) -> None:
    scenario = load_scenario(SCENARIOS / "top_up.toml")
    world = await World.build(scenario, tmp_path, record_plaintexts=True)
    try:
        summary = await world.run()
    finally:
        await world.close()
    assert summary["transactions"][0]["outcome"] == "settled"
    secrets = {c.card_number for c in world.customers.values()} | {
        c.card_pin for c in world.customers.values()
    }
    bank_seen = [o for o in world.bank.opened_log if o.message_type in CARD_SECRET_TYPES]
    # the bank did receive them (binding and the top-up), so the scan below can find them
    assert {o.message_type for o in bank_seen} == set(CARD_SECRET_TYPES)
    assert any(o.message.card_number in secrets for o in bank_seen)
    for actor in world.actors():
        if actor is world.bank:
            continue
        assert actor.opened_log, f"{actor.party_id} opened nothing: the scan would be vacuous"
        for opened in actor.opened_log:
            assert opened.message_type not in CARD_SECRET_TYPES
            text = opened.message.model_dump_json()
            assert '"card_number"' not in text and '"pin"' not in text
            for secret in {c.card_number for c in world.customers.values()}:
                assert secret not in text, f"{actor.party_id} saw a card number in {opened.message_type}"
    # nor does the payment center's database hold one
    pc_db = b"".join(path.read_bytes() for path in tmp_path.glob("payment_center.sqlite*"))
    assert b"13800138000" in pc_db  # the real-name registration is there: the scan can see text
    for customer in world.customers.values():
        assert customer.card_number.encode() not in pc_db


async def test_payment_center_restarts_mid_transaction_and_finishes(tmp_path: Path) -> None:
    """Stop the payment center while the money is held, start a new one from its database."""
    scenario = load_scenario(SCENARIOS / "happy_path.toml")
    world = await World.build(scenario, tmp_path)
    try:
        await world.initialize()
        world.schedule_orders()
        # run until the hold is placed and the ship request is out
        await world.kernel.run(stop=lambda: any(
            t.state == "awaiting_shipment" for t in world.payment_center.txns.values()
        ))
        held = await world.pc_books.escrow_fen()
        assert held == 24_000
        old = world.payment_center
        await world.restart_payment_center()
        assert world.payment_center is not old
        assert world.payment_center.txns.keys() == old.txns.keys()
        await world.kernel.run()
        summary = await world.summary()
    finally:
        await world.close()
    assert summary["transactions"][0]["outcome"] == "settled"
    assert summary["parties"]["shop"]["wallet"] == 24_000
    assert all(summary["invariants"].values())


async def test_compact_suite_carries_the_x25519_certificate_at_first_contact(tmp_path: Path) -> None:
    """In the compact suite a party has two certificates (Ed25519 signs, X25519 receives); the
    first SMS carries both, so the payment center, bank and shop can answer the customer."""
    scenario = load_scenario(SCENARIOS / "happy_path.toml").model_copy(update={"suite": "compact"})
    result = await run_scenario(scenario, tmp_path)
    assert result.failures == []
    assert result.summary["security"]["rejected"] == {}
    rsa = await run_scenario(load_scenario(SCENARIOS / "happy_path.toml"), tmp_path / "rsa")
    compact_sms = result.summary["transactions"][0]["sms_segments"]
    assert compact_sms < rsa.summary["transactions"][0]["sms_segments"]


async def test_a_failed_build_closes_the_databases_it_opened(tmp_path: Path, monkeypatch) -> None:
    """An open aiosqlite connection keeps a thread (and so the process) alive: a world that
    fails half-way must close what it opened, or `mpay run` hangs instead of reporting."""
    import threading

    import mpay.sim.world as world_module

    before = set(threading.enumerate())

    def broken(*args, **kwargs):
        raise RuntimeError("identity issuing failed")

    monkeypatch.setattr(world_module.AuthorityActor, "enrol", broken)
    with pytest.raises(RuntimeError, match="identity issuing failed") as failure:
        await World.build(load_scenario(SCENARIOS / "happy_path.toml"), tmp_path)
    # the traceback (kept here, as `mpay run` keeps it while it reports) holds the half-built
    # world's frames: only an explicit close ends the connections' threads
    assert failure.traceback
    started = [thread for thread in threading.enumerate() if thread not in before]
    for thread in started:
        thread.join(timeout=2.0)  # a closed connection's thread ends; an open one never does
    assert [thread for thread in started if thread.is_alive()] == []
