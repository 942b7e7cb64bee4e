"""Every shipped scenario, run end to end over real crypto and SQLite ledgers on disk."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mpay.study.runner import run_scenario
from mpay.schema.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

#: the seed's steps, in order, as the summary names them (happy path)
HAPPY_STEPS = [
    "purchase_request",
    "order_contract",
    "payment_request",
    "confirmation_request",
    "confirmed",
    "hold_placed",
    "ship_request",
    "shipped",
    "accepted",
    "settled",
]


async def run(name: str, tmp_path: Path):
    result = await run_scenario(load_scenario(SCENARIOS / f"{name}.toml"), tmp_path)
    assert result.failures == []
    return result.summary


async def test_happy_path_settles_and_pays_the_merchant(tmp_path: Path) -> None:
    summary = await run("happy_path", tmp_path)
    (txn,) = summary["transactions"]
    assert (txn["outcome"], txn["amount"], txn["currency"]) == ("settled", 24_000, "CNY")
    assert txn["steps"] == HAPPY_STEPS
    assert txn["auto_accepted"] is False
    assert summary["parties"]["alice"]["wallet"] == 26_000
    assert summary["parties"]["alice"]["points"] == 240
    assert summary["parties"]["shop"]["wallet"] == 24_000
    assert summary["escrow_fen"] == 0
    assert all(summary["invariants"].values())
    # every SMS of the transaction is counted, and real RSA envelopes need several SMS each
    assert txn["messages"] >= 11
    assert txn["sms_segments"] > txn["messages"]
    assert txn["bytes"] > 140 * txn["messages"]
    # the files a researcher loads
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["transactions"][0]["outcome"] == "settled"
    events = [json.loads(line) for line in (tmp_path / "trace.jsonl").read_text().splitlines()]
    assert {"sms_sent", "sms_opened", "transition", "ledger"} <= {event["kind"] for event in events}
    assert (tmp_path / "payment_center.sqlite").exists() and (tmp_path / "bank.sqlite").exists()


async def test_refund_returns_the_money(tmp_path: Path) -> None:
    summary = await run("refund", tmp_path)
    (txn,) = summary["transactions"]
    assert txn["outcome"] == "refunded"
    assert txn["steps"][-3:] == ["rejected", "refund_agreed", "refunded"]
    assert summary["parties"]["alice"]["wallet"] == 50_000
    assert summary["parties"]["shop"]["wallet"] == 0


async def test_auto_accept_after_the_acceptance_window(tmp_path: Path) -> None:
    summary = await run("auto_accept", tmp_path)
    (txn,) = summary["transactions"]
    assert txn["outcome"] == "settled" and txn["auto_accepted"] is True
    assert txn["duration_s"] >= 10 * 86_400
    assert summary["parties"]["shop"]["wallet"] == 24_000


async def test_confirm_timeout_declines_and_moves_no_money(tmp_path: Path) -> None:
    summary = await run("confirm_timeout", tmp_path)
    (txn,) = summary["transactions"]
    assert txn["outcome"] == "declined"
    assert "confirmation_timeout" in txn["steps"]
    assert "hold_placed" not in txn["steps"]
    assert summary["parties"]["alice"]["wallet"] == 50_000
    assert summary["parties"]["alice"]["bank_account"] == 200_000


async def test_top_up_covers_the_shortfall_from_the_card(tmp_path: Path) -> None:
    summary = await run("top_up", tmp_path)
    (txn,) = summary["transactions"]
    assert txn["outcome"] == "settled"
    assert "top_up_credited" in txn["steps"]
    alice = summary["parties"]["alice"]
    assert (alice["wallet"], alice["bank_account"]) == (0, 186_000)
    assert summary["parties"]["shop"]["wallet"] == 24_000
    assert summary["invariants"]["reconciled"] is True


async def test_ship_timeout_refunds_automatically(tmp_path: Path) -> None:
    summary = await run("ship_timeout", tmp_path)
    (txn,) = summary["transactions"]
    assert txn["outcome"] == "refunded"
    assert "ship_timeout" in txn["steps"] and "shipped" not in txn["steps"]
    assert summary["parties"]["alice"]["wallet"] == 50_000


async def test_dispute_is_decided_by_the_payment_center(tmp_path: Path) -> None:
    summary = await run("dispute", tmp_path)
    (txn,) = summary["transactions"]
    assert txn["outcome"] == "disputed"
    assert "dispute_opened" in txn["steps"] and "dispute_decided" in txn["steps"]
    assert summary["parties"]["alice"]["wallet"] == 50_000
    assert summary["parties"]["shop"]["credit_score"] < summary["parties"]["alice"]["credit_score"]


async def test_workload_of_a_thousand_transactions_keeps_every_invariant(tmp_path: Path) -> None:
    summary = await run("workload", tmp_path)
    transactions = summary["transactions"]
    assert len(transactions) >= 1_000
    outcomes = {txn["outcome"] for txn in transactions}
    # mixed behaviours really produce every ending
    assert {"settled", "refunded", "declined", "disputed"} <= outcomes
    assert "open" not in outcomes
    assert all(summary["invariants"].values()), summary["invariant_messages"]
    assert summary["escrow_fen"] == 0
    # money is conserved: what customers lost, merchants gained
    customers = [p for p in summary["parties"].values() if p["role"] == "customer"]
    merchants = [p for p in summary["parties"].values() if p["role"] == "merchant"]
    spent = sum(100_000 - c["wallet"] for c in customers) + sum(1_000_000 - c["bank_account"] for c in customers)
    assert spent == sum(m["wallet"] for m in merchants)


@pytest.mark.parametrize("name", sorted(p.stem for p in SCENARIOS.glob("*.toml")))
def test_every_shipped_scenario_validates(name: str) -> None:
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert scenario.name == name
