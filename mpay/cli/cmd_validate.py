"""``mpay validate FILE``: check a scenario without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from mpay.cli.main import UsageError
from mpay.schema.shipped import resolve_scenario
from mpay.schema.scenario import ScenarioError
from mpay.study.api import load_scenario_file
from mpay.sim.world import expand


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "validate",
        help="check a scenario file without running it",
        description="Parse and validate a scenario; print what it contains, or one line saying what is wrong.",
        epilog="Example: mpay validate scenarios/refund.toml",
    )
    parser.add_argument(
        "scenario", help="a scenario file (.toml), a script (.py) that defines scenario(), or a shipped scenario's name"
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        args.scenario = resolve_scenario(args.scenario)
        scenario = load_scenario_file(args.scenario)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    customers, merchants, orders = expand(scenario)
    print(
        f"{args.scenario}: ok: scenario {scenario.name!r}, suite {scenario.suite}, "
        f"{len(customers)} customers, {len(merchants)} merchants, {len(orders)} orders"
    )
    return 0
