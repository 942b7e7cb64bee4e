"""Hypothesis stateful test: random sequences of ledger operations against a simple model.

Rules: open account, transfer, hold (with or without timeout), post (full or partial),
void, duplicate id (same content: no-op; different: conflict), time passing with expiry.
After every step the invariants hold and every balance equals the model's.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, replace

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from mpay.actors.ports import (
    AmountInvalid,
    CurrencyMismatch,
    InsufficientFunds,
    LedgerError,
    PendingAlreadyResolved,
    PendingExpired,
    PendingNotFound,
    TransferIdConflict,
    TransferInvalid,
    UnknownAccount,
)
from mpay.books.invariants import check_ledger
from mpay.books.ledger import (
    CREATED,
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    EXISTS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Ledger,
    Transfer,
)

#: opened by the initialize rule: a source, two wallets, an asset account, a points account
INITIAL = [
    ("src", "CNY", 0),
    ("w1", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS),
    ("w2", "CNY", DEBITS_MUST_NOT_EXCEED_CREDITS),
    ("bank", "CNY", CREDITS_MUST_NOT_EXCEED_DEBITS),
    ("pts", "PTS", 0),
]
ACCOUNTS = [a for a, _, _ in INITIAL] + ["x1", "x2"]
HOLD_IDS = [f"h{i}" for i in range(8)]
LONG = os.environ.get("MPAY_LONG") == "1"


@dataclass
class Hold:
    debit: str
    credit: str
    amount: int
    expires_at_s: float | None
    state: str = "pending"  # posted / voided / expired


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.ledger: Ledger = self.run(Ledger.open(":memory:", name="model"))
        self.now_s = 0.0
        self.accounts: dict[str, tuple[str, int]] = {}  # id -> (currency, flags)
        self.cols: dict[str, list[int]] = {}  # id -> [dp, dpo, cp, cpo]
        self.sent: dict[str, Transfer] = {}  # transfer id -> the request that created it
        self.holds: dict[str, Hold] = {}
        self.next_id = 0

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.ledger.close())
        self.loop.close()

    def new_id(self) -> str:
        self.next_id += 1
        return f"t{self.next_id}"

    def submit(self, t: Transfer, expected: type[LedgerError] | None) -> None:
        try:
            result = self.run(self.ledger.create_transfer(t, now_s=self.now_s))
        except LedgerError as exc:
            assert expected is not None and type(exc) is expected, f"{t}: got {exc!r}, model expected {expected}"
            return
        assert expected is None, f"{t}: created, model expected {expected}"
        assert result == CREATED
        self.sent[t.id] = t

    # -- rules --

    @initialize()
    def open_initial_accounts(self) -> None:
        for account, currency, flags in INITIAL:
            self.open_account(account, currency, flags)

    @rule(
        account=st.sampled_from(ACCOUNTS),
        currency=st.sampled_from(["CNY", "CNY", "PTS"]),
        flags=st.sampled_from([0, DEBITS_MUST_NOT_EXCEED_CREDITS, CREDITS_MUST_NOT_EXCEED_DEBITS]),
    )
    def open_account(self, account: str, currency: str, flags: int) -> None:
        known = self.accounts.get(account)
        try:
            created = self.run(self.ledger.create_account(account, currency, flags))
        except LedgerError as exc:
            assert known is not None and known != (currency, flags), repr(exc)
            return
        assert created == (known is None)
        if known is None:
            self.accounts[account] = (currency, flags)
            self.cols[account] = [0, 0, 0, 0]

    def expect_new(self, debit: str, credit: str, amount: int) -> type[LedgerError] | None:
        if amount <= 0:
            return AmountInvalid
        if debit == credit:
            return TransferInvalid
        if debit not in self.accounts or credit not in self.accounts:
            return UnknownAccount
        if self.accounts[debit][0] != self.accounts[credit][0]:
            return CurrencyMismatch
        d, c = self.cols[debit], self.cols[credit]
        if self.accounts[debit][1] & DEBITS_MUST_NOT_EXCEED_CREDITS and d[0] + d[1] + amount > d[3]:
            return InsufficientFunds
        if self.accounts[credit][1] & CREDITS_MUST_NOT_EXCEED_DEBITS and c[2] + c[3] + amount > c[1]:
            return InsufficientFunds
        return None

    @rule(
        debit=st.sampled_from(ACCOUNTS),
        credit=st.sampled_from(ACCOUNTS),
        amount=st.integers(-5, 300) | st.integers(1, 40),
    )
    def transfer(self, debit: str, credit: str, amount: int) -> None:
        expected = self.expect_new(debit, credit, amount)
        self.submit(Transfer(self.new_id(), debit, credit, amount), expected)
        if expected is None:
            self.cols[debit][1] += amount
            self.cols[credit][3] += amount

    @rule(
        hold_id=st.sampled_from(HOLD_IDS),
        debit=st.sampled_from(ACCOUNTS),
        credit=st.sampled_from(ACCOUNTS),
        amount=st.integers(1, 300),
        timeout_s=st.none() | st.sampled_from([10.0, 60.0]),
    )
    def hold(self, hold_id: str, debit: str, credit: str, amount: int, timeout_s: float | None) -> None:
        t = Transfer(hold_id, debit, credit, amount, flags=PENDING, timeout_s=timeout_s)
        if hold_id in self.sent:
            same = self.sent[hold_id] == t
            result_expected = None if same else TransferIdConflict
            try:
                result = self.run(self.ledger.create_transfer(t, now_s=self.now_s))
            except LedgerError as exc:
                assert type(exc) is result_expected, repr(exc)
                return
            assert same and result == EXISTS
            return
        expected = self.expect_new(debit, credit, amount)
        self.submit(t, expected)
        if expected is None:
            self.cols[debit][0] += amount
            self.cols[credit][2] += amount
            expires = None if timeout_s is None else self.now_s + timeout_s
            self.holds[hold_id] = Hold(debit, credit, amount, expires)

    def expect_resolve(self, hold_id: str, post: bool, amount: int | None) -> type[LedgerError] | None:
        h = self.holds.get(hold_id)
        if h is None:
            return PendingNotFound
        if h.state == "expired":
            return PendingExpired
        if h.state != "pending":
            return PendingAlreadyResolved
        if post and h.expires_at_s is not None and self.now_s >= h.expires_at_s:
            return PendingExpired
        if post and amount is not None and amount > h.amount:
            return AmountInvalid
        return None

    @rule(hold_id=st.sampled_from(HOLD_IDS), amount=st.none() | st.integers(1, 300))
    def post(self, hold_id: str, amount: int | None) -> None:
        expected = self.expect_resolve(hold_id, True, amount)
        self.submit(Transfer(self.new_id(), flags=POST_PENDING, pending_id=hold_id, amount=amount), expected)
        if expected is None:
            h = self.holds[hold_id]
            posted = h.amount if amount is None else amount
            self.cols[h.debit][0] -= h.amount
            self.cols[h.credit][2] -= h.amount
            self.cols[h.debit][1] += posted
            self.cols[h.credit][3] += posted
            h.state = "posted"

    @rule(hold_id=st.sampled_from(HOLD_IDS))
    def void(self, hold_id: str) -> None:
        expected = self.expect_resolve(hold_id, False, None)
        self.submit(Transfer(self.new_id(), flags=VOID_PENDING, pending_id=hold_id), expected)
        if expected is None:
            h = self.holds[hold_id]
            self.cols[h.debit][0] -= h.amount
            self.cols[h.credit][2] -= h.amount
            h.state = "voided"

    @precondition(lambda self: bool(self.sent))
    @rule(data=st.data(), change=st.booleans())
    def duplicate(self, data: st.DataObject, change: bool) -> None:
        tid = data.draw(st.sampled_from(sorted(self.sent)))
        t = self.sent[tid]
        if change:
            try:
                self.run(self.ledger.create_transfer(replace(t, user_data=t.user_data + "!"), now_s=self.now_s))
            except TransferIdConflict:
                return
            raise AssertionError(f"changed duplicate of {tid} was accepted")
        assert self.run(self.ledger.create_transfer(t, now_s=self.now_s)) == EXISTS

    @rule(dt=st.sampled_from([1.0, 5.0, 30.0, 100.0]))
    def time_passes(self, dt: float) -> None:
        self.now_s += dt
        expired = self.run(self.ledger.expire_pending(self.now_s))
        due = [
            hid
            for hid, h in self.holds.items()
            if h.state == "pending" and h.expires_at_s is not None and h.expires_at_s <= self.now_s
        ]
        assert sorted(expired) == sorted(due)
        for hid in due:
            h = self.holds[hid]
            self.cols[h.debit][0] -= h.amount
            self.cols[h.credit][2] -= h.amount
            h.state = "expired"

    # -- invariants --

    @invariant()
    def invariants_hold(self) -> None:
        report = self.run(check_ledger(self.ledger))
        assert report.ok, report.messages

    @invariant()
    def balances_match_the_model(self) -> None:
        stored = {
            a.id: [a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted]
            for a in self.run(self.ledger.accounts())
        }
        assert stored == self.cols


LedgerMachine.TestCase.settings = settings(
    max_examples=400 if LONG else 60,
    stateful_step_count=60 if LONG else 40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLedgerMachine = LedgerMachine.TestCase
