"""What one RSA signature costs depending on what ran just before it.

    .venv/bin/python bench/sign_in_context.py [--rounds 5] [--signs 400]

``mpay bench`` (a) times each primitive back to back; in a run, each signature follows a
few hundred microseconds of Python (the envelope, the ledger, the network) that fills the
caches with other things. This times one PS256 signature with an RSA-2048 key in four
contexts, interleaved round by round so host noise falls on all of them alike:

* ``back_to_back`` -- the same key, nothing in between (what (a) measures);
* ``rotating_keys`` -- 16 keys in turn, as the parties of a run take turns;
* ``after_python`` -- 16 keys, each signature after ~0.3 ms of Python walking a 40 MB heap;
* ``after_idle`` -- the same key, each signature after 0.3 ms asleep.

Prints the fastest signature and the median of the per-round medians, in microseconds.
A measurement script, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mpay.protocol.suites import ALG_PS256, sign  # noqa: E402

KEYS = 16
PAUSE_S = 0.0003
SIG_STRUCTURE_BYTES = 700  # about a real envelope's Sig_structure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--signs", type=int, default=400, help="signatures per context per round")
    args = parser.parse_args()

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(KEYS)]
    data = os.urandom(SIG_STRUCTURE_BYTES)
    heap = [{"a": i, "b": str(i)} for i in range(200_000)]

    def python_work(i: int) -> int:
        start = (i * 997) % 150_000
        return sum(d["a"] + len(d["b"]) for d in heap[start:start + 3000])

    def one_round(context: str) -> list[float]:
        times = []
        for i in range(args.signs):
            key = keys[0] if context in ("back_to_back", "after_idle") else keys[i % KEYS]
            if context == "after_python":
                python_work(i)
            elif context == "after_idle":
                time.sleep(PAUSE_S)
            t = time.perf_counter()
            sign(ALG_PS256, key, data)
            times.append(time.perf_counter() - t)
        return times

    contexts = ("back_to_back", "rotating_keys", "after_python", "after_idle")
    for key in keys:  # first use of a key sets up its Montgomery contexts and blinding
        sign(ALG_PS256, key, data)
    results: dict[str, list[list[float]]] = {c: [] for c in contexts}
    for _ in range(args.rounds):
        for context in contexts:
            results[context].append(one_round(context))
    print(f"RSA-2048 PS256 signature, {args.rounds} rounds x {args.signs}, us")
    print(f"{'context':16s} {'fastest':>8s} {'median':>8s}")
    for context, rounds in results.items():
        fastest = min(min(r) for r in rounds) * 1e6
        median = statistics.median(statistics.median(r) for r in rounds) * 1e6
        print(f"{context:16s} {fastest:8.1f} {median:8.1f}")


if __name__ == "__main__":
    main()
