"""Checking a run's summary against the scenario's ``expect`` section."""

from __future__ import annotations

from collections import Counter
from typing import Any

from mpay.schema.scenario import ExpectSpec


def check_expectations(expect: ExpectSpec, summary: dict[str, Any]) -> list[str]:
    """Every unmet expectation (and failed invariant), as one readable line each."""
    failures: list[str] = []
    if expect.invariants:
        for name, holds in summary["invariants"].items():
            if not holds:
                failures.append(f"invariant {name} does not hold")
    outcomes = Counter(txn["outcome"] for txn in summary["transactions"])
    for outcome, count in expect.outcomes.items():
        if outcomes.get(outcome, 0) != count:
            failures.append(f"expected {count} {outcome} transaction(s), got {outcomes.get(outcome, 0)}")
    if expect.auto_accepted is not None:
        auto = sum(1 for txn in summary["transactions"] if txn["auto_accepted"])
        if auto != expect.auto_accepted:
            failures.append(f"expected {expect.auto_accepted} auto-accepted transaction(s), got {auto}")
    if expect.escrow_fen is not None and summary["escrow_fen"] != expect.escrow_fen:
        failures.append(f"expected escrow {expect.escrow_fen} fen, got {summary['escrow_fen']}")
    if expect.min_duration_s is not None:
        for txn in summary["transactions"]:
            if txn["duration_s"] < expect.min_duration_s:
                failures.append(
                    f"transaction {txn['id']} took {txn['duration_s']} s, expected at least"
                    f" {expect.min_duration_s} s"
                )
    fields = {"wallet_fen": "wallet", "card_fen": "bank_account", "points": "points"}
    for party_id, party_expect in expect.parties.items():
        party = summary["parties"].get(party_id)
        if party is None:
            failures.append(f"expect.parties.{party_id}: no such party in the run")
            continue
        for field, key in fields.items():
            wanted = getattr(party_expect, field)
            if wanted is not None and party[key] != wanted:
                failures.append(f"{party_id}.{field}: expected {wanted}, got {party[key]}")
        score = party["credit_score"]
        if party_expect.min_credit_score is not None and (score is None or score < party_expect.min_credit_score):
            failures.append(f"{party_id}.credit_score: expected at least {party_expect.min_credit_score}, got {score}")
        if party_expect.max_credit_score is not None and (score is None or score > party_expect.max_credit_score):
            failures.append(f"{party_id}.credit_score: expected at most {party_expect.max_credit_score}, got {score}")
    rejected = summary["security"]["rejected"]
    for reason, count in expect.rejected.items():
        if rejected.get(reason, 0) != count:
            failures.append(f"expected {count} rejection(s) for {reason}, got {rejected.get(reason, 0)}")
    return failures
