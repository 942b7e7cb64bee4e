"""The escrow state machine: the payment center's view of one transaction, step 3 on.

A pure transition function in the style of h11: ``transition(txn, event, now_s, windows)``
returns the next :class:`EscrowTxn` and the list of :class:`Effect` objects the payment
center actor must perform (send an SMS, place or resolve the hold, start or cancel a timer,
record an outcome). Nothing here performs I/O, reads a clock or touches money: the actor
does, and feeds results back as events (``HoldPlaced`` / ``HoldFailed``).

The legal moves are the table :data:`TRANSITIONS`, read top to bottom like the seed::

    requested --CreditChecked--> awaiting_confirmation        (step 4: confirmation request)
                              \\-> declined                   (credit policy refuses)
    awaiting_confirmation --TopUpCredited--> (same state)     (step 5: bank tops up)
    awaiting_confirmation --Confirmed--> holding              (step 5 -> 6: place the hold)
    awaiting_confirmation --Declined | lapse(confirm)--> declined      (step 4: "ends here")
    holding --HoldPlaced--> awaiting_shipment                 (step 6: ship request)
    holding --HoldFailed--> declined                          (insufficient funds)
    awaiting_shipment --Shipped--> awaiting_acceptance        (step 7)
    awaiting_shipment --lapse(ship)--> refunded               (EXTENSION: automatic refund)
    awaiting_acceptance --Accepted | lapse(accept)--> settled (steps 8, 9; lapse = auto accept)
    awaiting_acceptance --Rejected--> awaiting_return         (step 8: goods go back)
    awaiting_return --RefundAgreed--> refunded                (step 10)
    awaiting_return --lapse(refund)--> disputed               (EXTENSION: dispute)
    disputed --DisputeDecided(refund|settle)--> refunded | settled     (EXTENSION)
    disputed --RefundAgreed--> refunded                       (EXTENSION: late agreement)

Any other (state, event) pair raises :class:`~protocol.errors.IllegalTransition` and leaves
the transaction unchanged. A timer lapse that is no longer current (another timer is armed,
the state moved on, or its deadline has not come) is *ignored*: the same transaction and no
effects. Timers come from our own clock, not from the network, so a stale one is a race
with a cancellation, not an attack worth counting as a rejection.

Terminal states: settled, refunded, declined. Every terminal state resolves the escrow
exactly once: settled = all to the merchant, refunded = all back to the customer,
declined = never held.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from typing import Any, ClassVar, get_args

from mpay.protocol import messages as m
from mpay.protocol.errors import IllegalTransition, MalformedMessage
from mpay.protocol.messages import (
    CURRENCY,
    MAX_AMOUNT_FEN,
    MAX_REF_CHARS,
    MAX_TEXT_CHARS,
    MAX_WINDOW_S,
    DisputeOutcome,
    RefundReason,
    RefusalReason,
    RejectionReason,
)

# --- named limits and vocabularies -------------------------------------------------------------

#: Distinct top-ups one transaction records; more is refused (the wallet is credited anyway).
MAX_TOP_UPS_PER_TXN = 8
#: Longest history of step names (the longest legal path has 11 steps plus the top-ups).
MAX_STEPS = 32
#: Longest free-text detail kept in a transaction (decline detail, rejection text).
MAX_DETAIL_CHARS = MAX_TEXT_CHARS

DECLINE_REASONS: tuple[str, ...] = get_args(RefusalReason)
REFUND_REASONS: tuple[str, ...] = get_args(RefundReason)
REJECTION_REASONS: tuple[str, ...] = get_args(RejectionReason)
DISPUTE_DECISIONS: tuple[str, ...] = get_args(DisputeOutcome)
#: Behaviour kinds reported to the credit bureau.
BEHAVIOURS: tuple[str, ...] = ("deadline_missed", "dispute_lost")
#: Outcomes reported by RecordOutcome (and by :func:`outcome_of`).
OUTCOMES: tuple[str, ...] = ("settled", "refunded", "declined", "disputed")


class State(StrEnum):
    """Where one transaction stands, from the payment center's side."""

    REQUESTED = "requested"  # step 3 received; credit policy not yet asked
    AWAITING_CONFIRMATION = "awaiting_confirmation"  # step 4 sent; confirm window running
    HOLDING = "holding"  # step 5 confirmed; the hold (预扣) is being placed
    AWAITING_SHIPMENT = "awaiting_shipment"  # step 6 sent; ship window running (EXTENSION)
    AWAITING_ACCEPTANCE = "awaiting_acceptance"  # step 7 done; acceptance window running
    AWAITING_RETURN = "awaiting_return"  # step 8 rejected; refund window running (EXTENSION)
    DISPUTED = "disputed"  # EXTENSION: the payment center decides
    SETTLED = "settled"  # step 9: paid to the merchant
    REFUNDED = "refunded"  # step 10: paid back to the customer
    DECLINED = "declined"  # steps 3-6: no money ever held


TERMINAL_STATES: frozenset[State] = frozenset({State.SETTLED, State.REFUNDED, State.DECLINED})

#: The timer each waiting state arms, and the window that sets it.
TIMER_OF_STATE: dict[State, str] = {
    State.AWAITING_CONFIRMATION: "confirm",
    State.AWAITING_SHIPMENT: "ship",
    State.AWAITING_ACCEPTANCE: "accept",
    State.AWAITING_RETURN: "refund",
}
TIMER_NAMES: tuple[str, ...] = ("confirm", "ship", "accept", "refund")


def is_terminal(state: State | str) -> bool:
    """True for settled, refunded and declined: nothing more happens to the money."""
    return State(state) in TERMINAL_STATES


@dataclass(frozen=True, slots=True)
class Windows:
    """The seed's "set times", in seconds. Ship and refund windows are EXTENSIONS."""

    confirm_window_s: float = 30 * 60.0
    ship_window_s: float = 72 * 3600.0  # EXTENSION
    accept_window_s: float = 10 * 24 * 3600.0
    refund_window_s: float = 7 * 24 * 3600.0  # EXTENSION

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or not 0 < value <= MAX_WINDOW_S
            ):
                raise ValueError(f"{f.name} must be in (0, {MAX_WINDOW_S}] seconds, got {value!r}")


# --- small validation helpers (events and stored transactions) -------------------------------


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise MalformedMessage(what)


def _is_amount(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_AMOUNT_FEN


def _is_text(value: Any, limit: int) -> bool:
    return isinstance(value, str) and len(value) <= limit


#: field names of each event and effect class, in declaration order (filled on first use)
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_values(obj: Any) -> dict[str, Any]:
    """``dataclasses.asdict`` for the flat events and effects, without its recursive deep
    copy: every field is a str, int, float, bool or None, which asdict returns as is."""
    cls = type(obj)
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))
    return {name: getattr(obj, name) for name in names}


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened to a transaction: a verified SMS, a ledger result, a timer."""

    KIND: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.KIND, **_field_values(self)}


@dataclass(frozen=True, slots=True)
class CreditChecked(Event):
    """Step 3: the credit policy's answer to the payment request (None = allowed)."""

    KIND: ClassVar[str] = "credit_checked"
    refusal: str | None = None

    def __post_init__(self) -> None:
        _check(self.refusal is None or _is_text(self.refusal, MAX_DETAIL_CHARS), "refusal")


@dataclass(frozen=True, slots=True)
class TopUpCredited(Event):
    """Step 5: the bank's top-up notice was credited to the customer's wallet."""

    KIND: ClassVar[str] = "top_up_credited"
    top_up_id: str
    amount_fen: int

    def __post_init__(self) -> None:
        _check(_is_text(self.top_up_id, MAX_REF_CHARS) and self.top_up_id != "", "top_up_id")
        _check(_is_amount(self.amount_fen), "amount_fen")


@dataclass(frozen=True, slots=True)
class Confirmed(Event):
    """Step 5: the customer confirmed; ``contract_digest_hex`` names the contract agreed."""

    KIND: ClassVar[str] = "confirmed"
    contract_digest_hex: str = ""

    def __post_init__(self) -> None:
        _check(_is_text(self.contract_digest_hex, 64), "contract_digest_hex")


@dataclass(frozen=True, slots=True)
class Declined(Event):
    """Step 5 alternative: the customer declined the contract."""

    KIND: ClassVar[str] = "declined"
    text: str = ""

    def __post_init__(self) -> None:
        _check(_is_text(self.text, MAX_DETAIL_CHARS), "text")


@dataclass(frozen=True, slots=True)
class HoldPlaced(Event):
    """Step 6: the actor's PlaceHold succeeded: the amount is in escrow."""

    KIND: ClassVar[str] = "hold_placed"


@dataclass(frozen=True, slots=True)
class HoldFailed(Event):
    """Step 6: the actor's PlaceHold was refused by the ledger."""

    KIND: ClassVar[str] = "hold_failed"
    reason: str = "insufficient_funds"

    def __post_init__(self) -> None:
        _check(_is_text(self.reason, MAX_DETAIL_CHARS), "reason")


@dataclass(frozen=True, slots=True)
class Shipped(Event):
    """Step 7: the merchant's shipment report arrived."""

    KIND: ClassVar[str] = "shipped"
    tracking_no: str = ""

    def __post_init__(self) -> None:
        _check(_is_text(self.tracking_no, MAX_REF_CHARS), "tracking_no")


@dataclass(frozen=True, slots=True)
class Accepted(Event):
    """Step 8: "transaction succeeded" from the customer."""

    KIND: ClassVar[str] = "accepted"


@dataclass(frozen=True, slots=True)
class Rejected(Event):
    """Step 8: "transaction failed", with the reason code and the customer's explanation."""

    KIND: ClassVar[str] = "rejected"
    reason: str
    text: str = ""

    def __post_init__(self) -> None:
        _check(self.reason in REJECTION_REASONS, f"reason must be one of {REJECTION_REASONS}")
        _check(_is_text(self.text, MAX_DETAIL_CHARS), "text")


@dataclass(frozen=True, slots=True)
class RefundAgreed(Event):
    """Step 10: the merchant received the returned goods and agrees to refund."""

    KIND: ClassVar[str] = "refund_agreed"


@dataclass(frozen=True, slots=True)
class TimerLapsed(Event):
    """A window ran out: ``name`` is one of :data:`TIMER_NAMES`."""

    KIND: ClassVar[str] = "timer_lapsed"
    name: str

    def __post_init__(self) -> None:
        _check(self.name in TIMER_NAMES, f"timer name must be one of {TIMER_NAMES}")


@dataclass(frozen=True, slots=True)
class DisputeDecided(Event):
    """EXTENSION: the payment center's decision on a disputed transaction."""

    KIND: ClassVar[str] = "dispute_decided"
    decision: str

    def __post_init__(self) -> None:
        _check(self.decision in DISPUTE_DECISIONS, f"decision must be one of {DISPUTE_DECISIONS}")


EVENT_TYPES: dict[str, type[Event]] = {
    cls.KIND: cls
    for cls in (
        CreditChecked,
        TopUpCredited,
        Confirmed,
        Declined,
        HoldPlaced,
        HoldFailed,
        Shipped,
        Accepted,
        Rejected,
        RefundAgreed,
        TimerLapsed,
        DisputeDecided,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of ``Event.to_dict`` (for replaying traces); MalformedMessage on bad input."""
    return _from_dict(EVENT_TYPES, "event", data)  # type: ignore[return-value]


# --- effects -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Effect:
    """Something the payment center actor must do; it knows the transaction's contract."""

    KIND: ClassVar[str] = "effect"

    def to_dict(self) -> dict[str, Any]:
        return {"effect": self.KIND, **_field_values(self)}


@dataclass(frozen=True, slots=True)
class SendConfirmationRequest(Effect):
    """Step 4: send the customer the contract and balance; answer within the window."""

    KIND: ClassVar[str] = "send_confirmation_request"
    confirm_window_s: float


@dataclass(frozen=True, slots=True)
class StartTimer(Effect):
    """Arm timer ``name`` for this transaction at virtual time ``at_s``."""

    KIND: ClassVar[str] = "start_timer"
    name: str
    at_s: float


@dataclass(frozen=True, slots=True)
class CancelTimer(Effect):
    KIND: ClassVar[str] = "cancel_timer"
    name: str


@dataclass(frozen=True, slots=True)
class PlaceHold(Effect):
    """Step 6, 预扣: wallet -> escrow; feed back HoldPlaced or HoldFailed."""

    KIND: ClassVar[str] = "place_hold"
    amount_fen: int


@dataclass(frozen=True, slots=True)
class SendShipRequest(Effect):
    """Step 6: tell the merchant the money is held; ship within the window."""

    KIND: ClassVar[str] = "send_ship_request"
    ship_window_s: float


@dataclass(frozen=True, slots=True)
class Settle(Effect):
    """Step 9: post the hold to the merchant (and award the customer points)."""

    KIND: ClassVar[str] = "settle"
    amount_fen: int
    auto_accepted: bool


@dataclass(frozen=True, slots=True)
class Refund(Effect):
    """Step 10: void the hold; everything back to the customer's wallet."""

    KIND: ClassVar[str] = "refund"
    amount_fen: int
    reason: str


@dataclass(frozen=True, slots=True)
class NotifySettlement(Effect):
    """Step 9: settlement notice to merchant and customer."""

    KIND: ClassVar[str] = "notify_settlement"
    amount_fen: int
    auto_accepted: bool


@dataclass(frozen=True, slots=True)
class NotifyRefund(Effect):
    """Step 10: refund notice to customer and merchant."""

    KIND: ClassVar[str] = "notify_refund"
    amount_fen: int
    reason: str


@dataclass(frozen=True, slots=True)
class NotifyDecline(Effect):
    """Steps 3-6 end: payment_refused to the merchant (and the customer)."""

    KIND: ClassVar[str] = "notify_decline"
    reason: str


@dataclass(frozen=True, slots=True)
class OpenDispute(Effect):
    """EXTENSION: the refund window lapsed; the payment center must decide."""

    KIND: ClassVar[str] = "open_dispute"


@dataclass(frozen=True, slots=True)
class NotifyDisputeDecision(Effect):
    """EXTENSION: dispute_decision to both parties."""

    KIND: ClassVar[str] = "notify_dispute_decision"
    decision: str


@dataclass(frozen=True, slots=True)
class RecordBehaviour(Effect):
    """Tell the credit bureau about a party's behaviour (deadline missed, dispute lost)."""

    KIND: ClassVar[str] = "record_behaviour"
    party_id: str
    kind: str


@dataclass(frozen=True, slots=True)
class RecordOutcome(Effect):
    """The transaction ended: settled, refunded, declined or disputed (ratings may follow)."""

    KIND: ClassVar[str] = "record_outcome"
    outcome: str


EFFECT_TYPES: dict[str, type[Effect]] = {
    cls.KIND: cls
    for cls in (
        SendConfirmationRequest,
        StartTimer,
        CancelTimer,
        PlaceHold,
        SendShipRequest,
        Settle,
        Refund,
        NotifySettlement,
        NotifyRefund,
        NotifyDecline,
        OpenDispute,
        NotifyDisputeDecision,
        RecordBehaviour,
        RecordOutcome,
    )
}


def effect_from_dict(data: dict[str, Any]) -> Effect:
    """Inverse of ``Effect.to_dict``; MalformedMessage on bad input."""
    return _from_dict(EFFECT_TYPES, "effect", data)  # type: ignore[return-value]


def _from_dict(registry: dict[str, type], key: str, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict) or data.get(key) not in registry:
        raise MalformedMessage(f"not a known {key}: {data!r}")
    cls = registry[data[key]]
    args = {k: v for k, v in data.items() if k != key}
    try:
        return cls(**args)
    except TypeError as exc:
        raise MalformedMessage(f"{data[key]}: {exc}") from exc


# --- the transaction ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EscrowTxn:
    """One transaction as the payment center sees it. Immutable: transitions return a new one."""

    contract_no: str
    customer_id: str
    merchant_id: str
    amount_fen: int
    currency: str
    state: State
    created_at_s: float
    updated_at_s: float
    #: The armed timer (at most one at a time) and when it lapses.
    deadline_name: str | None = None
    deadline_at_s: float | None = None
    #: SHA-256 (hex) of the contract sent for confirmation; "" = not checked.
    contract_digest_hex: str = ""
    top_up_ids: tuple[str, ...] = ()
    top_ups_fen: int = 0
    decline_reason: str | None = None
    decline_detail: str = ""
    rejection_reason: str | None = None
    rejection_text: str = ""
    auto_accepted: bool = False
    disputed: bool = False
    dispute_decision: str | None = None
    #: Step names in order, for the run summary and traces.
    steps: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        for name in ("contract_no", "customer_id", "merchant_id"):
            value = getattr(self, name)
            _check(_is_text(value, MAX_REF_CHARS) and value != "", name)
        _check(_is_amount(self.amount_fen), "amount_fen")
        _check(self.currency == CURRENCY, f"currency must be {CURRENCY}")
        _check(isinstance(self.state, State), "state")
        _check(self.deadline_name is None or self.deadline_name in TIMER_NAMES, "deadline_name")
        _check((self.deadline_name is None) == (self.deadline_at_s is None), "deadline_at_s")
        _check(len(self.top_up_ids) <= MAX_TOP_UPS_PER_TXN, "top_up_ids")
        _check(len(self.steps) <= MAX_STEPS, "steps")
        _check(self.decline_reason is None or self.decline_reason in DECLINE_REASONS, "decline")
        _check(
            self.rejection_reason is None or self.rejection_reason in REJECTION_REASONS,
            "rejection_reason",
        )
        _check(
            self.dispute_decision is None or self.dispute_decision in DISPUTE_DECISIONS,
            "dispute_decision",
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict for persistence (the payment center's SQLite) and traces: every
        field in declaration order, the state as its string, the tuples as lists. Written
        out by hand (a new field must be added here; a test compares it with the fields):
        ``dataclasses.asdict`` deep-copies field by field, 21 us a call against 0.8 us."""
        return {
            "contract_no": self.contract_no,
            "customer_id": self.customer_id,
            "merchant_id": self.merchant_id,
            "amount_fen": self.amount_fen,
            "currency": self.currency,
            "state": str(self.state),
            "created_at_s": self.created_at_s,
            "updated_at_s": self.updated_at_s,
            "deadline_name": self.deadline_name,
            "deadline_at_s": self.deadline_at_s,
            "contract_digest_hex": self.contract_digest_hex,
            "top_up_ids": list(self.top_up_ids),
            "top_ups_fen": self.top_ups_fen,
            "decline_reason": self.decline_reason,
            "decline_detail": self.decline_detail,
            "rejection_reason": self.rejection_reason,
            "rejection_text": self.rejection_text,
            "auto_accepted": self.auto_accepted,
            "disputed": self.disputed,
            "dispute_decision": self.dispute_decision,
            "steps": list(self.steps),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EscrowTxn:
        """Inverse of :meth:`to_dict`; MalformedMessage if the stored record is damaged."""
        try:
            args = dict(data)
            args["state"] = State(args["state"])
            args["top_up_ids"] = tuple(args.get("top_up_ids", ()))
            args["steps"] = tuple(args.get("steps", ()))
            return cls(**args)
        except (KeyError, ValueError, TypeError) as exc:
            raise MalformedMessage(f"stored escrow transaction: {exc}") from exc


def new_txn(
    contract_no: str,
    customer_id: str,
    merchant_id: str,
    amount_fen: int,
    now_s: float,
    *,
    currency: str = CURRENCY,
    contract_digest: bytes = b"",
) -> EscrowTxn:
    """Step 3: a payment request arrived. Next event: CreditChecked."""
    return EscrowTxn(
        contract_no=contract_no,
        customer_id=customer_id,
        merchant_id=merchant_id,
        amount_fen=amount_fen,
        currency=currency,
        state=State.REQUESTED,
        created_at_s=now_s,
        updated_at_s=now_s,
        contract_digest_hex=contract_digest.hex(),
        steps=("payment_request",),
    )


# --- the handlers, named after the seed's steps -----------------------------------------------

Result = tuple[EscrowTxn, list[Effect]]
Handler = Callable[[EscrowTxn, Event, float, Windows], Result]


def _advance(txn: EscrowTxn, now_s: float, steps: tuple[str, ...], **changes: Any) -> EscrowTxn:
    return replace(txn, updated_at_s=now_s, steps=txn.steps + steps, **changes)


def _arm(txn: EscrowTxn, state: State, now_s: float, window_s: float, steps: tuple[str, ...],
         **changes: Any) -> Result:
    """Move to a waiting state and arm its timer."""
    name = TIMER_OF_STATE[state]
    at_s = now_s + window_s
    new = _advance(txn, now_s, steps, state=state, deadline_name=name, deadline_at_s=at_s,
                   **changes)
    return new, [StartTimer(name, at_s)]


def _cancel(txn: EscrowTxn, fired: bool) -> list[Effect]:
    """Cancel the armed timer unless it is the one that just fired."""
    if txn.deadline_name is None or fired:
        return []
    return [CancelTimer(txn.deadline_name)]


def _decline(txn: EscrowTxn, now_s: float, reason: str, step: str, *, fired: bool = False,
             detail: str = "") -> Result:
    """Steps 3-6 end without money moving ("the transaction is refused and ends here")."""
    new = _advance(txn, now_s, (step, "declined"), state=State.DECLINED, deadline_name=None,
                   deadline_at_s=None, decline_reason=reason, decline_detail=detail)
    return new, [*_cancel(txn, fired), NotifyDecline(reason), RecordOutcome("declined")]


def _settle(txn: EscrowTxn, now_s: float, steps: tuple[str, ...], *, auto: bool,
            fired: bool = False, extra: tuple[Effect, ...] = (), **changes: Any) -> Result:
    """Step 9: the held amount goes to the merchant."""
    new = _advance(txn, now_s, (*steps, "settled"), state=State.SETTLED, deadline_name=None,
                   deadline_at_s=None, auto_accepted=auto, **changes)
    outcome = "disputed" if new.disputed else "settled"
    return new, [
        *_cancel(txn, fired),
        Settle(txn.amount_fen, auto),
        *extra,
        NotifySettlement(txn.amount_fen, auto),
        RecordOutcome(outcome),
    ]


def _refund(txn: EscrowTxn, now_s: float, steps: tuple[str, ...], reason: str, *,
            fired: bool = False, extra: tuple[Effect, ...] = (), **changes: Any) -> Result:
    """Step 10: the held amount goes back to the customer."""
    new = _advance(txn, now_s, (*steps, "refunded"), state=State.REFUNDED, deadline_name=None,
                   deadline_at_s=None, **changes)
    outcome = "disputed" if new.disputed else "refunded"
    return new, [
        *_cancel(txn, fired),
        Refund(txn.amount_fen, reason),
        *extra,
        NotifyRefund(txn.amount_fen, reason),
        RecordOutcome(outcome),
    ]


def _step3_credit_checked(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 3 -> 4: the credit policy allows: send the confirmation request; else decline."""
    assert isinstance(ev, CreditChecked)
    if ev.refusal is not None:
        return _decline(txn, now_s, "credit_policy", "credit_refused", detail=ev.refusal)
    new, timers = _arm(txn, State.AWAITING_CONFIRMATION, now_s, w.confirm_window_s,
                       ("confirmation_request",))
    return new, [SendConfirmationRequest(w.confirm_window_s), *timers]


def _step5_top_up_credited(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 5: the bank topped up the wallet. Recorded; the state does not change.

    The same top-up id twice changes nothing (the bank's notice may arrive twice)."""
    assert isinstance(ev, TopUpCredited)
    if ev.top_up_id in txn.top_up_ids:
        return txn, []
    if len(txn.top_up_ids) >= MAX_TOP_UPS_PER_TXN:
        raise IllegalTransition(f"more than {MAX_TOP_UPS_PER_TXN} top-ups for one transaction")
    new = _advance(txn, now_s, ("top_up_credited",), top_up_ids=txn.top_up_ids + (ev.top_up_id,),
                   top_ups_fen=txn.top_ups_fen + ev.amount_fen)
    return new, []


def _step5_confirmed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 5 -> 6: the customer confirmed the contract we sent: place the hold."""
    assert isinstance(ev, Confirmed)
    if txn.contract_digest_hex and ev.contract_digest_hex != txn.contract_digest_hex:
        raise IllegalTransition("confirmation names a different contract (digest mismatch)")
    new = _advance(txn, now_s, ("confirmed",), state=State.HOLDING, deadline_name=None,
                   deadline_at_s=None)
    return new, [*_cancel(txn, False), PlaceHold(txn.amount_fen)]


def _step5_declined(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 5 alternative: the customer declined. No money moves."""
    assert isinstance(ev, Declined)
    return _decline(txn, now_s, "customer_declined", "customer_declined", detail=ev.text)


def _step4_confirmation_lapsed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 4: "if the customer's confirmation does not come, the transaction ... ends here"."""
    return _decline(txn, now_s, "confirmation_timeout", "confirmation_timeout", fired=True)


def _step6_hold_placed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 6: the money is held (预扣): ask the merchant to ship."""
    new, timers = _arm(txn, State.AWAITING_SHIPMENT, now_s, w.ship_window_s,
                       ("hold_placed", "ship_request"))
    return new, [SendShipRequest(w.ship_window_s), *timers]


def _step6_hold_failed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 6: the wallet could not cover the hold: declined, nothing held."""
    assert isinstance(ev, HoldFailed)
    return _decline(txn, now_s, "insufficient_funds", "hold_failed", detail=ev.reason)


def _step7_shipped(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 7: shipped; the customer has the acceptance window to accept or reject."""
    cancel = _cancel(txn, False)
    new, timers = _arm(txn, State.AWAITING_ACCEPTANCE, now_s, w.accept_window_s, ("shipped",))
    return new, [*cancel, *timers]


def _ext_ship_lapsed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """EXTENSION: the merchant did not ship within the ship window: automatic refund."""
    return _refund(txn, now_s, ("ship_timeout",), "not_shipped", fired=True,
                   extra=(RecordBehaviour(txn.merchant_id, "deadline_missed"),))


def _step8_accepted(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Steps 8 -> 9: "transaction succeeded": pay the merchant."""
    return _settle(txn, now_s, ("accepted",), auto=False)


def _step8_acceptance_lapsed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 8: neither answer within the set time counts as success: settle, auto-accepted."""
    return _settle(txn, now_s, ("auto_accepted",), auto=True, fired=True)


def _step8_rejected(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 8: "transaction failed": the goods go back; wait for the merchant's agreement."""
    assert isinstance(ev, Rejected)
    cancel = _cancel(txn, False)
    new, timers = _arm(txn, State.AWAITING_RETURN, now_s, w.refund_window_s, ("rejected",),
                       rejection_reason=ev.reason, rejection_text=ev.text)
    return new, [*cancel, *timers]


def _step10_refund_agreed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """Step 10: the returned goods reached the merchant, who agrees: refund the customer."""
    return _refund(txn, now_s, ("refund_agreed",), "rejected")


def _ext_refund_lapsed(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """EXTENSION: no refund agreement within the refund window: open a dispute."""
    new = _advance(txn, now_s, ("refund_timeout", "dispute_opened"), state=State.DISPUTED,
                   deadline_name=None, deadline_at_s=None, disputed=True)
    return new, [OpenDispute(), RecordBehaviour(txn.merchant_id, "deadline_missed")]


def _ext_dispute_decided(txn: EscrowTxn, ev: Event, now_s: float, w: Windows) -> Result:
    """EXTENSION: the payment center decided the dispute: refund or settle."""
    assert isinstance(ev, DisputeDecided)
    notice = NotifyDisputeDecision(ev.decision)
    if ev.decision == "refund":
        return _refund(txn, now_s, ("dispute_decided",), "dispute", dispute_decision="refund",
                       extra=(notice, RecordBehaviour(txn.merchant_id, "dispute_lost")))
    return _settle(txn, now_s, ("dispute_decided",), auto=False, dispute_decision="settle",
                   extra=(notice, RecordBehaviour(txn.customer_id, "dispute_lost")))


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: what handles the event, and where it may lead."""

    handler: Handler
    next_states: tuple[State, ...]
    extension: bool = False


S = State
#: (state, event type) -> rule. Anything missing is an IllegalTransition.
TRANSITIONS: dict[tuple[State, type[Event]], Rule] = {
    (S.REQUESTED, CreditChecked): Rule(_step3_credit_checked, (S.AWAITING_CONFIRMATION, S.DECLINED)),
    (S.AWAITING_CONFIRMATION, TopUpCredited): Rule(_step5_top_up_credited, (S.AWAITING_CONFIRMATION,)),
    (S.AWAITING_CONFIRMATION, Confirmed): Rule(_step5_confirmed, (S.HOLDING,)),
    (S.AWAITING_CONFIRMATION, Declined): Rule(_step5_declined, (S.DECLINED,)),
    (S.AWAITING_CONFIRMATION, TimerLapsed): Rule(_step4_confirmation_lapsed, (S.DECLINED,)),
    (S.HOLDING, TopUpCredited): Rule(_step5_top_up_credited, (S.HOLDING,)),
    (S.HOLDING, HoldPlaced): Rule(_step6_hold_placed, (S.AWAITING_SHIPMENT,)),
    (S.HOLDING, HoldFailed): Rule(_step6_hold_failed, (S.DECLINED,)),
    (S.AWAITING_SHIPMENT, Shipped): Rule(_step7_shipped, (S.AWAITING_ACCEPTANCE,)),
    (S.AWAITING_SHIPMENT, TimerLapsed): Rule(_ext_ship_lapsed, (S.REFUNDED,), extension=True),
    (S.AWAITING_ACCEPTANCE, Accepted): Rule(_step8_accepted, (S.SETTLED,)),
    (S.AWAITING_ACCEPTANCE, Rejected): Rule(_step8_rejected, (S.AWAITING_RETURN,)),
    (S.AWAITING_ACCEPTANCE, TimerLapsed): Rule(_step8_acceptance_lapsed, (S.SETTLED,)),
    (S.AWAITING_RETURN, RefundAgreed): Rule(_step10_refund_agreed, (S.REFUNDED,)),
    (S.AWAITING_RETURN, TimerLapsed): Rule(_ext_refund_lapsed, (S.DISPUTED,), extension=True),
    (S.DISPUTED, DisputeDecided): Rule(_ext_dispute_decided, (S.REFUNDED, S.SETTLED), extension=True),
    (S.DISPUTED, RefundAgreed): Rule(_step10_refund_agreed, (S.REFUNDED,), extension=True),
}  # fmt: skip


def legal_events(state: State | str) -> tuple[type[Event], ...]:
    """The event types legal in ``state`` (TimerLapsed only when that state's timer lapses)."""
    state = State(state)
    return tuple(event for (s, event) in TRANSITIONS if s == state)


def transition(txn: EscrowTxn, event: Event, now_s: float, windows: Windows) -> Result:
    """Apply ``event`` at virtual time ``now_s``: the next transaction and the effects to perform.

    Raises IllegalTransition (txn unchanged) if the event is not legal in ``txn.state``.
    A stale timer lapse returns ``(txn, [])``.
    """
    if not isinstance(now_s, int | float) or not math.isfinite(now_s):
        raise IllegalTransition(f"now_s must be a finite number, got {now_s!r}")
    if isinstance(event, TimerLapsed) and (
        event.name != txn.deadline_name
        or txn.deadline_at_s is None
        or now_s < txn.deadline_at_s
    ):
        return txn, []  # stale or early: a timer cancelled or replaced after it was queued
    rule = TRANSITIONS.get((txn.state, type(event)))
    if rule is None:
        raise IllegalTransition(f"{event.KIND} is not legal in state {txn.state}")
    new, effects = rule.handler(txn, event, now_s, windows)
    assert new is txn or new.state in rule.next_states, (txn.state, event, new.state)
    return new, effects


# --- reading a transaction ---------------------------------------------------------------------

#: States in which the hold is placed and not yet resolved.
_HELD_STATES = frozenset(
    {State.AWAITING_SHIPMENT, State.AWAITING_ACCEPTANCE, State.AWAITING_RETURN, State.DISPUTED}
)


def escrow_resolution(txn: EscrowTxn) -> str:
    """Where the money went: "to_merchant" (settled), "to_customer" (refunded) or
    "never_held" (declined). For a transaction still running: "held" (in escrow),
    "hold_pending" (PlaceHold sent, result not yet fed back) or "not_held"."""
    if txn.state is State.SETTLED:
        return "to_merchant"
    if txn.state is State.REFUNDED:
        return "to_customer"
    if txn.state is State.DECLINED:
        return "never_held"
    if txn.state in _HELD_STATES:
        return "held"
    if txn.state is State.HOLDING:
        return "hold_pending"
    return "not_held"


def outcome_of(txn: EscrowTxn) -> str | None:
    """The run summary's outcome: settled, refunded, declined, disputed; None while running."""
    if not is_terminal(txn.state):
        return None
    if txn.disputed:
        return "disputed"
    return str(txn.state)


# --- from verified messages to events ----------------------------------------------------------


def txn_from_payment_request(
    message: m.PaymentRequest, customer_id: str, now_s: float
) -> EscrowTxn:
    """Step 3: a new transaction from a verified PaymentRequest (``customer_id`` is the
    payment center's account for the message's customer phone)."""
    if not isinstance(message, m.PaymentRequest):
        raise IllegalTransition(
            f"a transaction starts with a payment_request, not {type(message).__name__}"
        )
    contract = message.contract
    return new_txn(
        message.contract_no,
        customer_id,
        contract.merchant_id,
        contract.total_fen,
        now_s,
        currency=contract.currency,
        contract_digest=m.contract_digest(contract),
    )


def event_for_message(message: m.Message) -> Event | None:
    """The escrow event a verified message means, or None if it is not an escrow event.

    confirmation -> Confirmed, decline -> Declined, top_up_notice -> TopUpCredited,
    shipment_report -> Shipped, acceptance -> Accepted, rejection -> Rejected,
    refund_agreement -> RefundAgreed. (The payment request starts a transaction instead.)
    """
    if isinstance(message, m.Confirmation):
        return Confirmed(message.contract_digest.hex())
    if isinstance(message, m.Decline):
        return Declined(message.text)
    if isinstance(message, m.TopUpNotice):
        return TopUpCredited(message.top_up_id, message.amount_fen)
    if isinstance(message, m.ShipmentReport):
        return Shipped(message.tracking_no)
    if isinstance(message, m.Acceptance):
        return Accepted()
    if isinstance(message, m.Rejection):
        return Rejected(message.reason, message.text)
    if isinstance(message, m.RefundAgreement):
        return RefundAgreed()
    return None


__all__ = [
    "BEHAVIOURS",
    "DECLINE_REASONS",
    "DISPUTE_DECISIONS",
    "EFFECT_TYPES",
    "EVENT_TYPES",
    "MAX_STEPS",
    "MAX_TOP_UPS_PER_TXN",
    "OUTCOMES",
    "REFUND_REASONS",
    "REJECTION_REASONS",
    "TERMINAL_STATES",
    "TIMER_NAMES",
    "TIMER_OF_STATE",
    "TRANSITIONS",
    "Accepted",
    "CancelTimer",
    "Confirmed",
    "CreditChecked",
    "Declined",
    "DisputeDecided",
    "Effect",
    "EscrowTxn",
    "Event",
    "HoldFailed",
    "HoldPlaced",
    "NotifyDecline",
    "NotifyDisputeDecision",
    "NotifyRefund",
    "NotifySettlement",
    "OpenDispute",
    "PlaceHold",
    "RecordBehaviour",
    "RecordOutcome",
    "Refund",
    "RefundAgreed",
    "Rejected",
    "Rule",
    "SendConfirmationRequest",
    "SendShipRequest",
    "Settle",
    "Shipped",
    "StartTimer",
    "State",
    "TimerLapsed",
    "TopUpCredited",
    "Windows",
    "effect_from_dict",
    "escrow_resolution",
    "event_for_message",
    "event_from_dict",
    "is_terminal",
    "legal_events",
    "new_txn",
    "outcome_of",
    "transition",
    "txn_from_payment_request",
]

