"""The chart of accounts: the payment center's and the bank's books on the ledger.

Implements :class:`actors.ports.PaymentCenterBooks` and :class:`actors.ports.BankBooks`,
each on its own :class:`mpay.books.ledger.Ledger` (one SQLite database per institution). The
accounts and every booking are documented in ``docs/ledger.md``. Transfer ids are derived
from the protocol's ids (contract number, top-up id, redemption id), which makes every
method idempotent: a duplicate SMS re-runs the method and finds the same transfers.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from mpay.actors.ports import AmountInvalid, PendingNotFound, UnknownAccount
from mpay.books.ledger import (
    CREDITS_MUST_NOT_EXCEED_DEBITS,
    DEBITS_MUST_NOT_EXCEED_CREDITS,
    PENDING,
    POST_PENDING,
    VOID_PENDING,
    Account,
    Ledger,
    Transfer,
    check_amount,
)

CNY = "CNY"
#: the loyalty points' own currency in the payment center's ledger
PTS = "PTS"

# Payment-center account ids (``{}`` is the party id).
WALLET = "wallet:{}"
MERCHANT = "merchant:{}"
POINTS = "points:{}"
ESCROW = "escrow"
BANK_CLEARING = "bank_clearing"
LOYALTY = "loyalty"
POINTS_ISSUED = "points_issued"

# Bank account ids.
CARD = "card:{}"
PC_SETTLEMENT = "pc_settlement"
BANK_OPENING = "bank_opening"

#: account codes whose natural balance is debits - credits (assets, expenses, sources)
DEBIT_NORMAL_CODES = frozenset({"clearing", "loyalty", "points_issued", "opening"})

#: default loyalty award: points per whole yuan settled
DEFAULT_POINTS_PER_YUAN = 1
#: default redemption rate: points per yuan of phone fee
DEFAULT_REDEEM_POINTS_PER_YUAN = 100
#: fen in one yuan
FEN_PER_YUAN = 100


def natural_balance(account: Account) -> int:
    """Posted balance with the sign an accountant expects for the account's code."""
    return account.debit_balance if account.code in DEBIT_NORMAL_CODES else account.credit_balance


def _hold_id(contract_no: str) -> str:
    return f"hold:{contract_no}"


class PaymentCenterLedgerBooks:
    """The payment center's books: wallets, merchant wallets, escrow, bank clearing,
    loyalty expense, and loyalty points (currency ``PTS``) in the same database."""

    def __init__(
        self,
        ledger: Ledger,
        *,
        points_per_yuan: int = DEFAULT_POINTS_PER_YUAN,
        redeem_points_per_yuan: int = DEFAULT_REDEEM_POINTS_PER_YUAN,
    ) -> None:
        if type(points_per_yuan) is not int or points_per_yuan < 0:
            raise ValueError(f"points_per_yuan must be an int >= 0, got {points_per_yuan!r}")
        if type(redeem_points_per_yuan) is not int or redeem_points_per_yuan <= 0:
            raise ValueError(f"redeem_points_per_yuan must be an int > 0, got {redeem_points_per_yuan!r}")
        self.ledger = ledger
        self.points_per_yuan = points_per_yuan
        self.redeem_points_per_yuan = redeem_points_per_yuan

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        clock: Callable[[], float] | None = None,
        synchronous: str = "NORMAL",
        inline: bool = False,
        checkpoint_thread: bool = False,
        points_per_yuan: int = DEFAULT_POINTS_PER_YUAN,
        redeem_points_per_yuan: int = DEFAULT_REDEEM_POINTS_PER_YUAN,
    ) -> PaymentCenterLedgerBooks:
        """Open the payment center's database and its system accounts (``inline`` and
        ``checkpoint_thread``: see :meth:`Ledger.open`)."""
        ledger = await Ledger.open(
            path, name="payment_center", clock=clock, synchronous=synchronous, inline=inline,
            checkpoint_thread=checkpoint_thread,
        )
        books = cls(ledger, points_per_yuan=points_per_yuan, redeem_points_per_yuan=redeem_points_per_yuan)
        async with ledger.atomic():
            await ledger.create_account(ESCROW, CNY, DEBITS_MUST_NOT_EXCEED_CREDITS, "escrow")
            await ledger.create_account(BANK_CLEARING, CNY, CREDITS_MUST_NOT_EXCEED_DEBITS, "clearing")
            await ledger.create_account(LOYALTY, CNY, 0, "loyalty")
            await ledger.create_account(POINTS_ISSUED, PTS, 0, "points_issued")
        return books

    async def close(self) -> None:
        await self.ledger.close()

    def atomic(self) -> AbstractAsyncContextManager[None]:
        return self.ledger.atomic()

    # -- parties --

    async def open_customer(self, customer_id: str, opening_fen: int = 0) -> None:
        """Wallet and points account; an opening balance is backed by bank clearing (the
        bank must book the same amount into the payment center's account: see
        :func:`open_customer_accounts`)."""
        await self._open_party(WALLET.format(customer_id), "wallet", customer_id, opening_fen, points=True)

    async def open_merchant(self, merchant_id: str, opening_fen: int = 0) -> None:
        await self._open_party(MERCHANT.format(merchant_id), "merchant", merchant_id, opening_fen, points=False)

    async def _open_party(self, account_id: str, code: str, party_id: str, opening_fen: int, *, points: bool) -> None:
        if opening_fen != 0:
            check_amount(opening_fen, "opening_fen")
        async with self.ledger.atomic():
            await self.ledger.create_account(account_id, CNY, DEBITS_MUST_NOT_EXCEED_CREDITS, code)
            if points:
                await self.ledger.create_account(POINTS.format(party_id), PTS, DEBITS_MUST_NOT_EXCEED_CREDITS, "points")
            if opening_fen:
                await self.ledger.create_transfer(
                    Transfer(f"opening:{account_id}", BANK_CLEARING, account_id, opening_fen, CNY, code="opening")
                )

    async def wallet_fen(self, party_id: str) -> int:
        """Available balance of a customer's or merchant's wallet (posted - pending debits)."""
        try:
            return (await self.ledger.account(WALLET.format(party_id))).available
        except UnknownAccount:
            return (await self.ledger.account(MERCHANT.format(party_id))).available

    # -- the protocol's bookings --

    async def credit_top_up(self, top_up_id: str, customer_id: str, amount_fen: int) -> None:
        """Step 5, on the bank's signed notice: bank clearing -> wallet. Idempotent on id."""
        await self.ledger.create_transfer(
            Transfer(f"topup:{top_up_id}", BANK_CLEARING, WALLET.format(customer_id), amount_fen, CNY,
                     code="top_up", user_data=top_up_id)
        )

    async def hold(
        self, contract_no: str, customer_id: str, amount_fen: int, timeout_s: float | None = None
    ) -> None:
        """Step 6 (预扣): pending transfer wallet -> escrow. Idempotent on contract_no."""
        await self.ledger.create_transfer(
            Transfer(_hold_id(contract_no), WALLET.format(customer_id), ESCROW, amount_fen, CNY,
                     flags=PENDING, timeout_s=timeout_s, code="hold", user_data=contract_no)
        )

    async def settle(self, contract_no: str, merchant_id: str, amount_fen: int | None = None) -> int:
        """Step 9: post the hold (all, or ``amount_fen`` with the rest returned to the wallet),
        pay escrow -> merchant and award points, as one linked batch. Returns the points."""
        async with self.ledger.atomic(savepoint=False):  # a read, then one atomic batch
            hold = await self.ledger.get_transfer(_hold_id(contract_no))
            if hold is None or not hold.flags & PENDING:
                raise PendingNotFound(f"no hold for contract {contract_no!r}")
            assert hold.amount is not None
            paid_fen = hold.amount if amount_fen is None else check_amount(amount_fen, "amount_fen")
            customer_id = hold.debit_account.removeprefix("wallet:")
            points = paid_fen // FEN_PER_YUAN * self.points_per_yuan
            batch = [
                Transfer(f"settle:{contract_no}", flags=POST_PENDING, pending_id=hold.id,
                         amount=paid_fen, code="settle", user_data=contract_no),
                Transfer(f"pay:{contract_no}", ESCROW, MERCHANT.format(merchant_id), paid_fen, CNY,
                         code="pay_merchant", user_data=contract_no),
            ]
            if points > 0:
                batch.append(
                    Transfer(f"award:{contract_no}", POINTS_ISSUED, POINTS.format(customer_id), points, PTS,
                             code="points_award", user_data=contract_no)
                )
            await self.ledger.create_transfers(batch)
            return points

    async def refund(self, contract_no: str) -> None:
        """Step 10: void the hold; the wallet gets it all back. A hold that already expired
        has already been returned, so refunding it is a no-op. Idempotent."""
        async with self.ledger.atomic(savepoint=False):  # a read, then one atomic transfer
            if await self.ledger.pending_state(_hold_id(contract_no)) == "expired":
                return
            await self.ledger.create_transfer(
                Transfer(f"refund:{contract_no}", flags=VOID_PENDING, pending_id=_hold_id(contract_no),
                         code="refund", user_data=contract_no)
            )

    async def hold_state(self, contract_no: str) -> str:
        """'pending', 'posted', 'voided' or 'expired'; raises PendingNotFound."""
        return await self.ledger.pending_state(_hold_id(contract_no))

    async def expire_holds(self, now_s: float | None = None) -> list[str]:
        """Void the holds whose timeout passed; returns their contract numbers."""
        return [pid.removeprefix("hold:") for pid in await self.ledger.expire_pending(now_s)]

    # -- loyalty points --

    async def points(self, customer_id: str) -> int:
        return (await self.ledger.account(POINTS.format(customer_id))).available

    async def redeem_points(self, redemption_id: str, customer_id: str, points: int) -> int:
        """Points -> phone fee: points retired (points -> points_issued) linked with
        loyalty -> wallet. ``points`` must buy whole fen. Returns the fen credited."""
        check_amount(points, "points")
        if points * FEN_PER_YUAN % self.redeem_points_per_yuan:
            raise AmountInvalid(
                f"{points} points do not buy whole fen at {self.redeem_points_per_yuan} points per yuan"
            )
        fen = points * FEN_PER_YUAN // self.redeem_points_per_yuan
        await self.ledger.create_transfers(
            [
                Transfer(f"redeem:{redemption_id}:pts", POINTS.format(customer_id), POINTS_ISSUED, points, PTS,
                         code="points_redeem", user_data=redemption_id),
                Transfer(f"redeem:{redemption_id}:cny", LOYALTY, WALLET.format(customer_id), fen, CNY,
                         code="points_redeem", user_data=redemption_id),
            ]
        )
        return fen

    # -- read helpers for summaries --

    async def balances(self) -> dict[str, int]:
        """Natural posted balance of every account (PTS accounts in points)."""
        return {a.id: natural_balance(a) for a in await self.ledger.accounts()}

    async def escrow_fen(self) -> int:
        """Money in escrow: open holds plus anything posted and not yet paid out."""
        a = await self.ledger.account(ESCROW)
        return a.credits_pending + a.credit_balance

    async def bank_clearing_fen(self) -> int:
        """The payment center's money at the bank, by its own books."""
        return (await self.ledger.account(BANK_CLEARING)).debit_balance

    async def credited_top_up_ids(self) -> set[str]:
        """Top-up ids whose bank notice has been booked (to compute top-ups in flight)."""
        rows = await self.ledger.execute("SELECT user_data FROM ledger_transfers WHERE code = 'top_up'")
        return {r[0] for r in rows}

    async def points_by_customer(self) -> dict[str, int]:
        return {
            a.id.removeprefix("points:"): a.available
            for a in await self.ledger.accounts()
            if a.code == "points"
        }


class BankLedgerBooks:
    """The bank's books: customers' card accounts, the payment center's settlement account,
    and the bank's opening (source) account for opening balances."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        clock: Callable[[], float] | None = None,
        synchronous: str = "NORMAL",
        inline: bool = False,
        checkpoint_thread: bool = False,
    ) -> BankLedgerBooks:
        ledger = await Ledger.open(path, name="bank", clock=clock, synchronous=synchronous, inline=inline,
                                  checkpoint_thread=checkpoint_thread)
        async with ledger.atomic():
            await ledger.create_account(PC_SETTLEMENT, CNY, DEBITS_MUST_NOT_EXCEED_CREDITS, "settlement")
            await ledger.create_account(BANK_OPENING, CNY, 0, "opening")
        return cls(ledger)

    async def close(self) -> None:
        await self.ledger.close()

    def atomic(self) -> AbstractAsyncContextManager[None]:
        return self.ledger.atomic()

    async def open_card(self, customer_id: str, opening_fen: int = 0) -> None:
        """A card account, opened from the bank's opening account."""
        account_id = CARD.format(customer_id)
        if opening_fen != 0:
            check_amount(opening_fen, "opening_fen")
        async with self.ledger.atomic():
            await self.ledger.create_account(account_id, CNY, DEBITS_MUST_NOT_EXCEED_CREDITS, "card")
            if opening_fen:
                await self.ledger.create_transfer(
                    Transfer(f"opening:{account_id}", BANK_OPENING, account_id, opening_fen, CNY, code="opening")
                )

    async def fund_payment_center(self, funding_id: str, amount_fen: int) -> None:
        """Book money the payment center holds at the bank (backing opening wallets)."""
        await self.ledger.create_transfer(
            Transfer(f"funding:{funding_id}", BANK_OPENING, PC_SETTLEMENT, amount_fen, CNY, code="opening")
        )

    async def card_fen(self, customer_id: str) -> int:
        return (await self.ledger.account(CARD.format(customer_id))).available

    async def top_up(self, top_up_id: str, customer_id: str, amount_fen: int) -> None:
        """Step 5: card -> the payment center's account. Idempotent on id."""
        await self.ledger.create_transfer(
            Transfer(f"topup:{top_up_id}", CARD.format(customer_id), PC_SETTLEMENT, amount_fen, CNY,
                     code="top_up", user_data=top_up_id)
        )

    async def payment_center_fen(self) -> int:
        """The payment center's balance at the bank."""
        return (await self.ledger.account(PC_SETTLEMENT)).credit_balance

    async def balances(self) -> dict[str, int]:
        return {a.id: natural_balance(a) for a in await self.ledger.accounts()}


async def open_customer_accounts(
    pc: PaymentCenterLedgerBooks, bank: BankLedgerBooks, customer_id: str, wallet_fen: int = 0, card_fen: int = 0
) -> None:
    """Open a customer in both books so reconciliation holds: the opening wallet is booked
    bank_clearing -> wallet at the payment center and bank_opening -> pc_settlement at the
    bank. Two databases, so two commits; both idempotent, so re-running completes it."""
    await bank.open_card(customer_id, card_fen)
    if wallet_fen:
        await bank.fund_payment_center(f"wallet:{customer_id}", wallet_fen)
    await pc.open_customer(customer_id, wallet_fen)


async def open_merchant_accounts(
    pc: PaymentCenterLedgerBooks, bank: BankLedgerBooks, merchant_id: str, wallet_fen: int = 0
) -> None:
    """Open a merchant wallet, backing an opening balance at the bank as for customers."""
    if wallet_fen:
        await bank.fund_payment_center(f"merchant:{merchant_id}", wallet_fen)
    await pc.open_merchant(merchant_id, wallet_fen)
