"""``mpay run SCENARIO``: run a scenario, write its trace and summary, check expectations."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from mpay.cli import UsageError
from mpay.runner import format_summary, run_scenario
from mpay.scenario import ScenarioError, load_scenario


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a scenario and check its expectations",
        description=(
            "Run a scenario: initialization and every order, in virtual time, over real "
            "cryptography and SQLite ledgers. Writes DIR/trace.jsonl and DIR/summary.json. "
            "Exit status 0 when every invariant holds and every expectation is met, 1 when "
            "not, 2 for bad input."
        ),
        epilog="Example: mpay run scenarios/happy_path.toml --out runs/happy --seed 7",
    )
    parser.add_argument("scenario", type=Path, help="a scenario file (.toml)")
    parser.add_argument("--seed", type=int, help="override the scenario's seed")
    parser.add_argument("--out", type=Path, metavar="DIR", help="run directory (default: runs/<scenario name>)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="print nothing; the exit status tells")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None
    if args.seed is not None:
        if args.seed < 0:
            raise UsageError(f"--seed: must be a non-negative integer, got {args.seed}")
        scenario = scenario.model_copy(update={"seed": args.seed})
    run_dir = args.out if args.out is not None else Path("runs") / scenario.name
    result = asyncio.run(run_scenario(scenario, run_dir))
    if args.json:
        json.dump(result.summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif not args.quiet:
        print(format_summary(result))
    return 0 if result.ok else 1
