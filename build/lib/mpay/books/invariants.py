"""The money invariants, checked over the payment center's and the bank's databases.

Used by the tests and by every run's summary. :func:`check_invariants` returns stable
names -> bool; :func:`invariant_report` also says what failed. Each book is read in one
snapshot on its database thread, and balances are recomputed from the immutable
transfers, so a stored balance that drifted from its transfers is caught too.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mpay.books.ledger import (
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    EXPIRED_CODE,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Ledger,
)

if TYPE_CHECKING:
    from mpay.books.accounts import BankLedgerBooks, PaymentCenterLedgerBooks

#: stable names of the invariants (keys of ``summary.invariants``)
INVARIANT_NAMES = (
    "balanced_pc",
    "balanced_bank",
    "balances_match_transfers",
    "no_overdraft",
    "holds_resolved_once",
    "reconciled",
)

#: at most this many messages per invariant in a report
MAX_MESSAGES_PER_CHECK = 20


@dataclass
class LedgerReport:
    """The per-book checks of one ledger."""

    name: str
    balanced: bool = True
    balances_match_transfers: bool = True
    no_overdraft: bool = True
    holds_resolved_once: bool = True
    messages: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.balanced and self.balances_match_transfers and self.no_overdraft and self.holds_resolved_once


@dataclass
class InvariantReport:
    """Every invariant's result, plus human-readable messages for the failures."""

    results: dict[str, bool]
    messages: list[str]

    @property
    def ok(self) -> bool:
        return all(self.results.values())


def _check_book(c: sqlite3.Connection, name: str) -> LedgerReport:
    rep = LedgerReport(name)
    counts: dict[str, int] = {}

    def fail(check: str, message: str) -> None:
        setattr(rep, check, False)
        counts[check] = counts.get(check, 0) + 1
        if counts[check] <= MAX_MESSAGES_PER_CHECK:
            rep.messages.append(f"{name}: {check}: {message}")

    # 1. Per currency, total debits = total credits (posted and pending); Python ints, as
    #    a SQL SUM over 64-bit columns could overflow.
    accounts = {
        r[0]: r
        for r in c.execute(
            "SELECT id, flags, debits_pending, debits_posted, credits_pending, credits_posted, currency "
            "FROM ledger_accounts"
        )
    }
    totals: dict[str, list[int]] = {}
    for _, _, dp, dpo, cp, cpo, cur in accounts.values():
        tot = totals.setdefault(cur, [0, 0, 0, 0])
        tot[0] += dp
        tot[1] += dpo
        tot[2] += cp
        tot[3] += cpo
    for cur, (dp, dpo, cp, cpo) in sorted(totals.items()):
        if dpo != cpo:
            fail("balanced", f"{cur}: posted debits {dpo} != posted credits {cpo}")
        if dp != cp:
            fail("balanced", f"{cur}: pending debits {dp} != pending credits {cp}")

    # 2. Stored balances equal the sums of the transfers.
    derived = {aid: [0, 0, 0, 0] for aid in accounts}
    transfers = {}
    resolvers: dict[str, list[tuple]] = {}
    for row in c.execute(
        "SELECT rowid, id, debit_account, credit_account, amount, flags, pending_id, expires_at_s, code, at_s "
        "FROM ledger_transfers ORDER BY rowid"
    ):
        rowid, tid, dr, cr, amount, flags, pending_id, expires, code, at_s = row
        transfers[tid] = row
        if pending_id is not None:
            resolvers.setdefault(pending_id, []).append(row)
        if dr not in derived or cr not in derived:
            fail("balances_match_transfers", f"transfer {tid} names an unknown account")
            continue
        if flags & PENDING:
            derived[dr][0] += amount
            derived[cr][2] += amount
        elif flags & VOID_PENDING:
            pass
        else:  # a plain transfer or a post
            derived[dr][1] += amount
            derived[cr][3] += amount
    for pid, rows in resolvers.items():
        hold = transfers.get(pid)
        if hold is not None and hold[5] & PENDING and hold[2] in derived and hold[3] in derived:
            derived[hold[2]][0] -= hold[4]
            derived[hold[3]][2] -= hold[4]
    for aid, (_, flags, dp, dpo, cp, cpo, _cur) in accounts.items():
        if [dp, dpo, cp, cpo] != derived[aid]:
            fail("balances_match_transfers", f"{aid}: stored {[dp, dpo, cp, cpo]} != from transfers {derived[aid]}")
        # 3. No overdraft-protected account below zero.
        if flags & DEBITS_MUST_NOT_EXCEED_CREDITS and dp + dpo > cpo:
            fail("no_overdraft", f"{aid}: debits {dp}+{dpo} exceed credits {cpo}")
        if flags & CREDITS_MUST_NOT_EXCEED_DEBITS and cp + cpo > dpo:
            fail("no_overdraft", f"{aid}: credits {cp}+{cpo} exceed debits {dpo}")

    # 4. Every hold resolved at most once, after it was made, and consistently.
    for pid, rows in resolvers.items():
        if len(rows) > 1:
            fail("holds_resolved_once", f"hold {pid} resolved {len(rows)} times: {[r[1] for r in rows]}")
        hold = transfers.get(pid)
        if hold is None or not hold[5] & PENDING:
            fail("holds_resolved_once", f"{rows[0][1]} resolves {pid}, which is not a hold")
            continue
        h_rowid, _, h_dr, h_cr, h_amount, _, _, h_expires, _, h_at = hold
        for rowid, tid, dr, cr, amount, flags, _, _, code, at_s in rows:
            if rowid < h_rowid or at_s < h_at:
                fail("holds_resolved_once", f"{tid} resolves {pid} before it was made")
            if (dr, cr) != (h_dr, h_cr):
                fail("holds_resolved_once", f"{tid} names other accounts than hold {pid}")
            if flags & POST_PENDING:
                if amount > h_amount:
                    fail("holds_resolved_once", f"{tid} posts {amount} > hold {pid} of {h_amount}")
                if h_expires is not None and at_s >= h_expires:
                    fail("holds_resolved_once", f"{tid} posts hold {pid} after it expired")
            elif flags & VOID_PENDING:
                if amount != h_amount:
                    fail("holds_resolved_once", f"{tid} voids {amount} of hold {pid} of {h_amount}")
                if code == EXPIRED_CODE and (h_expires is None or at_s < h_expires):
                    fail("holds_resolved_once", f"{tid} expires hold {pid} before its timeout")
            else:
                fail("holds_resolved_once", f"{tid} has pending_id but is neither post nor void")
    return rep


async def check_ledger(ledger: Ledger) -> LedgerReport:
    """The per-book invariants of one ledger, in one read snapshot."""
    return await ledger.read(lambda c: _check_book(c, ledger.name))


async def invariant_report(
    pc: PaymentCenterLedgerBooks, bank: BankLedgerBooks, top_ups_in_flight_fen: int = 0
) -> InvariantReport:
    """All invariants with messages. ``top_ups_in_flight_fen``: money the bank has moved to
    the payment center's account whose notice the payment center has not booked yet."""
    from mpay.books.accounts import BANK_CLEARING, PC_SETTLEMENT

    pc_rep = await check_ledger(pc.ledger)
    bank_rep = await check_ledger(bank.ledger)
    messages = pc_rep.messages + bank_rep.messages
    clearing_fen = (await pc.ledger.account(BANK_CLEARING)).debit_balance
    at_bank_fen = (await bank.ledger.account(PC_SETTLEMENT)).credit_balance
    reconciled = clearing_fen + top_ups_in_flight_fen == at_bank_fen
    if not reconciled:
        messages.append(
            f"reconciled: payment center's bank clearing {clearing_fen} + in flight {top_ups_in_flight_fen}"
            f" != bank's payment-center account {at_bank_fen}"
        )
    results = {
        "balanced_pc": pc_rep.balanced,
        "balanced_bank": bank_rep.balanced,
        "balances_match_transfers": pc_rep.balances_match_transfers and bank_rep.balances_match_transfers,
        "no_overdraft": pc_rep.no_overdraft and bank_rep.no_overdraft,
        "holds_resolved_once": pc_rep.holds_resolved_once and bank_rep.holds_resolved_once,
        "reconciled": reconciled,
    }
    return InvariantReport(results, messages)


async def check_invariants(
    pc: PaymentCenterLedgerBooks, bank: BankLedgerBooks, top_ups_in_flight_fen: int = 0
) -> dict[str, bool]:
    """Stable invariant names -> holds? (see :data:`INVARIANT_NAMES`)."""
    return (await invariant_report(pc, bank, top_ups_in_flight_fen)).results
