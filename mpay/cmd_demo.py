"""``mpay demo``: walk one purchase through the protocol (the main job of ``make demo``)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from mpay.cli import UsageError
from mpay.runner import format_summary, run_scenario
from mpay.scenario import ScenarioError, load_scenario

DEFAULT_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "happy_path.toml"


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="walk one purchase through the protocol, step by step",
        description="Run a demonstration scenario (default: the seed's happy path) and show what happened.",
        epilog="Example: mpay demo --scenario scenarios/refund.toml",
    )
    parser.add_argument("--scenario", type=Path, default=DEFAULT_SCENARIO, help="the scenario to demonstrate")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    result = asyncio.run(run_scenario(scenario, Path("runs") / f"demo-{scenario.name}"))
    print(format_summary(result))
    return 0 if result.ok else 1
