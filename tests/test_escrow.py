"""The escrow state machine: every rule of the seed, the extensions, and the money invariant."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, asdict
from typing import Any

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mpay.protocol import escrow as e
from mpay.protocol.errors import IllegalTransition, MalformedMessage
from mpay.protocol.escrow import (
    Accepted,
    CancelTimer,
    Confirmed,
    CreditChecked,
    Declined,
    DisputeDecided,
    EscrowTxn,
    HoldFailed,
    HoldPlaced,
    NotifyDecline,
    NotifyDisputeDecision,
    NotifyRefund,
    NotifySettlement,
    OpenDispute,
    PlaceHold,
    RecordBehaviour,
    RecordOutcome,
    Refund,
    RefundAgreed,
    Rejected,
    SendConfirmationRequest,
    SendShipRequest,
    Settle,
    Shipped,
    StartTimer,
    State,
    TimerLapsed,
    TopUpCredited,
    Windows,
    escrow_resolution,
    is_terminal,
    new_txn,
    outcome_of,
    transition,
)
from mpay.protocol.messages import contract_digest
from mpay.protocol.samples import CONTRACT, sample_message

W = Windows()
AMOUNT = 24_000
DIGEST_HEX = contract_digest(CONTRACT).hex()


def fresh(now_s: float = 0.0) -> EscrowTxn:
    return new_txn("C20260101-000001", "alice", "shop", AMOUNT, now_s,
                   contract_digest=contract_digest(CONTRACT))


def run(txn: EscrowTxn, *steps: tuple[e.Event, float]) -> tuple[EscrowTxn, list[e.Effect]]:
    """Apply events in order; return the final txn and the effects of the last one."""
    effects: list[e.Effect] = []
    for event, now_s in steps:
        txn, effects = transition(txn, event, now_s, W)
    return txn, effects


def confirmed_and_held(now_s: float = 0.0) -> EscrowTxn:
    txn, _ = run(fresh(now_s), (CreditChecked(), now_s), (Confirmed(DIGEST_HEX), now_s + 60),
                 (HoldPlaced(), now_s + 61))
    return txn


def shipped(now_s: float = 0.0) -> EscrowTxn:
    txn, _ = run(confirmed_and_held(now_s), (Shipped("EMS1"), now_s + 3600))
    return txn


# --- the seed's happy path ---------------------------------------------------------------------


def test_happy_path_step_by_step() -> None:
    txn = fresh(100.0)
    assert txn.state is State.REQUESTED and txn.steps == ("payment_request",)

    txn, fx = transition(txn, CreditChecked(), 100.0, W)  # step 3 -> 4
    assert txn.state is State.AWAITING_CONFIRMATION
    assert fx == [SendConfirmationRequest(W.confirm_window_s), StartTimer("confirm", 100.0 + 1800)]
    assert (txn.deadline_name, txn.deadline_at_s) == ("confirm", 1900.0)

    txn, fx = transition(txn, Confirmed(DIGEST_HEX), 400.0, W)  # step 5
    assert txn.state is State.HOLDING
    assert fx == [CancelTimer("confirm"), PlaceHold(AMOUNT)]
    assert escrow_resolution(txn) == "hold_pending"

    txn, fx = transition(txn, HoldPlaced(), 401.0, W)  # step 6
    assert txn.state is State.AWAITING_SHIPMENT
    assert fx == [SendShipRequest(W.ship_window_s), StartTimer("ship", 401.0 + 72 * 3600)]
    assert escrow_resolution(txn) == "held"

    txn, fx = transition(txn, Shipped("EMS1"), 5000.0, W)  # step 7
    assert txn.state is State.AWAITING_ACCEPTANCE
    assert fx == [CancelTimer("ship"), StartTimer("accept", 5000.0 + 10 * 86400)]

    txn, fx = transition(txn, Accepted(), 90_000.0, W)  # steps 8, 9
    assert txn.state is State.SETTLED and not txn.auto_accepted
    assert fx == [CancelTimer("accept"), Settle(AMOUNT, False), NotifySettlement(AMOUNT, False),
                  RecordOutcome("settled")]
    assert escrow_resolution(txn) == "to_merchant" and outcome_of(txn) == "settled"
    assert txn.steps == ("payment_request", "confirmation_request", "confirmed", "hold_placed",
                         "ship_request", "shipped", "accepted", "settled")
    assert txn.deadline_name is None and txn.updated_at_s == 90_000.0 and txn.created_at_s == 100.0


# --- declines: no money moves ------------------------------------------------------------------


def test_credit_policy_refusal_declines_before_anything_is_sent() -> None:
    txn, fx = transition(fresh(), CreditChecked("score 120 below 300"), 0.0, W)
    assert txn.state is State.DECLINED
    assert fx == [NotifyDecline("credit_policy"), RecordOutcome("declined")]
    assert txn.decline_reason == "credit_policy" and txn.decline_detail == "score 120 below 300"
    assert escrow_resolution(txn) == "never_held"


def test_customer_declines() -> None:
    txn, fx = run(fresh(), (CreditChecked(), 0.0), (Declined("too dear"), 60.0))
    assert txn.state is State.DECLINED and txn.decline_reason == "customer_declined"
    assert fx == [CancelTimer("confirm"), NotifyDecline("customer_declined"),
                  RecordOutcome("declined")]
    assert not any(isinstance(x, PlaceHold) for x in fx)
    assert escrow_resolution(txn) == "never_held" and outcome_of(txn) == "declined"


def test_confirmation_window_lapses_and_the_transaction_ends_there() -> None:
    txn, _ = run(fresh(), (CreditChecked(), 0.0))
    txn, fx = transition(txn, TimerLapsed("confirm"), W.confirm_window_s, W)
    assert txn.state is State.DECLINED and txn.decline_reason == "confirmation_timeout"
    assert fx == [NotifyDecline("confirmation_timeout"), RecordOutcome("declined")]
    assert txn.steps[-2:] == ("confirmation_timeout", "declined")
    with pytest.raises(IllegalTransition):  # a confirmation that comes too late
        transition(txn, Confirmed(DIGEST_HEX), W.confirm_window_s + 1, W)


def test_hold_fails_for_insufficient_funds() -> None:
    txn, _ = run(fresh(), (CreditChecked(), 0.0), (Confirmed(DIGEST_HEX), 10.0))
    txn, fx = transition(txn, HoldFailed("insufficient_funds"), 11.0, W)
    assert txn.state is State.DECLINED and txn.decline_reason == "insufficient_funds"
    assert fx == [NotifyDecline("insufficient_funds"), RecordOutcome("declined")]
    assert escrow_resolution(txn) == "never_held"


# --- short balance: top up, then confirm -------------------------------------------------------


def test_top_up_is_recorded_without_changing_state() -> None:
    txn, _ = run(fresh(), (CreditChecked(), 0.0))
    before = txn
    txn, fx = transition(txn, TopUpCredited("T1", 19_000), 50.0, W)
    assert fx == [] and txn.state is State.AWAITING_CONFIRMATION
    assert txn.deadline_at_s == before.deadline_at_s  # the window does not restart
    assert txn.top_ups_fen == 19_000 and txn.top_up_ids == ("T1",)
    again, fx = transition(txn, TopUpCredited("T1", 19_000), 51.0, W)  # duplicate notice
    assert again is txn and fx == []
    txn, fx = run(txn, (Confirmed(DIGEST_HEX), 60.0))
    assert fx == [CancelTimer("confirm"), PlaceHold(AMOUNT)]
    txn, _ = transition(txn, TopUpCredited("T2", 100), 61.0, W)  # a late notice while holding
    assert txn.state is State.HOLDING and txn.top_ups_fen == 19_100


def test_top_ups_per_transaction_are_limited() -> None:
    txn, _ = run(fresh(), (CreditChecked(), 0.0))
    for i in range(e.MAX_TOP_UPS_PER_TXN):
        txn, _ = transition(txn, TopUpCredited(f"T{i}", 1), 1.0, W)
    with pytest.raises(IllegalTransition):
        transition(txn, TopUpCredited("T-extra", 1), 2.0, W)


def test_top_up_after_the_hold_is_settled_is_illegal() -> None:
    txn, _ = run(shipped(), (Accepted(), 10_000.0))
    with pytest.raises(IllegalTransition):
        transition(txn, TopUpCredited("T9", 1), 10_001.0, W)


def test_confirmation_of_another_contract_is_refused() -> None:
    txn, _ = run(fresh(), (CreditChecked(), 0.0))
    with pytest.raises(IllegalTransition, match="digest"):
        transition(txn, Confirmed("00" * 32), 10.0, W)
    assert txn.state is State.AWAITING_CONFIRMATION


# --- acceptance, rejection, refund -------------------------------------------------------------


def test_acceptance_window_lapse_is_automatic_acceptance() -> None:
    txn = shipped()
    lapse_at = txn.deadline_at_s
    assert txn.deadline_name == "accept" and lapse_at is not None
    txn, fx = transition(txn, TimerLapsed("accept"), lapse_at, W)
    assert txn.state is State.SETTLED and txn.auto_accepted
    assert fx == [Settle(AMOUNT, True), NotifySettlement(AMOUNT, True), RecordOutcome("settled")]
    assert txn.steps[-2:] == ("auto_accepted", "settled")


def test_rejection_then_goods_returned_and_refund_agreed() -> None:
    txn, fx = run(shipped(), (Rejected("damaged", "crushed tin"), 7200.0))
    assert txn.state is State.AWAITING_RETURN
    assert txn.rejection_reason == "damaged" and txn.rejection_text == "crushed tin"
    assert fx == [CancelTimer("accept"), StartTimer("refund", 7200.0 + 7 * 86400)]
    assert escrow_resolution(txn) == "held"
    txn, fx = transition(txn, RefundAgreed(), 86_400.0, W)
    assert txn.state is State.REFUNDED
    assert fx == [CancelTimer("refund"), Refund(AMOUNT, "rejected"), NotifyRefund(AMOUNT, "rejected"),
                  RecordOutcome("refunded")]
    assert escrow_resolution(txn) == "to_customer" and outcome_of(txn) == "refunded"


def test_accepting_after_rejecting_is_illegal() -> None:
    txn, _ = run(shipped(), (Rejected("wrong_item"), 7200.0))
    with pytest.raises(IllegalTransition):
        transition(txn, Accepted(), 7201.0, W)


# --- EXTENSIONS --------------------------------------------------------------------------------


def test_extension_merchant_never_ships_automatic_refund() -> None:
    txn = confirmed_and_held()
    assert txn.deadline_name == "ship"
    txn, fx = transition(txn, TimerLapsed("ship"), 61.0 + W.ship_window_s, W)
    assert txn.state is State.REFUNDED
    assert fx == [Refund(AMOUNT, "not_shipped"), RecordBehaviour("shop", "deadline_missed"),
                  NotifyRefund(AMOUNT, "not_shipped"), RecordOutcome("refunded")]
    assert escrow_resolution(txn) == "to_customer"


def _disputed() -> EscrowTxn:
    txn, _ = run(shipped(), (Rejected("not_as_described"), 7200.0))
    txn, fx = transition(txn, TimerLapsed("refund"), 7200.0 + W.refund_window_s, W)
    assert txn.state is State.DISPUTED and txn.disputed
    assert fx == [OpenDispute(), RecordBehaviour("shop", "deadline_missed")]
    assert escrow_resolution(txn) == "held" and outcome_of(txn) is None
    return txn


def test_extension_dispute_decided_for_the_customer() -> None:
    txn, fx = transition(_disputed(), DisputeDecided("refund"), 1e7, W)
    assert txn.state is State.REFUNDED and txn.dispute_decision == "refund"
    assert fx == [Refund(AMOUNT, "dispute"), NotifyDisputeDecision("refund"),
                  RecordBehaviour("shop", "dispute_lost"), NotifyRefund(AMOUNT, "dispute"),
                  RecordOutcome("disputed")]
    assert escrow_resolution(txn) == "to_customer" and outcome_of(txn) == "disputed"


def test_extension_dispute_decided_for_the_merchant() -> None:
    txn, fx = transition(_disputed(), DisputeDecided("settle"), 1e7, W)
    assert txn.state is State.SETTLED and txn.dispute_decision == "settle"
    assert fx == [Settle(AMOUNT, False), NotifyDisputeDecision("settle"),
                  RecordBehaviour("alice", "dispute_lost"), NotifySettlement(AMOUNT, False),
                  RecordOutcome("disputed")]
    assert escrow_resolution(txn) == "to_merchant" and outcome_of(txn) == "disputed"


def test_extension_late_refund_agreement_ends_the_dispute() -> None:
    txn, fx = transition(_disputed(), RefundAgreed(), 1e7, W)
    assert txn.state is State.REFUNDED and outcome_of(txn) == "disputed"
    assert Refund(AMOUNT, "rejected") in fx and not any(isinstance(x, CancelTimer) for x in fx)


# --- timers ------------------------------------------------------------------------------------


def test_stale_or_early_timer_lapses_are_ignored() -> None:
    txn = confirmed_and_held()  # the ship timer is armed
    for event, now_s in [
        (TimerLapsed("confirm"), 1e9),  # cancelled at confirmation
        (TimerLapsed("accept"), 1e9),  # not armed yet
        (TimerLapsed("ship"), 100.0),  # armed, but not due
    ]:
        same, fx = transition(txn, event, now_s, W)
        assert same is txn and fx == []
    settled, _ = run(shipped(), (Accepted(), 10_000.0))
    for name in e.TIMER_NAMES:
        same, fx = transition(settled, TimerLapsed(name), 1e9, W)
        assert same is settled and fx == []


def test_every_waiting_state_arms_exactly_its_timer() -> None:
    seen = {}
    txn = fresh()
    for event, now_s in [(CreditChecked(), 0.0), (Confirmed(DIGEST_HEX), 1.0), (HoldPlaced(), 2.0),
                         (Shipped(), 3.0), (Rejected("other"), 4.0)]:
        txn, _ = transition(txn, event, now_s, W)
        seen[txn.state] = txn.deadline_name
    assert seen == {State.AWAITING_CONFIRMATION: "confirm", State.HOLDING: None,
                    State.AWAITING_SHIPMENT: "ship", State.AWAITING_ACCEPTANCE: "accept",
                    State.AWAITING_RETURN: "refund"}


def test_custom_windows_set_the_deadlines() -> None:
    windows = Windows(confirm_window_s=60, ship_window_s=120, accept_window_s=180,
                      refund_window_s=240)
    txn, fx = transition(fresh(), CreditChecked(), 10.0, windows)
    assert StartTimer("confirm", 70.0) in fx and SendConfirmationRequest(60) in fx


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "60", 400 * 86400])
def test_windows_must_be_positive_bounded_seconds(bad: Any) -> None:
    with pytest.raises(ValueError, match="confirm_window_s"):
        Windows(confirm_window_s=bad)


# --- illegal transitions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prefix", "event"),
    [
        ([], Confirmed(DIGEST_HEX)),  # before the confirmation request went out
        ([CreditChecked()], Shipped()),  # before the hold
        ([CreditChecked()], Accepted()),
        ([CreditChecked(), Confirmed(DIGEST_HEX)], Declined()),  # after confirming
        ([CreditChecked(), Confirmed(DIGEST_HEX), HoldPlaced()], Rejected("not_received")),  # not shipped
        ([CreditChecked(), Confirmed(DIGEST_HEX), HoldPlaced()], HoldPlaced()),  # hold placed twice
        ([CreditChecked(), Confirmed(DIGEST_HEX), HoldPlaced(), Shipped()], RefundAgreed()),  # no rejection
        ([CreditChecked(), Confirmed(DIGEST_HEX), HoldPlaced(), Shipped()], DisputeDecided("refund")),
        ([CreditChecked(), Confirmed(DIGEST_HEX), HoldPlaced(), Shipped(), Accepted()], Accepted()),
        ([CreditChecked(), Declined()], Confirmed(DIGEST_HEX)),
        ([CreditChecked()], CreditChecked()),
    ],
)
def test_illegal_events_raise_and_leave_the_transaction_unchanged(
    prefix: list[e.Event], event: e.Event
) -> None:
    txn, _ = run(fresh(), *[(ev, float(i)) for i, ev in enumerate(prefix)])
    snapshot = txn.to_dict()
    with pytest.raises(IllegalTransition) as info:
        transition(txn, event, 100.0, W)
    assert info.value.reason == "illegal_transition" and event.KIND in str(info.value)
    assert txn.to_dict() == snapshot


def test_time_must_be_a_finite_number() -> None:
    with pytest.raises(IllegalTransition):
        transition(fresh(), CreditChecked(), float("nan"), W)


@pytest.mark.parametrize(
    "build",
    [
        lambda: Rejected("meh"),
        lambda: TimerLapsed("lunch"),
        lambda: DisputeDecided("split"),
        lambda: TopUpCredited("T1", 0),
        lambda: TopUpCredited("T1", -5),
        lambda: TopUpCredited("", 5),
        lambda: Declined("x" * 281),
    ],
)
def test_events_with_bad_fields_are_malformed(build: Any) -> None:
    with pytest.raises(MalformedMessage):
        build()


# --- the table ---------------------------------------------------------------------------------


def test_table_shape() -> None:
    for (state, event_type), rule_ in e.TRANSITIONS.items():
        assert not is_terminal(state), "terminal states have no exits"
        assert rule_.handler.__doc__, rule_.handler.__name__
        assert event_type in e.EVENT_TYPES.values()
        assert rule_.extension == ("EXTENSION" in rule_.handler.__doc__ or state is State.DISPUTED)
    for state in State:
        assert is_terminal(state) == (e.legal_events(state) == ())
    assert {s for s in State if is_terminal(s)} == {State.SETTLED, State.REFUNDED, State.DECLINED}
    for state, timer in e.TIMER_OF_STATE.items():
        assert TimerLapsed in e.legal_events(state), (state, timer)


def test_txn_is_immutable() -> None:
    with pytest.raises(FrozenInstanceError):
        fresh().state = State.SETTLED  # type: ignore[misc]


# --- persistence, traces, messages -------------------------------------------------------------


def test_txn_survives_json_persistence() -> None:
    topped_up, _ = run(fresh(), (CreditChecked(), 0.0), (TopUpCredited("T1", 5), 1.0))
    rejected, _ = run(shipped(), (Rejected("damaged", "crushed"), 7200.0))
    disputed = _disputed()
    for txn in (fresh(), topped_up, rejected, disputed):
        stored = json.dumps(txn.to_dict())
        assert EscrowTxn.from_dict(json.loads(stored)) == txn


def test_to_dict_is_what_dataclasses_asdict_gave() -> None:
    # to_dict is written out by hand for speed: same keys, same order, same values as the
    # asdict form it replaced, for transactions in every kind of state and every event/effect
    def old_txn_form(txn: EscrowTxn) -> dict[str, Any]:
        data = asdict(txn)
        data["state"] = str(txn.state)
        data["top_up_ids"] = list(txn.top_up_ids)
        data["steps"] = list(txn.steps)
        return data

    topped_up, _ = run(
        fresh(), (CreditChecked(), 0.0), (TopUpCredited("T1", 5), 1.0), (TopUpCredited("T2", 7), 2.0)
    )
    declined, _ = run(fresh(), (CreditChecked("blacklisted"), 0.0))
    rejected, _ = run(shipped(), (Rejected("damaged", "crushed"), 7200.0))
    settled, _ = run(shipped(), (Accepted(), 7200.0))
    for txn in (fresh(), topped_up, declined, confirmed_and_held(), shipped(), rejected, settled, _disputed()):
        data = txn.to_dict()
        assert data == old_txn_form(txn) and list(data) == list(old_txn_form(txn))
        assert type(data["state"]) is str and type(data["steps"]) is list
    events = [CreditChecked("x"), CreditChecked(), TopUpCredited("T1", 5), Confirmed(DIGEST_HEX), Declined("no"),
              HoldPlaced(), HoldFailed(), Shipped("EMS1"), Accepted(), Rejected("damaged", "t"),
              RefundAgreed(), TimerLapsed("ship"), DisputeDecided("settle")]
    effects = [SendConfirmationRequest(1800.0), StartTimer("ship", 5.0), CancelTimer("ship"),
               PlaceHold(1), SendShipRequest(2.0), Settle(1, True), Refund(1, "dispute"),
               NotifySettlement(1, False), NotifyRefund(1, "rejected"), NotifyDecline("x"),
               OpenDispute(), NotifyDisputeDecision("refund"), RecordBehaviour("shop", "k"),
               RecordOutcome("settled")]
    assert {type(x) for x in events + effects} == set(e.EVENT_TYPES.values()) | set(e.EFFECT_TYPES.values())
    for ev in events:
        old = {"event": ev.KIND, **asdict(ev)}
        assert ev.to_dict() == old and list(ev.to_dict()) == list(old)
    for fx in effects:
        old = {"effect": fx.KIND, **asdict(fx)}
        assert fx.to_dict() == old and list(fx.to_dict()) == list(old)


@pytest.mark.parametrize(
    "damage",
    [
        {"state": "limbo"},
        {"amount_fen": 0},
        {"amount_fen": "24000"},
        {"currency": "USD"},
        {"deadline_name": "lunch"},
        {"deadline_at_s": None},
        {"rejection_reason": "meh"},
        {"surprise": 1},
    ],
)
def test_damaged_stored_txn_is_malformed(damage: dict[str, Any]) -> None:
    data = shipped().to_dict()
    data.update(damage)
    with pytest.raises(MalformedMessage):
        EscrowTxn.from_dict(data)


def test_events_and_effects_serialise_for_traces() -> None:
    events = [CreditChecked("x"), TopUpCredited("T1", 5), Confirmed(DIGEST_HEX), Declined("no"),
              HoldPlaced(), HoldFailed(), Shipped("EMS1"), Accepted(), Rejected("damaged", "t"),
              RefundAgreed(), TimerLapsed("ship"), DisputeDecided("settle")]
    assert {type(ev) for ev in events} == set(e.EVENT_TYPES.values())
    for ev in events:
        data = json.loads(json.dumps(ev.to_dict()))
        assert data["event"] == ev.KIND and e.event_from_dict(data) == ev
    effects = [SendConfirmationRequest(1800.0), StartTimer("ship", 5.0), CancelTimer("ship"),
               PlaceHold(1), SendShipRequest(2.0), Settle(1, True), Refund(1, "dispute"),
               NotifySettlement(1, False), NotifyRefund(1, "rejected"), NotifyDecline("x"),
               OpenDispute(), NotifyDisputeDecision("refund"), RecordBehaviour("shop", "k"),
               RecordOutcome("settled")]
    assert {type(fx) for fx in effects} == set(e.EFFECT_TYPES.values())
    for fx in effects:
        data = json.loads(json.dumps(fx.to_dict()))
        assert data["effect"] == fx.KIND and e.effect_from_dict(data) == fx
    with pytest.raises(MalformedMessage):
        e.event_from_dict({"event": "earthquake"})
    with pytest.raises(MalformedMessage):
        e.effect_from_dict({"effect": "settle", "amount_fen": 1})


def test_transaction_from_the_sample_payment_request() -> None:
    txn = e.txn_from_payment_request(sample_message("payment_request"), "alice", 5.0)  # type: ignore[arg-type]
    assert (txn.contract_no, txn.merchant_id, txn.amount_fen) == ("C20260101-000001", "shop", AMOUNT)
    assert txn.contract_digest_hex == DIGEST_HEX
    with pytest.raises(IllegalTransition):
        e.txn_from_payment_request(sample_message("acceptance"), "alice", 5.0)  # type: ignore[arg-type]


def test_verified_messages_map_to_events_along_the_story() -> None:
    txn = e.txn_from_payment_request(sample_message("payment_request"), "alice", 0.0)  # type: ignore[arg-type]
    txn, _ = transition(txn, CreditChecked(), 0.0, W)
    for now_s, message_type in enumerate(["top_up_notice", "confirmation"], start=1):
        event = e.event_for_message(sample_message(message_type))
        assert event is not None
        txn, _ = transition(txn, event, float(now_s), W)
    txn, _ = transition(txn, HoldPlaced(), 3.0, W)
    for now_s, message_type in enumerate(["shipment_report", "rejection", "refund_agreement"], 4):
        event = e.event_for_message(sample_message(message_type))
        assert event is not None
        txn, _ = transition(txn, event, float(now_s), W)
    assert txn.state is State.REFUNDED and txn.top_ups_fen == 19_000
    assert txn.rejection_reason == "damaged"
    assert e.event_for_message(sample_message("rating")) is None


# --- the property: random event sequences keep the money straight ------------------------------

EVENT_LIST = [
    CreditChecked(), CreditChecked("policy"), TopUpCredited("T1", 500), TopUpCredited("T2", 9),
    Confirmed(DIGEST_HEX), Confirmed("11" * 32), Declined(), HoldPlaced(), HoldFailed(),
    Shipped(), Accepted(), Rejected("damaged"), Rejected("not_received"), RefundAgreed(),
    TimerLapsed("confirm"), TimerLapsed("ship"), TimerLapsed("accept"), TimerLapsed("refund"),
    DisputeDecided("refund"), DisputeDecided("settle"),
]  # fmt: skip
EVENTS = st.sampled_from(EVENT_LIST)
#: For the steering rule: the forward path weighted up, so that runs reach every ending.
STEERING = EVENT_LIST + [CreditChecked(), Confirmed(DIGEST_HEX), HoldPlaced(), Shipped()] * 3


class EscrowMachine(RuleBasedStateMachine):
    """Feeds random events; tracks the money and timers from the effects alone."""

    def __init__(self) -> None:
        super().__init__()
        self.txn = fresh()
        self.now_s = 0.0
        self.holds_requested = 0
        self.held = False
        self.settled = 0
        self.refunded = 0
        self.outcomes: list[str] = []
        self.timer: str | None = None

    def _apply(self, event: e.Event) -> None:
        before = self.txn
        snapshot = before.to_dict()
        try:
            after, effects = transition(before, event, self.now_s, W)
        except IllegalTransition:
            assert self.txn.to_dict() == snapshot  # unchanged
            assert type(event) not in [t for (s, t) in e.TRANSITIONS if s is before.state] or (
                isinstance(event, (Confirmed, TopUpCredited))  # wrong digest / top-up limit
            )
            return
        if after is not before:
            rule_ = e.TRANSITIONS[(before.state, type(event))]
            assert after.state in rule_.next_states
        self._account(event, effects)
        self.txn = after

    def _account(self, event: e.Event, effects: list[e.Effect]) -> None:
        if isinstance(event, HoldPlaced):
            self.held = True
        for fx in effects:
            if isinstance(fx, PlaceHold):
                self.holds_requested += 1
                assert fx.amount_fen == AMOUNT
            elif isinstance(fx, Settle):
                assert self.held, "settled money that was never held"
                self.settled += 1
            elif isinstance(fx, Refund):
                assert self.held, "refunded money that was never held"
                self.refunded += 1
            elif isinstance(fx, RecordOutcome):
                self.outcomes.append(fx.outcome)
            elif isinstance(fx, StartTimer):
                assert self.timer is None, "two timers armed at once"
                self.timer = fx.name
            elif isinstance(fx, CancelTimer):
                assert self.timer == fx.name
                self.timer = None
        if isinstance(event, TimerLapsed) and effects:
            assert self.timer == event.name
            self.timer = None

    @rule(event=EVENTS, dt=st.floats(0, 12 * 86400))
    def feed(self, event: e.Event, dt: float) -> None:
        self.now_s += dt
        self._apply(event)

    @precondition(lambda self: not is_terminal(self.txn.state))
    @rule(data=st.data(), dt=st.floats(0, 3600))
    def steer(self, data: st.DataObject, dt: float) -> None:
        """Most random events are illegal: this rule picks one of the table's rows for the
        current state, or lets the armed timer lapse at its deadline."""
        legal = e.legal_events(self.txn.state)
        choices: list[e.Event | None] = [ev for ev in STEERING if type(ev) in legal]
        if self.txn.deadline_name is not None:
            choices.append(None)  # the armed timer fires
        choice = data.draw(st.sampled_from(choices))
        self.now_s += dt
        if choice is None:
            assert self.txn.deadline_at_s is not None and self.txn.deadline_name is not None
            self.now_s = max(self.now_s, self.txn.deadline_at_s)
            choice = TimerLapsed(self.txn.deadline_name)
        self._apply(choice)

    @invariant()
    def money_is_resolved_at_most_once(self) -> None:
        assert self.holds_requested <= 1
        assert self.settled + self.refunded <= 1
        assert self.txn.deadline_name == self.timer
        assert len(self.outcomes) == (1 if is_terminal(self.txn.state) else 0)

    @invariant()
    def terminal_states_resolve_the_escrow_exactly_once(self) -> None:
        resolution = escrow_resolution(self.txn)
        if self.txn.state is State.SETTLED:
            assert (resolution, self.settled, self.refunded) == ("to_merchant", 1, 0)
        elif self.txn.state is State.REFUNDED:
            assert (resolution, self.settled, self.refunded) == ("to_customer", 0, 1)
        elif self.txn.state is State.DECLINED:
            assert resolution == "never_held" and not self.held
            assert self.settled == self.refunded == 0
        else:
            assert self.settled == self.refunded == 0
            assert resolution == ("held" if self.held else
                                  "hold_pending" if self.txn.state is State.HOLDING else "not_held")
        if is_terminal(self.txn.state):
            assert self.outcomes == [outcome_of(self.txn)]
            event("terminal: " + str(outcome_of(self.txn)))


EscrowMachine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=25, deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_random_event_sequences_keep_the_money_straight = EscrowMachine.TestCase


def test_docs_describe_every_state_event_and_extension() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text("utf-8")
    for state in State:
        assert f"`{state}`" in doc, state
    for event_type in e.EVENT_TYPES.values():
        assert f"`{event_type.__name__}" in doc, event_type
    rows = [line for line in doc.splitlines() if line.startswith("| `")]
    for (state, event_type), rule_ in e.TRANSITIONS.items():
        mine = [r for r in rows if r.startswith(f"| `{state}` | `{event_type.__name__}")]
        assert mine, (state, event_type)
        assert all(("**EXTENSION**" in r) == rule_.extension for r in mine), (state, event_type)
