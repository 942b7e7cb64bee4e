"""``mpay validate FILE``: check a scenario without running it."""

from __future__ import annotations

import argparse
from pathlib import Path

from mpay.cli import UsageError
from mpay.scenario import ScenarioError
from mpay.study import load_scenario_file
from mpay.world import expand


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "validate",
        help="check a scenario file without running it",
        description="Parse and validate a scenario; print what it contains, or one line saying what is wrong.",
        epilog="Example: mpay validate scenarios/refund.toml",
    )
    parser.add_argument("scenario", type=Path, help="a scenario file (.toml) or a script (.py) that defines scenario()")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario_file(args.scenario)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    customers, merchants, orders = expand(scenario)
    print(
        f"{args.scenario}: ok: scenario {scenario.name!r}, suite {scenario.suite}, "
        f"{len(customers)} customers, {len(merchants)} merchants, {len(orders)} orders"
    )
    return 0
