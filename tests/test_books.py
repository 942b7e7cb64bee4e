"""The payment center's and the bank's books: the protocol's money steps and the invariants."""

from __future__ import annotations

import pytest

from mpay.actors.ports import (
    AmountInvalid,
    BankBooks,
    InsufficientFunds,
    PaymentCenterBooks,
    PendingAlreadyResolved,
    PendingExpired,
    PendingNotFound,
    TransferIdConflict,
    UnknownAccount,
)
from mpay.books.accounts import BankLedgerBooks, PaymentCenterLedgerBooks, open_customer_accounts, open_merchant_accounts
from mpay.books.invariants import INVARIANT_NAMES, check_invariants, invariant_report


@pytest.fixture
async def books(clock):
    """"alice: wallet 500.00 CNY, bank card 2000.00; shop: wallet 0"."""
    pc = await PaymentCenterLedgerBooks.open(":memory:", clock=clock)
    bank = await BankLedgerBooks.open(":memory:", clock=clock)
    await open_customer_accounts(pc, bank, "alice", 50_000, 200_000)
    await open_merchant_accounts(pc, bank, "shop", 0)
    yield pc, bank
    await pc.close()
    await bank.close()


async def all_hold(pc: PaymentCenterLedgerBooks, bank: BankLedgerBooks, in_flight: int = 0) -> bool:
    report = await invariant_report(pc, bank, in_flight)
    assert tuple(report.results) == INVARIANT_NAMES
    return report.ok


async def test_books_implement_the_ports(books) -> None:
    pc, bank = books
    assert isinstance(pc, PaymentCenterBooks)
    assert isinstance(bank, BankBooks)
    assert await all_hold(pc, bank)
    assert await pc.wallet_fen("alice") == 50_000
    assert await pc.wallet_fen("shop") == 0
    assert await bank.card_fen("alice") == 200_000
    assert await pc.bank_clearing_fen() == await bank.payment_center_fen() == 50_000


async def test_hold_then_settle_pays_merchant_and_awards_points(books) -> None:
    pc, bank = books
    await pc.hold("c1", "alice", 12_345)
    assert await pc.wallet_fen("alice") == 37_655
    assert await pc.escrow_fen() == 12_345
    assert await pc.settle("c1", "shop") == 123  # 1 point per whole yuan
    assert await pc.wallet_fen("shop") == 12_345
    assert await pc.escrow_fen() == 0
    assert await pc.points("alice") == 123
    # a duplicate "transaction succeeded" SMS pays nothing twice
    assert await pc.settle("c1", "shop") == 123
    assert await pc.wallet_fen("shop") == 12_345
    assert await pc.points_by_customer() == {"alice": 123}
    assert await all_hold(pc, bank)


async def test_partial_settle_returns_the_rest(books) -> None:
    pc, bank = books
    await pc.hold("c1", "alice", 20_000)
    assert await pc.settle("c1", "shop", 15_050) == 150
    assert await pc.wallet_fen("alice") == 35_000 - 50
    assert await pc.wallet_fen("shop") == 15_050
    with pytest.raises(TransferIdConflict):  # the same contract settled differently
        await pc.settle("c1", "shop", 15_000)
    assert await all_hold(pc, bank)


async def test_refund_returns_the_hold_once(books) -> None:
    pc, bank = books
    await pc.hold("c1", "alice", 30_000)
    await pc.refund("c1")
    await pc.refund("c1")  # duplicate "agree to refund"
    assert await pc.wallet_fen("alice") == 50_000
    assert await pc.hold_state("c1") == "voided"
    with pytest.raises(PendingAlreadyResolved):
        await pc.settle("c1", "shop")
    await pc.hold("c2", "alice", 1_000)
    await pc.settle("c2", "shop")
    with pytest.raises(PendingAlreadyResolved):
        await pc.refund("c2")
    with pytest.raises(PendingNotFound):
        await pc.refund("never-held")
    assert await all_hold(pc, bank)


async def test_hold_refused_when_wallet_is_short(books) -> None:
    pc, bank = books
    with pytest.raises(InsufficientFunds):
        await pc.hold("c1", "alice", 50_001)
    with pytest.raises(UnknownAccount):
        await pc.hold("c2", "mallory", 1)
    with pytest.raises(AmountInvalid):
        await pc.hold("c3", "alice", 0)
    await pc.hold("c4", "alice", 50_000)
    with pytest.raises(InsufficientFunds):  # held money cannot be held again
        await pc.hold("c5", "alice", 1)
    assert await pc.wallet_fen("alice") == 0
    assert await all_hold(pc, bank)


async def test_settle_to_unknown_merchant_changes_nothing(books) -> None:
    pc, bank = books
    await pc.hold("c1", "alice", 5_000)
    with pytest.raises(UnknownAccount):
        await pc.settle("c1", "nobody")
    assert await pc.hold_state("c1") == "pending"
    assert await pc.points("alice") == 0
    assert await pc.escrow_fen() == 5_000
    assert await all_hold(pc, bank)


async def test_top_up_moves_money_at_both_institutions_and_reconciles(books) -> None:
    pc, bank = books
    await bank.top_up("tu1", "alice", 100_000)
    await bank.top_up("tu1", "alice", 100_000)  # duplicate instruction
    assert await bank.card_fen("alice") == 100_000
    # in flight: the bank moved it, the payment center has not booked the notice yet
    assert (await check_invariants(pc, bank))["reconciled"] is False
    assert await all_hold(pc, bank, in_flight=100_000)
    await pc.credit_top_up("tu1", "alice", 100_000)
    await pc.credit_top_up("tu1", "alice", 100_000)  # duplicate notice
    assert await pc.wallet_fen("alice") == 150_000
    assert await pc.credited_top_up_ids() == {"tu1"}
    assert await all_hold(pc, bank)
    with pytest.raises(InsufficientFunds):
        await bank.top_up("tu2", "alice", 100_001)


async def test_points_redeem_as_phone_fee(books) -> None:
    pc, bank = books
    await pc.hold("c1", "alice", 30_000)
    await pc.settle("c1", "shop")
    assert await pc.points("alice") == 300
    assert await pc.redeem_points("r1", "alice", 200) == 200  # 100 points = 1 yuan
    assert await pc.redeem_points("r1", "alice", 200) == 200  # duplicate: once
    assert await pc.points("alice") == 100
    assert await pc.wallet_fen("alice") == 20_000 + 200
    with pytest.raises(InsufficientFunds):
        await pc.redeem_points("r2", "alice", 101)
    assert await pc.wallet_fen("alice") == 20_200  # the linked CNY side did not happen either
    balances = await pc.balances()
    assert balances["loyalty"] == 200 and balances["points_issued"] == 100
    assert await all_hold(pc, bank)  # redemption is the payment center's expense


async def test_other_conversion_rates(clock) -> None:
    pc = await PaymentCenterLedgerBooks.open(":memory:", clock=clock, points_per_yuan=2, redeem_points_per_yuan=300)
    try:
        await pc.open_customer("alice", 10_000)
        await pc.open_merchant("shop")
        await pc.hold("c1", "alice", 9_999)
        assert await pc.settle("c1", "shop") == 198
        with pytest.raises(AmountInvalid):  # 100 points would be 33.3 fen
            await pc.redeem_points("r1", "alice", 100)
        assert await pc.redeem_points("r2", "alice", 150) == 50
    finally:
        await pc.close()


async def test_expired_hold_returns_money_and_cannot_settle(books, clock) -> None:
    pc, bank = books
    await pc.hold("c1", "alice", 10_000, timeout_s=600)
    clock.now = 600.0
    with pytest.raises(PendingExpired):
        await pc.settle("c1", "shop")
    assert await pc.expire_holds() == ["c1"]
    assert await pc.wallet_fen("alice") == 50_000
    await pc.refund("c1")  # already returned: a no-op
    assert await pc.hold_state("c1") == "expired"
    assert await all_hold(pc, bank)


async def test_atomic_step_with_two_bookings(books) -> None:
    pc, bank = books
    with pytest.raises(RuntimeError):
        async with pc.atomic():
            await pc.hold("c1", "alice", 1_000)
            await pc.settle("c1", "shop")
            raise RuntimeError("the step failed after booking")
    with pytest.raises(PendingNotFound):
        await pc.hold_state("c1")
    assert await pc.wallet_fen("shop") == 0


async def test_invariants_catch_tampering(books) -> None:
    pc, bank = books
    await pc.ledger.execute("UPDATE ledger_accounts SET credits_posted = credits_posted + 1 WHERE id = 'wallet:alice'")
    report = await invariant_report(pc, bank)
    assert report.results["balanced_pc"] is False
    assert report.results["balances_match_transfers"] is False
    assert report.results["balanced_bank"] is True
    assert any("wallet:alice" in m for m in report.messages)
    await bank.ledger.execute("UPDATE ledger_accounts SET debits_posted = 1000000000 WHERE id = 'card:alice'")
    report = await invariant_report(pc, bank)
    assert report.results["no_overdraft"] is False
