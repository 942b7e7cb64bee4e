"""Where a scale run's time goes as it grows: one row per ``--every`` transactions opened
and closed.

    .venv/bin/python bench/scale_timeline.py --txns 100000 [--every 5000] [--suite rsa2048]

The same run as ``mpay bench`` (d) (``bench.scale_child``: 100 customers, 10 merchants,
orders spread over one simulated day, durable ledgers in a temporary directory). With all
orders inside one day and a transaction lasting about two, the run has two phases: every
order is opened (and held in escrow) first, then every transaction closes. If the cost of
a transaction grew with the number open or with the size of the databases, the seconds per
row would climb within a phase. Each row: wall seconds since the first order, the rows'
own seconds, transactions opened and closed, the simulated clock, and the seconds the
garbage collector has spent since the process started (its full collections walk every
object still alive, so they grow with the number of open transactions).

A measurement script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mpay_bench import bench  # noqa: E402


class Timeline:
    """Rows of progress, printed as they come (a 100,000-transaction run takes 25 minutes)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.opened = 0
        self.closed = 0
        self.first_order_s: float | None = None
        self.last_row_s = 0.0
        self.simulated_s = 0.0
        self.gc_s = 0.0
        self._gc_started_s = 0.0

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_started_s = time.perf_counter()
        else:
            self.gc_s += time.perf_counter() - self._gc_started_s

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        self.simulated_s = event["t_s"]
        if kind == "txn_opened":
            if self.first_order_s is None:
                self.first_order_s = time.perf_counter()
            self.opened += 1
            if self.opened % self.every == 0:
                self.row()
        elif bench.closes_txn(event):
            self.closed += 1
            if self.closed % self.every == 0:
                self.row()

    def row(self) -> None:
        assert self.first_order_s is not None
        wall_s = time.perf_counter() - self.first_order_s
        print(f"{wall_s:10.2f} {wall_s - self.last_row_s:9.2f} {self.opened:8d} {self.closed:8d} "
              f"{self.simulated_s:12.0f} {self.gc_s:8.2f}", flush=True)
        self.last_row_s = wall_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--txns", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=None, help="rows every N transactions (default txns/20)")
    parser.add_argument("--suite", default="rsa2048")
    args = parser.parse_args()
    timeline = Timeline(args.every or max(1, args.txns // 20))
    gc.callbacks.append(timeline.on_gc)
    print(f"{'wall s':>10} {'row s':>9} {'opened':>8} {'closed':>8} {'simulated s':>12} {'gc s':>8}")
    result = asyncio.run(bench.scale_child(args.txns, args.suite, 100, 10, on_event=timeline.on_event))
    print(f"{args.txns} transactions ({args.suite}): order phase {result['orders_wall_s']} s, "
          f"peak RSS {result['peak_rss_mb']} MB, {result['kb_per_open_txn']} KB per open transaction, "
          f"garbage collector {timeline.gc_s:.2f} s in the whole process")


if __name__ == "__main__":
    main()
