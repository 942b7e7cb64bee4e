"""Study: what does each cipher suite cost in SMS, per transaction?

The same few transactions (the seed's purchase, settled) run under each cipher suite:
``rsa2048`` and ``rsa3072`` (RSA-PSS signatures, RSA-OAEP key wrap) and ``compact``
(Ed25519 signatures, X25519 key agreement). Every protocol message is a signed and
encrypted envelope cut into binary SMS of 134 payload octets, so bigger keys mean more SMS.

Run it:      mpay run scenarios/suite_cost_study.py --out runs/suites
Smaller:     mpay run scenarios/suite_cost_study.py --param transactions=2
Some suites: mpay run scenarios/suite_cost_study.py --param suites=rsa2048,rsa3072
Results:     runs/suites/study.json and study.csv, one row per suite; every run's trace
             and summary under runs/suites/runs/<suite>/.
"""

from __future__ import annotations

from pathlib import Path

from mpay.study.api import Scenario, ScenarioBuilder, Study, item

SUITES = ("rsa2048", "rsa3072", "compact")


def build(suite: str, transactions: int = 5, seed: int = 1) -> Scenario:
    """``transactions`` settled purchases of two customers at one shop, under ``suite``."""
    builder = ScenarioBuilder(
        f"suite_cost_{suite}",
        suite=suite,
        seed=seed,
        description=f"{transactions} settled purchases under the {suite} cipher suite",
    )
    builder.customer("alice", wallet_fen=500_000, card_fen=1_000_000)
    builder.customer("bob", wallet_fen=500_000, card_fen=1_000_000)
    builder.merchant("shop")
    for number in range(transactions):
        buyer = "alice" if number % 2 == 0 else "bob"
        builder.order(buyer, "shop", item("tea", 1 + number % 3, 12_000), at_s=600.0 * number)
    builder.expect(outcomes={"settled": transactions}, escrow_fen=0)
    return builder.build()


def scenario() -> Scenario:
    """The rsa2048 run alone (what `mpay validate` checks)."""
    return build("rsa2048")


def study(out_dir: Path, transactions: int = 5, seed: int = 1, suites: str = ",".join(SUITES)) -> dict:
    """One run per suite (``suites``: comma-separated names); one row per suite with the
    traffic per transaction."""
    results = Study("suite_cost", out_dir)
    for suite in suites.split(","):
        run = results.run(build(suite, transactions, seed), label=suite)
        txns = run.summary["transactions"]
        network = run.summary["network"]
        per_txn = {key: sum(txn[key] for txn in txns) / len(txns) for key in ("messages", "sms_segments", "bytes")}
        results.add(
            suite=suite,
            transactions=len(txns),
            msgs_per_txn=per_txn["messages"],
            sms_per_txn=per_txn["sms_segments"],
            bytes_per_txn=per_txn["bytes"],
            sms_per_msg=per_txn["sms_segments"] / per_txn["messages"],
            setup_sms=network["sms_segments"] - sum(txn["sms_segments"] for txn in txns),
        )
    return results.save()
