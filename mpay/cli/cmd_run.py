"""``mpay run FILE``: run a TOML scenario or a Python scenario script.

A ``.toml`` file, or a script's ``scenario()``, is one run: the trace and summary are
written to the run directory and the expectations checked (exit 0 or 1). A script's
``study()`` runs many scenarios and writes its own results (``study.json``, ``study.csv``).
The script contract is documented in :mod:`mpay.study.api` and ``docs/tutorial.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from mpay.cli.main import UsageError
from mpay.study.runner import RunResult, format_summary
from mpay.schema.shipped import resolve_scenario
from mpay.schema.scenario import Scenario, ScenarioError, load_scenario
from mpay.study.api import (
    call_entry_point,
    entry_points,
    load_script,
    no_entry_point_message,
    parse_params,
    quiet,
    run,
    scenario_from_script,
)

DESCRIPTION = """\
Run a scenario: initialization and every order, in virtual time, over real cryptography
and SQLite ledgers. Writes DIR/trace.jsonl, DIR/summary.json and DIR/report.html.

A Python script (see docs/tutorial.md) defines scenario() -- one run, the same outputs as
a TOML file -- or study(out_dir) -- many runs; writes DIR/study.json and DIR/study.csv and
prints a table. When it defines both, study() runs.

On a terminal a progress line appears for runs longer than about a second.
"""

EXAMPLES = """\
Example: mpay run scenarios/happy_path.toml --out runs/happy --seed 7

More examples:
  mpay run scenarios/workload.toml --quiet; echo $?      (the exit status tells)
  mpay run scenarios/refund.toml --json > summary.json   (the summary, for scripts)
  mpay run scenarios/suite_cost_study.py --out runs/suites --param transactions=2

Exit status: 0 every invariant holds and every expectation is met; 1 not (the lines
printed say which); 2 bad input (one line naming the file and the field).
"""


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "run",
        help="run a scenario (.toml) or a scenario script (.py) and check its expectations",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario", metavar="FILE", help="a scenario file (.toml) or script (.py), or a shipped scenario's name"
    )
    parser.add_argument("--seed", type=int, help="override the scenario's seed (a study gets seed=N)")
    parser.add_argument(
        "--out", type=Path, metavar="DIR", help="run directory (default: runs/<scenario name or script name>)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print only the summary (or the study's results) as JSON on stdout"
    )
    parser.add_argument(
        "--quiet", action="store_true", help="print nothing, no progress either; the exit status tells"
    )
    parser.add_argument(
        "--speed",
        type=float,
        metavar="X",
        help="real-time mode for live demos: X virtual seconds per wall second (same events, same trace)",
    )
    parser.add_argument(
        "--ledger-thread",
        action="store_true",
        help="run the ledgers' SQL on aiosqlite's worker thread, not the event loop's (slower; same results)",
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pass a keyword parameter to a script's scenario() or study(), e.g. --param transactions=40",
    )
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        if args.seed is not None and args.seed < 0:
            raise UsageError(f"--seed: must be a non-negative integer, got {args.seed}")
        if args.speed is not None and not (0 < args.speed < float("inf")):
            raise UsageError(f"--speed: must be a positive number of virtual seconds per wall second, got {args.speed}")
        args.scenario = resolve_scenario(args.scenario)
        if args.scenario.suffix == ".py":
            return _run_script(args)
        if args.param:
            raise UsageError(f"--param: only Python scripts take parameters; {args.scenario} is a TOML file")
        return _run_one(args, load_scenario(args.scenario))
    except ScenarioError as exc:
        raise UsageError(str(exc)) from None


def _run_script(args: argparse.Namespace) -> int:
    path: Path = args.scenario
    params = parse_params(args.param)
    module = load_script(path)
    scenario_fn, study_fn = entry_points(module)
    if study_fn is not None:
        return _run_study(args, study_fn, params)
    if scenario_fn is None:
        raise UsageError(no_entry_point_message(path))
    return _run_one(args, scenario_from_script(path, module, params))


def _run_one(args: argparse.Namespace, scenario: Scenario) -> int:
    """One scenario: run it, print the summary (or JSON), exit 0 or 1 by the expectations."""
    if args.seed is not None:
        scenario = scenario.model_copy(update={"seed": args.seed})
    run_dir = args.out if args.out is not None else Path("runs") / scenario.name
    result: RunResult = run(
        scenario, run_dir, progress=not args.quiet, speed=args.speed, ledger_inline=not args.ledger_thread
    )
    if args.json:
        json.dump(result.summary, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    elif not args.quiet:
        print(format_summary(result))
    return 0 if result.ok else 1


def _run_study(args: argparse.Namespace, study_fn: Any, params: dict[str, Any]) -> int:
    """A script's study(out_dir): it runs and prints; we check and (with --json) print its dict."""
    path: Path = args.scenario
    if args.seed is not None:
        params["seed"] = args.seed
    out_dir = args.out if args.out is not None else Path("runs") / path.stem
    silence = quiet() if (args.quiet or args.json) else contextlib.nullcontext()
    with silence:
        result = call_entry_point(path, study_fn, out_dir, params=params)
    if not isinstance(result, dict):
        raise UsageError(
            f"{path}: study() returned {type(result).__name__}, not a dict of results;"
            " return Study.save() (see docs/tutorial.md)"
        )
    try:
        text = json.dumps(result, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{path}: study() returned results that are not JSON: {exc}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    if not (out_dir / "study.json").exists():
        (out_dir / "study.json").write_text(text + "\n", encoding="utf-8")
    if args.json:
        sys.stdout.write(text + "\n")
    failures = result.get("failures") or []
    if failures and not args.quiet and not args.json:
        print(f"study {path.stem}: {len(failures)} failure(s); exit status 1", file=sys.stderr)
    return 1 if failures else 0


__all__ = ["register", "main"]
