"""Crash safety: a process killed in the middle of a ledger transaction leaves no partial
transfer behind after reopening, and everything committed before survives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mpay.books.accounts import BankLedgerBooks, PaymentCenterLedgerBooks
from mpay.books.invariants import check_invariants, check_ledger

ROOT = Path(__file__).resolve().parent.parent

#: run in a child process; it opens the books, commits some work, then dies mid-transaction
CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from mpay.books.accounts import BankLedgerBooks, PaymentCenterLedgerBooks, open_customer_accounts, open_merchant_accounts

    async def main(pc_path, bank_path, mode):
        pc = await PaymentCenterLedgerBooks.open(pc_path)
        bank = await BankLedgerBooks.open(bank_path)
        await open_customer_accounts(pc, bank, "alice", 50_000, 200_000)
        await open_merchant_accounts(pc, bank, "shop", 0)
        await pc.hold("c1", "alice", 12_000)          # committed
        await pc.ledger.execute("CREATE TABLE IF NOT EXISTS pc_state (contract_no TEXT PRIMARY KEY, state TEXT)")
        if mode == "kill_mid_statement":
            # die inside the settle batch: after its transfer rows are written, before the
            # balance updates and the COMMIT
            def die(sql):
                if sql.startswith("UPDATE ledger_accounts"):
                    os.kill(os.getpid(), signal.SIGKILL)
            await pc.ledger.connection.set_trace_callback(die)
            await pc.settle("c1", "shop")
        else:
            # a protocol step's atomic block, interrupted from outside while still open
            async with pc.atomic():
                await pc.settle("c1", "shop")
                await pc.ledger.execute("INSERT INTO pc_state VALUES ('c1', 'settled')")
                print("inside", flush=True)
                await asyncio.sleep(60)
        print("not reached", flush=True)

    try:
        asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3]))
    except BaseException as exc:
        print("child failed:", repr(exc), file=sys.stderr, flush=True)
    os._exit(3)  # never hang on the connections' worker threads
    """
)


def _run_child(tmp_path: Path, mode: str) -> tuple[Path, Path]:
    pc_path, bank_path = tmp_path / "pc.db", tmp_path / "bank.db"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(pc_path), str(bank_path), mode],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if mode == "kill_from_outside":
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == "inside", proc.stderr.read() if proc.stderr else ""
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, out, err)
    assert "not reached" not in out
    return pc_path, bank_path


@pytest.mark.parametrize("mode", ["kill_mid_statement", "kill_from_outside"])
async def test_killed_transaction_leaves_nothing_and_committed_work_survives(tmp_path: Path, mode: str) -> None:
    pc_path, bank_path = _run_child(tmp_path, mode)
    pc = await PaymentCenterLedgerBooks.open(pc_path)
    bank = await BankLedgerBooks.open(bank_path)
    try:
        # committed before the crash: accounts, opening balances and the hold
        assert await pc.hold_state("c1") == "pending"
        assert await pc.wallet_fen("alice") == 38_000
        assert await bank.card_fen("alice") == 200_000
        # the interrupted settle: no post, no payout, no points, no state row
        for tid in ("settle:c1", "pay:c1", "award:c1"):
            assert await pc.ledger.get_transfer(tid) is None
        assert await pc.wallet_fen("shop") == 0
        assert await pc.points("alice") == 0
        assert await pc.ledger.execute("SELECT * FROM pc_state") == []
        assert all((await check_invariants(pc, bank)).values())
        # recovery: the step can simply run again
        assert await pc.settle("c1", "shop") == 120
        assert await pc.wallet_fen("shop") == 12_000
        assert (await check_ledger(pc.ledger)).ok
    finally:
        await pc.close()
        await bank.close()


async def test_connection_dropped_before_commit_loses_only_the_open_block(tmp_path: Path) -> None:
    path = tmp_path / "pc.db"
    pc = await PaymentCenterLedgerBooks.open(path)
    await pc.open_customer("alice", 10_000)
    await pc.open_merchant("shop")
    await pc.hold("c1", "alice", 3_000)
    # open a block by hand and close the connection without COMMIT
    raw = pc.ledger._raw
    await pc.ledger.connection._execute(raw.execute, "BEGIN IMMEDIATE")
    from mpay.books.ledger import _apply_batch, Transfer, POST_PENDING

    await pc.ledger.connection._execute(
        _apply_batch, raw, [Transfer("settle:c1", flags=POST_PENDING, pending_id="hold:c1")], 1.0
    )
    await pc.ledger.connection._execute(raw.close)  # dropped: no COMMIT
    pc2 = await PaymentCenterLedgerBooks.open(path)
    try:
        assert await pc2.hold_state("c1") == "pending"
        assert await pc2.ledger.get_transfer("settle:c1") is None
        assert await pc2.wallet_fen("alice") == 7_000
        assert (await check_ledger(pc2.ledger)).ok
    finally:
        await pc2.close()
        await pc.ledger.connection.close()
