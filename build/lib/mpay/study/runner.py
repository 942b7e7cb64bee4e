"""Running a scenario to files: the run directory, the summary, the expectations.

Used by ``mpay run`` and by tests; a Python caller may use :func:`run_scenario` directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpay.study.expect import check_expectations
from mpay.keys.keycache import KeyCache
from mpay.present.report import write_report
from mpay.schema.scenario import Scenario
from mpay.sim.world import World

#: files of a previous run in the same directory, removed before a new run
RUN_FILES = (
    "trace.jsonl",
    "summary.json",
    "report.html",
    "payment_center.sqlite",
    "payment_center.sqlite-wal",
    "payment_center.sqlite-shm",
    "bank.sqlite",
    "bank.sqlite-wal",
    "bank.sqlite-shm",
)


@dataclass
class RunResult:
    summary: dict[str, Any]
    failures: list[str]
    run_dir: Path | None

    @property
    def ok(self) -> bool:
        return not self.failures


def clear_run_dir(run_dir: Path) -> None:
    for name in RUN_FILES:
        (run_dir / name).unlink(missing_ok=True)


async def run_scenario(
    scenario: Scenario,
    run_dir: Path | None = None,
    *,
    key_cache: KeyCache | None = None,
    speed: float | None = None,
    ledger_inline: bool = True,
    on_world: Callable[[World], None] | None = None,
) -> RunResult:
    """Run ``scenario``; with ``run_dir`` write ``trace.jsonl`` and ``summary.json`` there.

    ``on_world``, when given, is called with the built world before anything runs: the
    place to add trace listeners (``world.tracer.listeners``), e.g. a progress display.
    """
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        clear_run_dir(run_dir)
    world = await World.build(
        scenario, run_dir, key_cache=key_cache, speed=speed, ledger_inline=ledger_inline
    )
    try:
        if on_world is not None:
            on_world(world)
        summary = await world.run()
    finally:
        await world.close()
    failures = check_expectations(scenario.expect, summary)
    summary["expectations"] = {"met": not failures, "failures": failures}
    if run_dir is not None:
        (run_dir / "summary.json").write_text(
            json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        write_report(run_dir / "report.html", summary, run_dir / "trace.jsonl")
    return RunResult(summary=summary, failures=failures, run_dir=run_dir)


def format_summary(result: RunResult) -> str:
    """A short human summary of a run."""
    summary = result.summary
    lines = [
        f"scenario {summary['scenario']}  seed {summary['seed']}  suite {summary['suite']}",
    ]
    outcomes: dict[str, int] = {}
    for txn in summary["transactions"]:
        outcomes[txn["outcome"]] = outcomes.get(txn["outcome"], 0) + 1
    lines.append(
        f"transactions: {len(summary['transactions'])}  "
        + "  ".join(f"{name} {count}" for name, count in sorted(outcomes.items()))
    )
    net = summary["network"]
    lines.append(
        f"network: {net['messages']} messages, {net['sms_segments']} SMS, {net['bytes']} bytes,"
        f" {net['dropped']} dropped, {net['duplicated']} duplicated"
    )
    rejected = summary["security"]["rejected"]
    lines.append(
        "security rejections: "
        + (", ".join(f"{reason} {count}" for reason, count in rejected.items()) or "none")
    )
    shown = [
        (party_id, party)
        for party_id, party in summary["parties"].items()
        if party["role"] in ("customer", "merchant")
    ][:8]
    for party_id, party in shown:
        wallet = _yuan(party["wallet"])
        extra = f"  card {_yuan(party['bank_account'])}" if party["bank_account"] is not None else ""
        points = f"  points {party['points']}" if party["points"] is not None else ""
        lines.append(
            f"  {party_id:<10} {party['role']:<9} wallet {wallet}{extra}{points}"
            f"  credit {party['credit_score']}"
        )
    hidden = sum(1 for p in summary["parties"].values() if p["role"] in ("customer", "merchant")) - len(shown)
    if hidden > 0:
        lines.append(f"  … and {hidden} more parties (see summary.json)")
    broken = [name for name, holds in summary["invariants"].items() if not holds]
    lines.append("invariants: " + ("all hold" if not broken else "BROKEN: " + ", ".join(broken)))
    lines.append(f"virtual time {summary['virtual_s']:.0f} s, wall time {summary['wall_s']:.2f} s")
    if result.failures:
        lines.append("expectations NOT met:")
        lines += [f"  - {failure}" for failure in result.failures]
    else:
        lines.append("expectations: all met")
    if result.run_dir is not None:
        lines.append(
            f"wrote {result.run_dir / 'summary.json'}, {result.run_dir / 'trace.jsonl'}"
            f" and {result.run_dir / 'report.html'}"
        )
    return "\n".join(lines)


def _yuan(fen: int | None) -> str:
    if fen is None:
        return "-"
    return f"{fen / 100:.2f}"
