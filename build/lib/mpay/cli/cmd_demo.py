"""``mpay demo``: walk one purchase through the protocol, SMS by SMS (what ``make demo`` runs).

The narration itself is :mod:`mpay.present.demo`; this module is the command line around it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

from mpay.cli.main import UsageError
from mpay.present.demo import DEFAULT_SCENARIO, DemoOptions, run_demo
from mpay.present.i18n import LANGS
from mpay.schema.shipped import resolve_scenario
from mpay.schema.scenario import ScenarioError, load_scenario


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="walk one purchase through the protocol, step by step (teaching)",
        description=(
            "Run one purchase in the simulated world and narrate every SMS: the seed's step, who "
            "sends what to whom, the decrypted content, what an eavesdropper on the air sees, and "
            "the receiver's checks; then balances, points and credit scores. A scenario with "
            "several orders is cut to its first one. Colour only on a terminal (NO_COLOR turns it off)."
        ),
        epilog="Example: mpay demo --scenario scenarios/refund.toml --lang zh --step",
    )
    parser.add_argument(
        "--scenario",
        default=DEFAULT_SCENARIO,
        help="the scenario to demonstrate: a file or a shipped scenario's name (default: happy_path)",
    )
    parser.add_argument("--lang", choices=LANGS, default="en", help="language of the narration (default: en)")
    parser.add_argument(
        "--step", action="store_true", help="wait for Enter after every SMS (end of input: carry on)"
    )
    parser.add_argument(
        "--legacy-des",
        action="store_true",
        help="also show the seed's DES (INSECURE, demo only): one message encrypted, a real key search",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(resolve_scenario(args.scenario))
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    options = DemoOptions(lang=args.lang, step=args.step, color=color, legacy_des=args.legacy_des)
    return asyncio.run(run_demo(scenario, options=options))
