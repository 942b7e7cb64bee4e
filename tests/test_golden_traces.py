"""Golden digests of shipped scenarios' traces: a refactor must leave every byte of a trace as it
was. A digest changes only with a behaviour change that the commit names; update it then with
`python tests/test_golden_traces.py` (prints the current digests)."""

from __future__ import annotations

import asyncio
import hashlib
import sys
from pathlib import Path

import pytest

from mpay.study.runner import run_scenario
from mpay.schema.scenario import load_scenario

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios"

#: sha256 of trace.jsonl, per scenario (seed and suite as in the file)
GOLDEN_TRACE_SHA256 = {
    "happy_path": "3d19ca274b0f3f2f11a87bf63a57ec6a9f54b1e2f0b19a562feb9747623ba8e3",
    "dispute": "2b317159c96c05efc98acea2281eaf118f012962dac963f1f25369fd48181589",
    "refund": "968de525b1a0356f33e15e7b44dcec279e22a3d0097c3582f023f1e2c0e69f86",
    "top_up": "f2527d2c31068bd790faa4a705541bbc71d009e27088f586a6b07092ab5c7e83",
    "confirm_timeout": "233f36eb8c2812ebd6fdaec60eb85c1af8aee9b61b7af3777fd929605a29a4f1",
    "ship_timeout": "29e335e90a0ed21cbe45087097e69c26cc18d068651d560b8a2598a213e6b899",
    "auto_accept": "15910df53039dfc0782b229693f17aef5a496396137598265d3aea25449ecd9e",
    "attacks/tamper": "afad9b638c7fe4597cc2ad103e55b3b49327b434cbb18da9e6da296680873160",
    "attacks/replay": "ecdccd137b2132df4c48a6366e2e23acad64d2d0d15684dffcd6863277ad9eee",
    "attacks/sim_clone": "283955d6545a749e633b50a6670492a684ed344306ec73ff8ec6eab61bd5f6be",
    "attacks/eavesdrop": "33dd2b74bdaf3e7dbaef1a4dc27a556d3d5e19eb1426c3b31ce6384b31f2f6df",
    "attacks/fault_crash_before_commit": "6482dbd6bb7298b7a150f8f928e37bfe88e476a469400cc507203714a0998c1e",
    "attacks/fault_crash_before_send": "5cf49d76a9ab88aa84a54161d43dd25bf2580255d695a62ed93ff49b4a574f0f",
    "attacks/fault_bank_restart": "05ec8e6002f67d6ef4fc70ea6dc835881d12b366e58ee41c3e2ef69c7bc6e348",
    "attacks/fault_clock_skew_beyond": "f25856adebc934b58d8421d13a858495a42c5a42da056c5885a776d541fed18c",
    "attacks/fault_sms_loss_retransmission": "69bb5e8f096c94638cbe9e4701cc6864be173ec78e38e5b1126fbf170f67e63c",
    "attacks/phishing": "808fb03e07ae3501fb0de82d3ad099b1e590cb210227bab0357cbe850246ada2",
    "attacks/revoked_certificate": "7684356fdcc665c36819b092422032cfa1511b59d19bb2563a963244cd8354e7",
}


async def trace_digest(name: str, run_dir: Path) -> str:
    await run_scenario(load_scenario(SCENARIOS / f"{name}.toml"), run_dir)
    return hashlib.sha256((run_dir / "trace.jsonl").read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(GOLDEN_TRACE_SHA256))
async def test_trace_is_byte_identical_to_the_golden_one(name: str, tmp_path: Path) -> None:
    assert await trace_digest(name, tmp_path) == GOLDEN_TRACE_SHA256[name], (
        f"{name}: the trace changed; if the behaviour change is intended, name it in the commit "
        "and update the digest (python tests/test_golden_traces.py)"
    )


if __name__ == "__main__":  # pragma: no cover
    import tempfile

    async def _print_all() -> None:
        for name in sorted(GOLDEN_TRACE_SHA256):
            with tempfile.TemporaryDirectory() as run_dir:
                print(f'    "{name}": "{await trace_digest(name, Path(run_dir))}",')

    sys.exit(asyncio.run(_print_all()))
