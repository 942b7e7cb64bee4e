"""The small interfaces (ports) through which actors reach the world.

Actors import only ``protocol`` and this module; ``mpay`` provides the implementations
(SQLite ledger, SMS network, virtual clock, credit bureau). The errors the ports raise
live here too, so an actor can catch them without importing ``mpay``.

Money is always an ``int`` of minor units (fen); time is ``float`` virtual seconds from
the run's start unless a name says ``unix``.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


# --- errors --------------------------------------------------------------------------------


class LedgerError(Exception):
    """Base of every refusal by a ledger. ``reason`` is a stable snake_case label."""

    reason = "ledger_error"


class AmountInvalid(LedgerError):
    """Zero, negative, non-integer or overflowing amount."""

    reason = "amount_invalid"


class UnknownAccount(LedgerError):
    reason = "unknown_account"


class AccountExists(LedgerError):
    """The same account id opened again with different properties."""

    reason = "account_exists"


class CurrencyMismatch(LedgerError):
    reason = "currency_mismatch"


class InsufficientFunds(LedgerError):
    """The transfer would take an overdraft-protected account below zero."""

    reason = "insufficient_funds"


class TransferIdConflict(LedgerError):
    """The same transfer id was used before with different content."""

    reason = "transfer_id_conflict"


class PendingNotFound(LedgerError):
    reason = "pending_not_found"


class PendingAlreadyResolved(LedgerError):
    """A hold was already posted or voided (each is resolved at most once)."""

    reason = "pending_already_resolved"


class PendingExpired(LedgerError):
    """A hold whose timeout passed; it can only be voided."""

    reason = "pending_expired"


class TransferInvalid(LedgerError):
    """A malformed transfer: same account on both sides, bad flag combination, a post or
    void without ``pending_id`` or naming other accounts than its hold, an over-long id.
    (Added by the ledger helper, H3.)"""

    reason = "transfer_invalid"


class RatingRefused(Exception):
    """A rating that is not allowed: twice, by a stranger, or before the transaction ended."""

    reason = "rating_refused"


# --- ledger ports --------------------------------------------------------------------------


@runtime_checkable
class PaymentCenterBooks(Protocol):
    """The payment center's money: phone-fee wallets, merchant wallets, escrow, points.

    Each method is one SQL transaction; inside ``atomic()`` several calls (and the payment
    center's own state writes) commit together.
    """

    def atomic(self) -> AbstractAsyncContextManager[None]: ...

    async def open_customer(self, customer_id: str, opening_fen: int = 0) -> None: ...

    async def open_merchant(self, merchant_id: str, opening_fen: int = 0) -> None: ...

    async def wallet_fen(self, party_id: str) -> int:
        """Available balance: posted credits - posted debits - pending debits."""
        ...

    async def credit_top_up(self, top_up_id: str, customer_id: str, amount_fen: int) -> None:
        """On the bank's signed notice: bank clearing -> customer wallet. Idempotent on id."""
        ...

    async def hold(
        self, contract_no: str, customer_id: str, amount_fen: int, timeout_s: float | None = None
    ) -> None:
        """Step 6, 预扣: a pending transfer wallet -> escrow. Raises InsufficientFunds."""
        ...

    async def settle(
        self, contract_no: str, merchant_id: str, amount_fen: int | None = None
    ) -> int:
        """Step 9: post the hold (all, or ``amount_fen`` with the rest returned), pay the
        merchant and award the customer loyalty points. Returns the points awarded."""
        ...

    async def refund(self, contract_no: str) -> None:
        """Step 10: void the hold; the customer's wallet gets it all back."""
        ...

    async def points(self, customer_id: str) -> int: ...

    async def redeem_points(self, redemption_id: str, customer_id: str, points: int) -> int:
        """Points -> phone-fee credit. Returns the fen credited."""
        ...


@runtime_checkable
class BankBooks(Protocol):
    """The bank's money: customers' card accounts and the payment center's account."""

    def atomic(self) -> AbstractAsyncContextManager[None]: ...

    async def open_card(self, customer_id: str, opening_fen: int = 0) -> None: ...

    async def card_fen(self, customer_id: str) -> int: ...

    async def top_up(self, top_up_id: str, customer_id: str, amount_fen: int) -> None:
        """Step 5: card -> the payment center's account. Idempotent on id."""
        ...


# --- credit port ---------------------------------------------------------------------------


@runtime_checkable
class CreditBureau(Protocol):
    """Ratings, integrity points (诚信积分), credit scores and the credit policy."""

    async def record_outcome(
        self, contract_no: str, customer_id: str, merchant_id: str, outcome: str, at_s: float
    ) -> None:
        """A transaction reached a terminal outcome; from now on its two parties may rate."""
        ...

    async def record_behaviour(self, party_id: str, kind: str, at_s: float) -> None:
        """A behaviour event: 'deadline_missed', 'dispute_lost', ..."""
        ...

    async def rate(
        self, contract_no: str, rater_id: str, ratee_id: str, stars: int, comment: str, at_s: float
    ) -> None:
        """Step 11. Raises RatingRefused."""
        ...

    async def score(self, party_id: str, now_s: float) -> float:
        """Credit score in [0, 1000]."""
        ...

    async def integrity_points(self, party_id: str) -> int: ...

    async def allow_payment(
        self, customer_id: str, merchant_id: str, amount_fen: int, now_s: float
    ) -> str | None:
        """The credit policy: None to allow, or the reason for refusing."""
        ...


# --- transport and clock ports -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendMeta:
    """What the simulator may know about an SMS for its counters; never shown to a tap."""

    message_type: str
    contract_no: str | None


@runtime_checkable
class Transport(Protocol):
    """The SMS network as an actor sees it."""

    def send(self, sender_id: str, recipient_id: str, envelope: bytes, meta: SendMeta) -> None: ...


@runtime_checkable
class Clock(Protocol):
    """Virtual (or scaled real) time and timers."""

    def now_s(self) -> float:
        """Seconds since the run started."""
        ...

    def now_unix_s(self) -> float:
        """Absolute time, for certificates and envelope send times."""
        ...

    def call_at(self, at_s: float, owner: str, name: str) -> None:
        """Deliver timer ``name`` to actor ``owner`` at ``at_s`` (replaces one of the same name)."""
        ...

    def cancel(self, owner: str, name: str) -> None: ...


# --- what arrives in an actor's mailbox ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class SmsArrival:
    """One SMS (a whole message or one concatenated part) delivered to a party's handset."""

    sender_number: str
    recipient_number: str
    data: bytes
    at_s: float


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer set with ``Clock.call_at`` came due."""

    owner: str
    name: str
    at_s: float


@runtime_checkable
class Tracer(Protocol):
    """Where actors report what happened (one event = one line of trace.jsonl)."""

    def record(self, kind: str, **fields: object) -> None: ...


@runtime_checkable
class StateStore(Protocol):
    """Durable key/value state of a restartable party (the payment center): transactions,
    timers, replay windows, registrations, and the outbox of sealed SMS not yet sent. Writes
    made inside the books' ``atomic()`` block commit with the ledger work of the same
    protocol step."""

    async def put(self, table: str, key: str, value: dict) -> None: ...

    async def put_many(self, items: list[tuple[str, str, dict]]) -> None:
        """Several ``(table, key, value)`` puts at once, all or none, in order."""
        ...

    async def delete(self, table: str, key: str) -> None: ...

    async def delete_many(self, table: str, keys: list[str]) -> None:
        """Delete several keys at once, all or none (one statement)."""
        ...

    async def load(self, table: str) -> dict[str, dict]: ...

    async def outbox_add(self, entries: list[tuple[int, str, str, str | None, bytes]]) -> None:
        """Keep sealed SMS ``(seq, recipient_id, message_type, contract_no, envelope)`` until
        sent, all or none (inside the step's transaction: they commit with it)."""
        ...

    async def outbox_remove(self, seqs: list[int]) -> None:
        """Forget sent SMS by sequence number, all or none."""
        ...

    async def outbox_load(self) -> list[tuple[int, str, str, str | None, bytes]]:
        """The SMS still kept, as given to :meth:`outbox_add`, by sequence number."""
        ...


@dataclass(frozen=True, slots=True)
class GoodsArrived:
    """A parcel reached its addressee (goods to the customer, or a return to the merchant)."""

    contract_no: str
    sender_id: str
    at_s: float


@runtime_checkable
class Courier(Protocol):
    """The physical delivery of goods: not an SMS, so no adversary on the air can touch it."""

    def dispatch(self, sender_id: str, recipient_id: str, contract_no: str, transit_s: float) -> None: ...
