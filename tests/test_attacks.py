"""The adversary: every attack class from scenarios/attacks and from Python.

No forged, replayed, redirected or tampered message is ever acted upon (the invariant
``only_genuine_messages_acted_upon``: every SMS a party acted on was sent by its signer to
it, and acted on once); every rejection is counted by reason; the eavesdropper's captures
hold no secret; money is conserved and every hold resolved.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mpay.actors.base import plain_text_of
from mpay.sim.adversary import (
    Adversary,
    AdversaryError,
    Delayer,
    Duplicator,
    Eavesdropper,
    Injector,
    Phisher,
    Replayer,
    Tamperer,
)
from mpay.sim.network import AirSms
from mpay.study.runner import run_scenario
from mpay.schema.scenario import ScenarioError, load_scenario, parse_scenario
from mpay.sim.world import BANK_NUMBER, PAYMENT_CENTER_NUMBER, World

ROOT = Path(__file__).resolve().parent.parent
ATTACKS = ROOT / "scenarios" / "attacks"
ALICE = "13800138000"


def _money(summary: dict) -> int:
    parties = summary["parties"]
    users = [p for p in parties.values() if p["role"] in ("customer", "merchant")]
    return sum((p["wallet"] or 0) + (p["bank_account"] or 0) for p in users) + summary["escrow_fen"]


def _opening(summary: dict) -> int:
    return sum((o["wallet"] or 0) + (o["bank_account"] or 0) for o in summary["opening"].values())


@pytest.mark.parametrize("path", sorted(ATTACKS.glob("*.toml")), ids=lambda p: p.stem)
async def test_every_attack_and_fault_scenario_meets_its_expectations(path: Path, tmp_path: Path) -> None:
    scenario = load_scenario(path)
    assert scenario.expect.outcomes, f"{path.name} must state the outcomes it expects"
    assert scenario.attacks or not scenario.faults.model_dump() == {} or scenario.network.max_retries
    result = await run_scenario(scenario, tmp_path)
    assert result.failures == [], result.failures
    summary = result.summary
    assert all(summary["invariants"].values()), summary["invariant_messages"]
    assert summary["invariants"]["only_genuine_messages_acted_upon"]
    assert summary["invariants"]["no_transaction_stuck"]
    assert summary["escrow_fen"] == 0
    if not path.stem.startswith("fault_"):
        assert _money(summary) == _opening(summary)


def test_attack_scenarios_cover_every_attack_class() -> None:
    kinds = {attack.kind for path in ATTACKS.glob("*.toml") for attack in load_scenario(path).attacks}
    assert kinds == {
        "eavesdrop", "drop", "delay", "duplicate", "replay", "tamper", "redirect", "inject",
        "sim_clone", "phish",
    }


def test_mpay_run_and_demo_accept_an_attack_scenario(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for command in (["run", str(ATTACKS / "phishing.toml")], ["demo", "--scenario", str(ATTACKS / "tamper.toml")]):
        done = subprocess.run(
            [sys.executable, "-m", "mpay.cli.main", *command], cwd=tmp_path, env=env,
            capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr


# --- the eavesdropper -------------------------------------------------------------------------------


async def test_the_eavesdropper_captures_everything_and_learns_nothing(tmp_path: Path) -> None:
    scenario = load_scenario(ATTACKS / "eavesdrop.toml")
    world = await World.build(scenario, tmp_path)
    try:
        summary = await world.run()
    finally:
        await world.close()
    (spy,) = world.adversary.eavesdroppers
    alice = world.customers["alice"]
    secrets = world.secrets()
    # the search looks for the things that matter, and the captures are not empty
    assert {alice.card_number, alice.id_number, alice.name, "SHOP-000001", "250 g tin"} <= set(secrets)
    assert len(spy.captures) == summary["network"]["sms_segments"]
    assert any(sms.recipient_number == BANK_NUMBER for sms in spy.captures)  # the card binding
    assert len(spy.messages) == summary["network"]["messages"]
    assert spy.leaks(secrets) == []
    assert summary["invariants"]["eavesdropper_learned_nothing"]
    assert summary["security"]["eavesdropped"]["secrets_found"] == 0
    # honest transactions complete when the attacker only listens
    assert summary["transactions"][0]["outcome"] == "settled" and summary["security"]["rejected"] == {}
    # and the same search does find a secret sent in the clear (the check is not vacuous)
    spy.tap(AirSms(0.0, ALICE, PAYMENT_CENTER_NUMBER, f"card {alice.card_number}".encode()), world.adversary)
    assert spy.leaks(secrets) == [alice.card_number]


def test_an_eavesdropper_watches_at_most_twenty_numbers() -> None:
    Eavesdropper([f"1380000{i:04d}" for i in range(20)])
    with pytest.raises(AdversaryError, match="at most 20"):
        Eavesdropper([f"1380000{i:04d}" for i in range(21)])
    base = load_scenario(ATTACKS / "eavesdrop.toml").model_dump()
    with pytest.raises(ScenarioError, match=r"attacks\.0\.eavesdrop\.targets"):
        parse_scenario({**base, "attacks": [{"kind": "eavesdrop", "targets": [str(10**6 + i) for i in range(21)]}]})
    with pytest.raises(ScenarioError, match="does not match any of the expected tags"):
        parse_scenario({**base, "attacks": [{"kind": "sniff"}]})


# --- active attacks from Python ----------------------------------------------------------------------


async def test_attacks_compose_from_python(tmp_path: Path) -> None:
    """Duplicate alice's SMS, then tamper with every second one: the copies are dropped
    while reassembling, the tampered ones refused; nothing acted upon twice or forged."""
    scenario = load_scenario(ROOT / "scenarios" / "happy_path.toml")
    adversary = Adversary(
        [
            Duplicator(targets=[ALICE], direction="from", copies=1, gap_s=700.0, from_s=0.0),
            Tamperer(targets=[ALICE], direction="from", position="random", skip=3, max_count=1, from_s=0.0),
        ],
        random.Random(7),
    )
    world = await World.build(scenario, tmp_path, adversary=adversary)
    try:
        summary = await world.run()
    finally:
        await world.close()
    rejected = summary["security"]["rejected"]
    assert rejected.get("replay", 0) >= 1  # copies 700 s later: reassembled, then refused
    assert sum(rejected.values()) >= 2
    assert set(rejected) <= {"replay", "decrypt_failed", "malformed"}
    assert summary["network"]["adversary_altered"] > 0
    assert all(summary["invariants"].values())
    assert _money(summary) == _opening(summary)


async def test_replaying_an_earlier_message_in_place_of_a_new_one(tmp_path: Path) -> None:
    """Substitute: each new message alice sends is swallowed and an earlier one of hers
    (to the same party) sent in its place. Within the handset's reassembly memory (600 s)
    the old parts are dropped as duplicates; later, the old message is opened and refused
    as a replay. From an hour after the order on, alice's acceptance is replaced by her
    oldest message to the payment center: the acceptance window lapses and the payment
    center accepts automatically."""
    scenario = load_scenario(ROOT / "scenarios" / "happy_path.toml")
    adversary = Adversary([Replayer(targets=[ALICE], direction="from", mode="substitute", from_s=3_600.0)], random.Random(1))
    world = await World.build(scenario, tmp_path, adversary=adversary)
    try:
        summary = await world.run()
    finally:
        await world.close()
    assert adversary.attacks[0].replayed_messages >= 1
    assert summary["security"]["rejected"].get("replay", 0) >= 1
    (txn,) = summary["transactions"]
    assert (txn["outcome"], txn["auto_accepted"]) == ("settled", True)
    assert summary["invariants"]["only_genuine_messages_acted_upon"]
    assert all(summary["invariants"].values())
    assert summary["escrow_fen"] == 0


async def test_forged_messages_are_refused_by_reason(tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "scenarios" / "happy_path.toml")
    adversary = Adversary(
        [
            Injector(to="mpc", claim="alice", message="confirmation", key="own_ca", at_s=[5.0]),
            Injector(to="mpc", claim="alice", message="acceptance", key="victim_kid", at_s=[6.0]),
            Injector(to="alice", claim="bank", message="top_up_receipt", key="victim_kid", at_s=[7.0]),
            Phisher(targets=[ALICE], at_s=[8.0]),
        ],
        random.Random(3),
    )
    world = await World.build(scenario, tmp_path, adversary=adversary)
    try:
        summary = await world.run()
    finally:
        await world.close()
    assert summary["security"]["rejected"] == {
        "unknown_certificate": 1, "bad_signature": 2, "unauthenticated": 1,
    }
    assert summary["network"]["injected"] > 3
    assert summary["transactions"][0]["outcome"] == "settled"
    alice = world.customers["alice"]
    (flagged,) = alice.untrusted_inbox
    assert flagged[0] == BANK_NUMBER and flagged[1] == "UNTRUSTED" and "2000" in flagged[2]
    assert summary["security"]["untrusted_sms"] == 1
    assert summary["parties"]["alice"]["bank_account"] == 200_000


def test_attack_parameters_are_checked() -> None:
    with pytest.raises(AdversaryError, match="direction"):
        Delayer(direction="sideways")
    with pytest.raises(AdversaryError, match="unknown message type"):
        Injector(to="mpc", claim="alice", message="gift")
    with pytest.raises(AdversaryError, match="does not fit one SMS"):
        Phisher(targets=[ALICE], text="x" * 141)
    with pytest.raises(AdversaryError, match="mode"):
        Replayer(mode="sometimes")


# --- untrusted plain SMS ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("您的银行卡被扣款2000元".encode(), "您的银行卡被扣款2000元"),
        (b"call 3888 now\n", "call 3888 now\n"),
        (b"\xd8\x60\x84\x43\xa1\x01", None),  # an envelope's first octets
        (b"\x00\x01\x02", None),  # binary: not text, goes on to be refused as malformed
        (b"\xff\xfe", None),
        (b"", None),
    ],
)
def test_plain_text_sms_are_told_apart_from_envelopes(data: bytes, text: str | None) -> None:
    assert plain_text_of(data) == text
