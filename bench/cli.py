"""``mpay bench``: crypto ceiling, end-to-end speed, scheduler vs SimPy, scale, SMS cost, ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import sys
from pathlib import Path

from mpay.cli.main import UsageError

#: the parts of the benchmark, in report order
PARTS = ("crypto", "end_to_end", "scheduler", "scale", "sms_cost", "ledger")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bench",
        help="measure speed and SMS cost (figures, not a test)",
        description=(
            "Measure, in one run: (a) the crypto cost of a transaction and the transactions/s "
            "ceiling per suite, (b) end-to-end transactions/s of full runs and their ratio to (a), "
            "(c) the kernel and SMS network against an equivalent SimPy model, (d) wall time and "
            "memory at growing sizes, (e) SMS parts and bytes per transaction against JSON/JOSE, "
            "(f) ledger postings against plain SQLite inserts. Ratios are measured back to back in "
            "one process (best of several rounds), so they stay meaningful on a busy machine."
        ),
        epilog="Example: mpay bench --quick   |   mpay bench --json > bench.json",
    )
    parser.add_argument("--json", action="store_true", help="print all figures as one JSON document")
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--out", type=Path, metavar="FILE", help="also write the JSON document to FILE")
    parser.add_argument("--only", metavar="PARTS", help=f"comma-separated subset of: {','.join(PARTS)}")
    parser.add_argument("--suites", metavar="NAMES", help="comma-separated suites (default: all three)")
    parser.add_argument("--txns", type=int, metavar="N", help="transactions per end-to-end run")
    parser.add_argument("--e2e-rounds", type=int, metavar="N", help="best of N end-to-end runs per suite (default 2)")
    parser.add_argument("--sched-txns", type=int, metavar="N", help="flows through the scheduler comparison")
    parser.add_argument("--scale-max", type=int, metavar="N",
                        help="largest scale run; sizes are N/100, N/10 and N (default: 1000 and 10000)")
    parser.add_argument("--scale-suite", metavar="NAME", help="suite of the scale runs (default rsa2048)")
    parser.add_argument("--scale-rounds", type=int, metavar="N",
                        help="best of N runs of each scale size up to 10000, in passes up and down the "
                             "sizes; larger sizes run once (default 2, 1 with --quick)")
    parser.add_argument("--rounds", type=int, metavar="N", help="best of N rounds for each timed figure")
    parser.set_defaults(func=main)


def _positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise UsageError(f"{name}: must be a positive integer, got {value}")


def main(args: argparse.Namespace) -> int:
    from mpay_bench.bench import BenchConfig, BenchError, format_report, run_bench
    from mpay.protocol.errors import UnsupportedAlgorithm
    from mpay.protocol.suites import get_suite

    config = BenchConfig.quick() if args.quick else BenchConfig()
    for name in ("txns", "e2e_rounds", "sched_txns", "scale_max", "scale_rounds", "rounds"):
        _positive("--" + name.replace("_", "-"), getattr(args, name))
    parts = PARTS
    if args.only:
        parts = tuple(p.strip() for p in args.only.split(",") if p.strip())
        unknown = [p for p in parts if p not in PARTS]
        if unknown or not parts:
            raise UsageError(f"--only: unknown part(s) {', '.join(unknown) or '(none)'}; choose from {','.join(PARTS)}")
    try:
        if args.suites:
            config.suites = tuple(get_suite(s.strip()).name for s in args.suites.split(",") if s.strip())
        if args.scale_suite:
            config.scale_suite = get_suite(args.scale_suite).name
    except UnsupportedAlgorithm as exc:
        raise UsageError(f"--suites: {exc}") from None
    if args.txns:
        config.e2e_txns = args.txns
    if args.e2e_rounds:
        config.e2e_rounds = args.e2e_rounds
    if args.sched_txns:
        config.sched_txns = args.sched_txns
    if args.rounds:
        config.rounds = args.rounds
    if args.scale_rounds:
        config.scale_rounds = args.scale_rounds
    if args.scale_max:
        if args.scale_max < 100:
            raise UsageError(f"--scale-max: at least 100, got {args.scale_max}")
        config.scale_sizes = (args.scale_max // 100, args.scale_max // 10, args.scale_max)
    if args.out is not None and not args.out.parent.is_dir():
        raise UsageError(f"--out: directory {args.out.parent} does not exist")
    progress = None if args.json else (lambda msg: print(f"  … {msg}", file=sys.stderr, flush=True))
    try:
        doc = asyncio.run(run_bench(config, progress=progress, parts=parts))
    except BenchError as exc:
        print(f"mpay bench: {exc}", file=sys.stderr)
        return 1
    doc["command"] = "mpay " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "mpay bench"
    if args.out is not None:
        try:
            args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"--out: cannot write {args.out}: {exc.strerror}") from None
    if args.json:
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print(format_report(doc))
    return 0
