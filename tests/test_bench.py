"""Smoke tests of ``mpay bench``'s machinery at tiny sizes: the structure of the figures
and their sanity (positive rates, both schedulers doing the same work, COSE and JSON/JOSE
sizes that add up). Never timing thresholds: figures depend on the machine."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mpay_bench import bench as B
from mpay.cli.main import main as cli_main
from mpay.protocol.sms import parts_needed


@pytest.fixture(scope="module")
def config(key_cache):
    cfg = B.BenchConfig.quick()
    cfg.suites = ("rsa2048", "compact")
    cfg.rounds = 1
    cfg.crypto_reps = 2
    cfg.e2e_txns = 3
    cfg.e2e_customers = 2
    cfg.e2e_merchants = 1
    cfg.sched_txns = 6
    cfg.scale_sizes = (2,)
    cfg.ledger_n = 20
    cfg.key_cache = key_cache
    return cfg


@pytest.fixture(scope="module")
def capture(key_cache):
    world, captured = asyncio.run(B.capture_happy_path("rsa2048", key_cache))
    return world, captured, B.plaintexts(world, captured)


async def test_sms_cost_compares_the_same_messages_both_ways(capture, config):
    _world, captured, plain = capture
    txn = B.transaction_messages(captured)
    assert len(plain) == len(txn) >= 10  # the seed's steps 1-11
    rsa = B.sms_cost("rsa2048", plain, config.key_cache)
    compact = B.sms_cost("compact", plain, config.key_cache)
    for cost in (rsa, compact):
        assert cost["messages"] == len(plain)
        rows = cost["per_message"]
        assert cost["cose_bytes"] == sum(r["cose_bytes"] for r in rows)
        for row in rows:
            assert row["cose_parts"] == parts_needed(row["cose_bytes"])
            assert row["json_parts"] == parts_needed(row["json_bytes"])
            assert row["json_bytes"] > row["cose_bytes"]  # base64 and JSON only add
        assert 0 < cost["cose_of_json_bytes"] < 1
    # sealing the captured plaintexts again in rsa2048 gives the captured sizes
    assert [r["cose_bytes"] for r in rsa["per_message"]] == [p.captured_bytes for p in plain]
    assert compact["cose_bytes"] < rsa["cose_bytes"]


def test_crypto_ceiling_adds_up(config):
    costs = B.crypto_costs("compact", 12, config)
    ops = costs["per_op_us"]
    assert set(ops) == {"sign", "wrap", "aead_encrypt", "unwrap", "aead_decrypt", "verify", "certificate_checks"}
    assert all(v > 0 for v in ops.values())
    assert costs["per_message_us"] == pytest.approx(sum(ops.values()), rel=0.01)
    assert costs["ceiling_txn_per_s"] == pytest.approx(1e6 / (costs["per_message_us"] * 12), rel=0.01)
    assert costs["envelope_seal_us"] > 0 and costs["envelope_open_us"] > 0


async def test_scheduler_models_do_the_same_work(capture, config):
    flow = B.Flow.from_capture(capture[1])
    result = await B.scheduler(flow, config)
    assert result["messages"] == config.sched_txns * len(flow.sizes)
    assert result["sms"] >= result["messages"]
    assert result["ours_msgs_per_s"] > 0 and result["simpy_msgs_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["ours_msgs_per_s"] / result["simpy_msgs_per_s"], rel=0.01)


async def test_end_to_end_settles_every_order(config):
    crypto = B.crypto_costs("rsa2048", 13, config)
    result = await B.end_to_end("rsa2048", crypto, config)
    assert result["transactions"] == 3
    assert result["messages_per_txn"] >= 10
    assert result["txn_per_s"] > 0
    assert 0 < result["of_ceiling"] < 5
    # the best round is reported, and every round is kept to show the host's noise
    assert len(result["orders_wall_s_rounds"]) == config.e2e_rounds
    assert result["orders_wall_s"] == min(result["orders_wall_s_rounds"])
    before, after = result["crypto_per_message_us_before_after"]
    assert result["crypto_per_message_us"] == pytest.approx(min(before, after), abs=0.01)
    assert result["checkpoints"] >= 0 and result["checkpoint_thread_cpu_s"] >= 0
    doc = {"machine": B.machine_info(), "end_to_end": {"rsa2048": {
        **result, "orders_wall_s_rounds": [12.5, 13.25], "checkpoints": 9, "checkpoint_thread_cpu_s": 0.0625}}}
    shown = B.format_report(doc)
    assert "every round's wall time (the host's noise): rsa2048 12.50, 13.25 s" in shown
    assert "(mpay/books/checkpointer.py): rsa2048 9 checkpoints, 0.06 s CPU" in shown


def test_scale_runs_in_a_subprocess(config):
    result = B.scale(config)
    (run,) = result["runs"]
    assert run["transactions"] == 2 and run["max_open_txns"] >= 1
    assert run["peak_rss_mb"] > 0
    assert result["steps"] == []


def test_scale_runs_small_sizes_before_and_after_the_large_ones():
    assert B.scale_order((1000, 10_000, 100_000), 2, 10_000) == [1000, 10_000, 100_000, 10_000, 1000]
    assert B.scale_order((1000, 10_000), 3, 10_000) == [1000, 10_000, 10_000, 1000, 1000, 10_000]
    assert B.scale_order((1000, 10_000, 100_000), 1, 10_000) == [1000, 10_000, 100_000]


def test_scale_reports_the_fastest_run_of_each_size_and_every_time(config, monkeypatch):
    monkeypatch.setattr(config, "scale_sizes", (2, 3))
    monkeypatch.setattr(config, "scale_rounds", 2)
    monkeypatch.setattr(config, "scale_repeat_max_txns", 2)  # 3 stands for the size run once
    result = B.scale(config)
    small, large = result["runs"]
    assert (small["transactions"], large["transactions"]) == (2, 3)
    assert len(small["orders_wall_s_rounds"]) == 2 and len(large["orders_wall_s_rounds"]) == 1
    assert small["orders_wall_s"] == min(small["orders_wall_s_rounds"])
    (step,) = result["steps"]
    assert step["time_ratio"] == pytest.approx(large["orders_wall_s"] / small["orders_wall_s"], abs=0.01)
    shown = B.format_report({"machine": B.machine_info(), "scale": result})
    times = ", ".join(f"{t:.2f}" for t in small["orders_wall_s_rounds"])
    assert f"every run's wall time, in order: 2 {times} s" in shown


def test_scale_peak_memory_is_the_childs_own(config):
    """A big bench process must not lend its own resident set to the child's peak (Linux
    carries it over into the child's ``ru_maxrss``)."""
    ballast = bytearray(400 * 2**20)
    ballast[:: 4096] = b"\x01" * len(range(0, len(ballast), 4096))  # resident, not just reserved
    parent_mb = B._rss_bytes() / 2**20
    assert parent_mb > 400
    (run,) = B.scale(config)["runs"]
    assert 0 < run["peak_rss_mb"] < parent_mb - 200
    del ballast


def test_scale_timeline_rows_follow_both_phases():
    """bench/scale_timeline.py: every order is opened before any closes, and its rows count
    them (the script the (d) analysis in docs/performance.md quotes)."""
    script = Path(__file__).resolve().parent.parent / "bench" / "scale_timeline.py"
    done = subprocess.run([sys.executable, str(script), "--txns", "12", "--every", "6"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    rows = [line.split() for line in lines[1:-1]]
    assert [(int(r[2]), int(r[3])) for r in rows] == [(6, 0), (12, 0), (12, 6), (12, 12)]
    walls = [float(r[0]) for r in rows]
    assert walls == sorted(walls) and walls[0] > 0
    assert lines[-1].startswith("12 transactions (rsa2048): order phase ")


async def test_ledger_ratio(config):
    result = await B.ledger(config)
    for label in ("commit_each", "one_transaction"):
        assert result[label]["ledger_postings_per_s"] > 0 and result[label]["plain_inserts_per_s"] > 0


def test_cli_json_document(capsys):
    status = cli_main(["bench", "--json", "--only", "sms_cost,scheduler", "--suites", "rsa2048",
                       "--sched-txns", "3", "--rounds", "1"])
    assert status == 0
    doc = json.loads(capsys.readouterr().out)
    assert set(doc) >= {"machine", "config", "sms_cost", "scheduler", "targets"}
    assert doc["machine"]["cores"] >= 1
    assert {t["name"][:2] for t in doc["targets"]} == {"c.", "e."}


def test_cli_table_and_bad_input(capsys):
    assert cli_main(["bench", "--only", "sms_cost", "--suites", "rsa2048"]) == 0
    out = capsys.readouterr().out
    assert "SMS cost per happy-path txn" in out and "targets:" in out
    assert cli_main(["bench", "--only", "nope"]) == 2
    assert "--only" in capsys.readouterr().err
    assert cli_main(["bench", "--suites", "rsa1024"]) == 2
    assert cli_main(["bench", "--only", "scale", "--scale-rounds", "0"]) == 2
    assert "--scale-rounds: must be a positive integer, got 0" in capsys.readouterr().err


def test_direct_cose_encodings_equal_the_generic_ones():
    """The envelope builds Sig_structure and Enc_structure directly (a hot path): byte for
    byte what the generic deterministic encoder gives, at every length boundary."""
    from mpay.protocol import envelope as env

    for payload_len in (0, 23, 24, 255, 256, 65_535, 65_536):
        for header_len in (0, 23, 24, 150):
            protected, payload = bytes(range(256))[:header_len], b"\x07" * payload_len
            assert env._sig_structure(protected, payload) == env._dumps(["Signature1", protected, b"", payload])
    for protected in (b"\xa1\x01\x03", b"\xa1\x01\x01", b"\x00" * 40):
        assert env._enc_structure(protected) == env._dumps(["Encrypt", protected, b""])


@pytest.mark.parametrize("inline", [True, False])
async def test_ledger_gives_the_same_books_inline_or_threaded(tmp_path, inline):
    """The ledger runs its SQL on the loop's thread by default (faster: no thread hop); the
    aiosqlite-thread mode must keep the same books."""
    from mpay.actors.ports import InsufficientFunds
    from mpay.books.ledger import DEBITS_MUST_NOT_EXCEED_CREDITS, Ledger, Transfer

    ledger = await Ledger.open(tmp_path / "l.db", name="t", inline=inline)
    try:
        await ledger.create_account("source", "CNY")
        await ledger.create_account("wallet", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS)
        async with ledger.atomic():
            for i in range(5):
                await ledger.create_transfer(Transfer(f"t{i}", "source", "wallet", 100, "CNY", code="x"), now_s=i)
        with pytest.raises(InsufficientFunds):
            await ledger.create_transfer(Transfer("big", "wallet", "source", 10_000, "CNY", code="x"), now_s=9)
        account = await ledger.account("wallet")
        assert account.credits_posted == 500 and account.debits_posted == 0
    finally:
        await ledger.close()
