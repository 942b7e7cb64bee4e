"""Study: do credit scores tell honest merchants from misbehaving ones?

Customers buy at random from three groups of merchants over many transactions:

- ``honest``: always ship, always agree a refund for returned goods;
- ``no_ship``: sometimes never ship (the ship window lapses; the payment center refunds
  the customer and records a missed deadline);
- ``no_refund``: ignore returned goods (the refund window lapses; the dispute is decided
  against them).

Customers reject some deliveries, so every group sees returns. At the end the study reports,
per group, the outcomes and the merchants' credit scores and integrity points; customers
are a group of their own.

Run it:      mpay run scenarios/credit_study.py --out runs/credit
Smaller:     mpay run scenarios/credit_study.py --param transactions=30
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from statistics import mean

from mpay.study.api import Scenario, ScenarioBuilder, Study, item

#: merchant behaviour of each group (fields as in docs/scenarios.md)
GROUPS: dict[str, dict] = {
    "honest": {},
    "no_ship": {"p_never_ship": 0.4},
    "no_refund": {"refund": "ignore"},
}


def build(
    transactions: int = 300,
    customers: int = 20,
    merchants_per_group: int = 2,
    p_reject: float = 0.25,
    seed: int = 1,
    suite: str = "rsa2048",
) -> Scenario:
    """Random purchases over 30 simulated days, each merchant in one behaviour group."""
    rng = random.Random(seed)
    builder = ScenarioBuilder(
        "credit_study",
        suite=suite,
        seed=seed,
        description="honest merchants vs merchants who sometimes never ship or ignore returns",
    )
    buyers = [f"c{number:02d}" for number in range(customers)]
    for buyer in buyers:
        builder.customer(buyer, wallet_fen=2_000_000, card_fen=2_000_000, behaviour={"p_reject": p_reject})
    shops = []
    for group, behaviour in GROUPS.items():
        for number in range(merchants_per_group):
            shops.append(f"{group}_{number}")
            builder.merchant(shops[-1], behaviour=behaviour)
    for _ in range(transactions):
        builder.order(
            rng.choice(buyers),
            rng.choice(shops),
            item("tea", rng.randint(1, 3), rng.randint(1_000, 30_000)),
            at_s=round(rng.uniform(0, 30 * 86_400), 3),
        )
    builder.expect(escrow_fen=0, outcomes={"open": 0})
    return builder.build()


def scenario() -> Scenario:
    return build()


def study(out_dir: Path, transactions: int = 300, seed: int = 1, suite: str = "rsa2048") -> dict:
    """One run; one row per merchant group (and one for the customers)."""
    results = Study("credit", out_dir)
    run = results.run(build(transactions, seed=seed, suite=suite), label="credit")
    parties = run.summary["parties"]
    txns = run.summary["transactions"]
    for group in [*GROUPS, "customers"]:
        if group == "customers":
            members = [pid for pid, party in parties.items() if party["role"] == "customer"]
            mine = txns
        else:
            members = [pid for pid in parties if pid.startswith(group + "_")]
            mine = [txn for txn in txns if txn["merchant"] in members]
        outcomes = Counter(txn["outcome"] for txn in mine)
        scores = [parties[pid]["credit_score"] for pid in members]
        points = [parties[pid]["integrity_points"] for pid in members]
        results.add(
            group=group,
            parties=len(members),
            transactions=len(mine),
            settled=outcomes["settled"],
            refunded=outcomes["refunded"],
            disputed=outcomes["disputed"],
            declined=outcomes["declined"],
            mean_score=float(mean(scores)),
            min_score=min(scores),
            max_score=max(scores),
            mean_integrity=float(mean(points)),
        )
    return results.save()
