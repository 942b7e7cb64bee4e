"""What the cryptography costs *inside* a full run, next to what it costs alone.

    .venv/bin/python bench/crypto_in_situ.py [--suite rsa2048] [--txns 1000]

Runs ``mpay bench``'s end-to-end workload (happy-path orders, durable ledgers in a
temporary directory, virtual time) with every primitive the envelope calls (sign, verify,
key wrap/unwrap or derivation, AES-GCM) wrapped in a timer, then times the same primitives
alone as ``mpay bench`` (a) does. The difference is the cost of running them amid the rest
of the simulator (caches, branch predictors): part of the gap between (a)'s ceiling and
(b), which no change outside the cryptography can close. Timing adds well under a
microsecond per call. A measurement script, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mpay_bench import bench  # noqa: E402
from mpay.keys.keycache import KeyCache  # noqa: E402
from mpay.sim.world import World  # noqa: E402
from mpay.protocol import envelope  # noqa: E402

PRIMITIVES = ("sign", "verify", "rsa_oaep_wrap", "rsa_oaep_unwrap", "ecdh_es_derive",
              "ecdh_es_rederive", "aead_encrypt", "aead_decrypt")


def _timed(totals: dict[str, list[float]], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    slot = totals.setdefault(name, [0.0, 0])
    clock = time.perf_counter

    def timed(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            slot[0] += clock() - start
            slot[1] += 1

    return timed


async def in_situ(suite: str, txns: int) -> tuple[float, dict[str, list[float]]]:
    """Wall seconds of the order phase and, per primitive, [seconds, calls] within it."""
    scenario = bench._happy_scenario(suite, customers=50, merchants=10, txns=txns)
    totals: dict[str, list[float]] = {}
    originals = {name: getattr(envelope, name) for name in PRIMITIVES if hasattr(envelope, name)}
    with tempfile.TemporaryDirectory(prefix="mpay-insitu-") as tmp:
        world = await World.build(scenario, Path(tmp), key_cache=KeyCache())
        try:
            await world.initialize()
            world.schedule_orders()
            for name, fn in originals.items():  # the order phase only
                setattr(envelope, name, _timed(totals, name, fn))
            start = time.perf_counter()
            await world.kernel.run()
            wall_s = time.perf_counter() - start
        finally:
            for name, fn in originals.items():
                setattr(envelope, name, fn)
            await world.close()
    return wall_s, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="rsa2048")
    parser.add_argument("--txns", type=int, default=1000)
    args = parser.parse_args(argv)
    wall_s, totals = asyncio.run(in_situ(args.suite, args.txns))
    alone = bench.crypto_costs(args.suite, 13, bench.BenchConfig())["per_op_us"]
    crypto_s = sum(seconds for seconds, _ in totals.values())
    print(f"{args.suite}: {args.txns} transactions in {wall_s:.2f} s, of which cryptography "
          f"{crypto_s:.2f} s ({100 * crypto_s / wall_s:.1f} %)")
    print("primitive            calls   in the run, us/call")
    for name, (seconds, calls) in sorted(totals.items()):
        if not calls:
            continue
        print(f"  {name:18} {calls:7d}   {1e6 * seconds / calls:10.1f}")
    print("alone (mpay bench a, best of N), us/call:",
          ", ".join(f"{name} {us:.1f}" for name, us in alone.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
