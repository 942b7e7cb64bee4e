"""Profile one scenario run and say what dominates: top functions and time per source file.

    .venv/bin/python bench/profile_run.py scenarios/workload.toml [--top 30] [--out /tmp/p.prof]

Runs the scenario like ``mpay run`` (durable ledgers and trace in a temporary directory)
under cProfile, then prints the functions with the most own time and the own time summed
per file (``actors/``, ``protocol/``, ``mpay/``, OpenSSL calls, SQLite, JSON ...), which is
how docs/performance.md's "what dominates" table was made. Wall time under the profiler is
two to three times the real one; use the shares, not the seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mpay.study.runner import run_scenario  # noqa: E402
from mpay.schema.scenario import ScenarioError, load_scenario  # noqa: E402


def _bucket(filename: str, name: str) -> str:
    """A short label for where a function lives."""
    if "/work/" in filename or filename.startswith(str(Path.cwd())):
        for top in ("protocol/", "actors/", "mpay/"):
            if top in filename:
                return top + filename.split(top, 1)[1]
    if "site-packages/" in filename:
        return "site-packages/" + filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "python3." in filename:
        return "stdlib/" + filename.rsplit("/", 1)[-1]
    return name  # built-ins and C methods: the method name says what it is


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", type=Path)
    parser.add_argument("--top", type=int, default=30, help="functions to list (default 30)")
    parser.add_argument("--out", type=Path, help="also write the raw profile here (for snakeviz, pstats)")
    args = parser.parse_args(argv)
    try:
        scenario = load_scenario(args.scenario)
    except ScenarioError as exc:
        print(f"profile_run: {exc}", file=sys.stderr)
        return 2
    profiler = cProfile.Profile()
    with tempfile.TemporaryDirectory(prefix="mpay-profile-") as tmp:
        profiler.enable()
        result = asyncio.run(run_scenario(scenario, Path(tmp)))
        profiler.disable()
    stats = pstats.Stats(profiler)
    if args.out:
        stats.dump_stats(str(args.out))
    summary = result.summary
    print(f"{scenario.name}: {len(summary['transactions'])} transactions, {summary['network']['messages']} messages, "
          f"wall {summary['wall_s']:.1f} s under the profiler")
    per_file: Counter[str] = Counter()
    for (filename, _line, name), (_cc, _nc, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        per_file[_bucket(filename, name)] += own
    total = sum(per_file.values())
    print(f"\nown time per place (total {total:.1f} s):")
    for label, own in per_file.most_common(args.top):
        print(f"  {own:8.2f} s {100 * own / total:5.1f} %  {label}")
    print()
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
