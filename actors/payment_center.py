"""The mobile payment center (移动支付中心): the hub of the protocol.

It registers customers (real-name data, never a card) and merchants, runs the escrow
state machine of ``protocol.escrow`` for every contract, holds the payment (预扣), pays the
merchant or refunds the customer, credits the bank's top-ups, and keeps ratings and points.

It is restartable: every transaction, registration and its replay window live in its
database (the ``StateStore`` port), written in the same SQL transaction as the ledger work
of the step; timers are re-armed from the stored deadlines by :meth:`restore`. The SMS of
an escrow step are sealed inside that transaction and kept in an outbox until sent, so a
crash between the commit and the sends loses none: :meth:`restore` sends them again,
byte for byte.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from mpay.actors.base import Actor
from mpay.actors.ports import (
    CreditBureau,
    InsufficientFunds,
    LedgerError,
    PaymentCenterBooks,
    RatingRefused,
    StateStore,
)
from mpay.protocol import escrow as e
from mpay.protocol import messages as m
from mpay.protocol.envelope import Opened
from mpay.protocol.errors import HeaderMismatch, IllegalTransition, UnknownParty
from mpay.protocol.pki import load_der_certificate, phone_of

def cert_der_hex(cert: Any) -> str:
    return cert.public_bytes(Encoding.DER).hex()



#: how long the payment center takes to decide a dispute (EXTENSION), seconds
DEFAULT_DISPUTE_REVIEW_S = 86_400.0

#: which party may send each escrow message: the transaction's customer or its merchant
_SENDER_SIDE: dict[m.MessageType, str] = {
    m.MessageType.CONFIRMATION: "customer",
    m.MessageType.DECLINE: "customer",
    m.MessageType.ACCEPTANCE: "customer",
    m.MessageType.REJECTION: "customer",
    m.MessageType.SHIPMENT_REPORT: "merchant",
    m.MessageType.REFUND_AGREEMENT: "merchant",
}


class PaymentCenter(Actor):
    role = "payment_center"

    def __init__(
        self,
        *,
        books: PaymentCenterBooks,
        credit: CreditBureau,
        store: StateStore,
        windows: e.Windows,
        dispute_decision: str = "refund",
        dispute_review_s: float = DEFAULT_DISPUTE_REVIEW_S,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.books = books
        self.credit = credit
        self.store = store
        self.windows = windows
        self.dispute_decision = dispute_decision
        self.dispute_review_s = dispute_review_s
        self.customers: dict[str, dict[str, Any]] = {}
        self.customer_by_phone: dict[str, str] = {}
        self.merchants: dict[str, dict[str, Any]] = {}
        self.txns: dict[str, e.EscrowTxn] = {}
        self.points_awarded: dict[str, int] = {}
        self.contracts: dict[str, m.Contract] = {}

    # --- durability ----------------------------------------------------------------------

    async def restore(self) -> None:
        """Reload everything from the database and re-arm the timers (after a restart)."""
        for customer_id, record in (await self.store.load("customers")).items():
            self.customers[customer_id] = record
            self.customer_by_phone[record["phone"]] = customer_id
            self._trust_stored(record)
        for merchant_id, record in (await self.store.load("merchants")).items():
            self.merchants[merchant_id] = record
            self._trust_stored(record)
        for contract_no, record in (await self.store.load("contracts")).items():
            self.contracts[contract_no] = m.Contract.model_validate(record, strict=False)
        for contract_no, record in (await self.store.load("txns")).items():
            txn = e.EscrowTxn.from_dict(record)
            self.txns[contract_no] = txn
            if txn.deadline_name is not None and txn.deadline_at_s is not None:
                self.start_timer(txn.deadline_name, contract_no, txn.deadline_at_s)
            elif txn.state is e.State.DISPUTED:
                self.start_timer("dispute", contract_no, self.clock.now_s() + self.dispute_review_s)
        await self.restore_receiver_state(self.store)
        # SMS of a step that committed but had not gone out when the process died
        await self.resend_outbox(self.store)

    def _trust_stored(self, record: dict[str, Any]) -> None:
        """Re-trust a registrant's certificates kept in the database (checked again)."""
        for der_hex in record.get("certificates", ()):
            self.trust.add(load_der_certificate(bytes.fromhex(der_hex)))

    async def _save_receiver_state(self) -> None:
        await self.save_receiver_state(self.store)

    # --- initialization (seed init 3, 4) ---------------------------------------------------

    async def on_customer_registration(self, opened: Opened) -> None:
        registration = opened.message
        if phone_of(opened.sender_cert) != registration.phone:
            raise HeaderMismatch(f"{opened.sender_id} registers a phone its certificate does not carry")
        record = {
            "certificates": [cert_der_hex(cert) for cert in self.trust.certs_of(opened.sender_id)],
            "phone": registration.phone,
            "name": registration.name,
            "id_number": registration.id_number,
            "landline": registration.landline,
            "address": registration.address,
            "postcode": registration.postcode,
        }
        async with self.books.atomic():
            await self.store.put("customers", opened.sender_id, record)
            await self._save_receiver_state()
        self.customers[opened.sender_id] = record
        self.customer_by_phone[registration.phone] = opened.sender_id
        self.send(
            opened.sender_id,
            m.RegistrationAck(registration="customer", status="accepted"),
            include_certificate=True,
        )

    async def on_merchant_registration(self, opened: Opened) -> None:
        registration = opened.message
        if registration.merchant_id != opened.sender_id:
            raise HeaderMismatch(f"{opened.sender_id} registers as {registration.merchant_id}")
        record = {
            "certificates": [cert_der_hex(cert) for cert in self.trust.certs_of(opened.sender_id)],
            "phone": registration.phone,
            "shop_name": registration.shop_name,
        }
        async with self.books.atomic():
            await self.store.put("merchants", opened.sender_id, record)
            await self._save_receiver_state()
        self.merchants[opened.sender_id] = record
        self.send(
            opened.sender_id,
            m.RegistrationAck(registration="merchant", status="accepted"),
            include_certificate=True,
        )

    # --- step 3: payment request ---------------------------------------------------------

    async def on_payment_request(self, opened: Opened) -> None:
        request = opened.message
        if opened.sender_id not in self.merchants:
            raise UnknownParty(f"{opened.sender_id} is not a registered merchant")
        if request.contract.merchant_id != opened.sender_id:
            raise HeaderMismatch(f"{opened.sender_id} asks payment for {request.contract.merchant_id}'s contract")
        customer_id = self.customer_by_phone.get(request.customer_phone)
        if customer_id is None:
            raise UnknownParty(f"no registered customer has phone {request.customer_phone}")
        if request.contract_no in self.txns:
            raise IllegalTransition(f"contract {request.contract_no} already has a transaction")
        txn = e.txn_from_payment_request(request, customer_id, self.clock.now_s())
        refusal = await self.credit.allow_payment(
            customer_id, opened.sender_id, txn.amount_fen, self.clock.now_s()
        )
        self.tracer.record(
            "txn_opened", actor=self.party_id, contract_no=txn.contract_no, customer=customer_id,
            merchant=opened.sender_id, amount_fen=txn.amount_fen, currency=txn.currency,
        )
        self.contracts[txn.contract_no] = request.contract
        contract = request.contract

        async def store_contract() -> None:
            await self.store.put("contracts", contract.contract_no, contract.model_dump(mode="json"))

        await self._apply(txn, e.CreditChecked(refusal), prelude=store_contract)

    # --- steps 5-10: the customer's and merchant's answers -------------------------------

    async def on_confirmation(self, opened: Opened) -> None:
        await self._escrow_message(opened)

    async def on_decline(self, opened: Opened) -> None:
        await self._escrow_message(opened)

    async def on_shipment_report(self, opened: Opened) -> None:
        await self._escrow_message(opened)

    async def on_acceptance(self, opened: Opened) -> None:
        await self._escrow_message(opened)

    async def on_rejection(self, opened: Opened) -> None:
        await self._escrow_message(opened)

    async def on_refund_agreement(self, opened: Opened) -> None:
        await self._escrow_message(opened)

    async def _escrow_message(self, opened: Opened) -> None:
        txn = self._txn(opened.contract_no)
        side = _SENDER_SIDE[opened.message_type]
        party = txn.customer_id if side == "customer" else txn.merchant_id
        if opened.sender_id != party:
            raise HeaderMismatch(f"{opened.sender_id} is not the {side} of {txn.contract_no}")
        event = e.event_for_message(opened.message)
        assert event is not None
        await self._apply(txn, event)

    async def on_top_up_notice(self, opened: Opened) -> None:
        """Step 5: the bank moved money from the card; credit the customer's wallet."""
        notice = opened.message
        customer_id = self.customer_by_phone.get(notice.customer_phone)
        if customer_id is None:
            raise UnknownParty(f"top-up for unregistered phone {notice.customer_phone}")
        txn = self.txns.get(notice.contract_no)

        async def credit() -> None:
            await self.books.credit_top_up(notice.top_up_id, customer_id, notice.amount_fen)
            self.tracer.record(
                "ledger", actor=self.party_id, op="credit_top_up", customer=customer_id,
                amount_fen=notice.amount_fen, contract_no=notice.contract_no,
            )

        event = e.TopUpCredited(notice.top_up_id, notice.amount_fen)
        if txn is not None and txn.customer_id == customer_id and e.TopUpCredited in e.legal_events(txn.state):
            await self._apply(txn, event, prelude=credit)
            return
        async with self.books.atomic():
            await credit()
            await self._save_receiver_state()

    # --- step 11: ratings and points -------------------------------------------------------

    async def on_rating(self, opened: Opened) -> None:
        rating = opened.message
        try:
            async with self.books.atomic():
                await self.credit.rate(
                    rating.contract_no, opened.sender_id, rating.ratee_id, rating.stars,
                    rating.comment, self.clock.now_s(),
                )
                await self._save_receiver_state()
        except RatingRefused as exc:
            self.rejections[RatingRefused.reason] += 1
            self.tracer.record(
                "rejected", actor=self.party_id, reason=RatingRefused.reason, detail=str(exc),
                contract_no=rating.contract_no,
            )
            return
        self.tracer.record(
            "rating", actor=self.party_id, contract_no=rating.contract_no, rater=opened.sender_id,
            ratee=rating.ratee_id, stars=rating.stars,
        )

    async def on_points_redemption(self, opened: Opened) -> None:
        redemption = opened.message
        if opened.sender_id not in self.customers:
            raise UnknownParty(f"{opened.sender_id} is not a registered customer")
        redemption_id = f"{opened.sender_id}:{opened.seq}"
        try:
            async with self.books.atomic():
                credited_fen = await self.books.redeem_points(
                    redemption_id, opened.sender_id, redemption.points
                )
                await self._save_receiver_state()
        except LedgerError as exc:
            self.rejections[exc.reason] += 1
            self.tracer.record("rejected", actor=self.party_id, reason=exc.reason, detail=str(exc))
            return
        self.tracer.record(
            "ledger", actor=self.party_id, op="redeem_points", customer=opened.sender_id,
            points=redemption.points, amount_fen=credited_fen,
        )

    # --- timers --------------------------------------------------------------------------

    async def on_timer_confirm(self, contract_no: str) -> None:
        await self._lapse(contract_no, "confirm")

    async def on_timer_ship(self, contract_no: str) -> None:
        await self._lapse(contract_no, "ship")

    async def on_timer_accept(self, contract_no: str) -> None:
        await self._lapse(contract_no, "accept")

    async def on_timer_refund(self, contract_no: str) -> None:
        await self._lapse(contract_no, "refund")

    async def on_timer_dispute(self, contract_no: str) -> None:
        """EXTENSION: the review of a dispute is over; decide as the policy says."""
        txn = self.txns.get(contract_no)
        if txn is not None and txn.state is e.State.DISPUTED:
            await self._apply(txn, e.DisputeDecided(self.dispute_decision))

    async def _lapse(self, contract_no: str, name: str) -> None:
        txn = self.txns.get(contract_no)
        if txn is not None:
            await self._apply(txn, e.TimerLapsed(name))

    # --- the escrow machine and its effects ----------------------------------------------

    def _txn(self, contract_no: str | None) -> e.EscrowTxn:
        txn = self.txns.get(contract_no or "")
        if txn is None:
            raise IllegalTransition(f"no transaction for contract {contract_no!r}")
        return txn

    async def _apply(
        self,
        txn: e.EscrowTxn,
        event: e.Event,
        *,
        prelude: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """One protocol step: ``prelude`` (other writes of the same step), the transition and
        its ledger work and state in one SQL transaction; SMS and timers only after it
        committed."""
        outbox: list[tuple[str, m.Message]] = []
        timers: list[e.Effect] = []
        async with self.books.atomic():
            if prelude is not None:
                await prelude()
            txn = await self._step(txn, event, outbox, timers)
            # Written before sealing, so that a crash at this first write comes before any
            # sms_sent in the trace (sealing uses up sequence numbers and traces sms_sent).
            await self.store.put("txns", txn.contract_no, txn.to_dict())
            sealed = [self.seal_outgoing(recipient_id, message) for recipient_id, message in outbox]
            await self.stage_outbox(self.store, sealed)
            await self._save_receiver_state()
        self.txns[txn.contract_no] = txn
        for effect in timers:
            if isinstance(effect, e.StartTimer):
                self.start_timer(effect.name, txn.contract_no, effect.at_s)
            elif isinstance(effect, e.CancelTimer):
                self.cancel_timer(effect.name, txn.contract_no)
            else:  # OpenDispute: the review timer
                self.start_timer("dispute", txn.contract_no, self.clock.now_s() + self.dispute_review_s)
        await self.flush_outbox(self.store, sealed)

    async def _step(
        self, txn: e.EscrowTxn, event: e.Event, outbox: list, timers: list
    ) -> e.EscrowTxn:
        now_s = self.clock.now_s()
        before = txn.state
        txn, effects = e.transition(txn, event, now_s, self.windows)
        self.tracer.record(
            "transition", actor=self.party_id, contract_no=txn.contract_no, event=event.KIND,
            before=str(before), after=str(txn.state), effects=[fx.KIND for fx in effects],
        )
        for effect in effects:
            txn = await self._perform(txn, effect, outbox, timers)
        return txn

    async def _perform(
        self, txn: e.EscrowTxn, effect: e.Effect, outbox: list, timers: list
    ) -> e.EscrowTxn:
        contract_no = txn.contract_no
        now_s = self.clock.now_s()
        match effect:
            case e.SendConfirmationRequest():
                balance_fen = await self.books.wallet_fen(txn.customer_id)
                outbox.append(
                    (
                        txn.customer_id,
                        m.ConfirmationRequest(
                            contract_no=contract_no,
                            contract=self.contracts[contract_no],
                            balance_fen=balance_fen,
                            shortfall_fen=max(0, txn.amount_fen - balance_fen),
                            confirm_window_s=int(effect.confirm_window_s),
                        ),
                    )
                )
            case e.StartTimer() | e.CancelTimer() | e.OpenDispute():
                timers.append(effect)
            case e.PlaceHold():
                try:
                    await self.books.hold(contract_no, txn.customer_id, effect.amount_fen)
                except InsufficientFunds as exc:
                    return await self._step(txn, e.HoldFailed(exc.reason), outbox, timers)
                self._ledger_trace("hold", txn, effect.amount_fen)
                return await self._step(txn, e.HoldPlaced(), outbox, timers)
            case e.SendShipRequest():
                outbox.append(
                    (
                        txn.merchant_id,
                        m.ShipRequest(
                            contract_no=contract_no,
                            held_fen=txn.amount_fen,
                            currency=txn.currency,
                            ship_window_s=int(effect.ship_window_s),
                        ),
                    )
                )
            case e.Settle():
                points = await self.books.settle(contract_no, txn.merchant_id, effect.amount_fen)
                self.points_awarded[contract_no] = points
                self._ledger_trace("settle", txn, effect.amount_fen, points=points)
            case e.Refund():
                await self.books.refund(contract_no)
                self._ledger_trace("refund", txn, effect.amount_fen)
            case e.NotifySettlement():
                notice = m.SettlementNotice(
                    contract_no=contract_no,
                    amount_fen=effect.amount_fen,
                    currency=txn.currency,
                    points_awarded=self.points_awarded.get(contract_no, 0),
                    auto_accepted=effect.auto_accepted,
                )
                outbox += [(txn.merchant_id, notice), (txn.customer_id, notice)]
            case e.NotifyRefund():
                notice = m.RefundNotice(
                    contract_no=contract_no,
                    amount_fen=effect.amount_fen,
                    currency=txn.currency,
                    reason=effect.reason,
                )
                outbox += [(txn.customer_id, notice), (txn.merchant_id, notice)]
            case e.NotifyDecline():
                refused = m.PaymentRefused(contract_no=contract_no, reason=effect.reason)
                outbox += [(txn.merchant_id, refused), (txn.customer_id, refused)]
            case e.NotifyDisputeDecision():
                decision = m.DisputeDecision(contract_no=contract_no, decision=effect.decision)
                outbox += [(txn.customer_id, decision), (txn.merchant_id, decision)]
            case e.RecordBehaviour():
                await self.credit.record_behaviour(effect.party_id, effect.kind, now_s)
            case e.RecordOutcome():
                await self.credit.record_outcome(
                    contract_no, txn.customer_id, txn.merchant_id, effect.outcome, now_s
                )
            case _:
                raise AssertionError(f"unhandled effect {effect!r}")
        return txn

    def _ledger_trace(self, op: str, txn: e.EscrowTxn, amount_fen: int, **extra: Any) -> None:
        self.tracer.record(
            "ledger", actor=self.party_id, op=op, contract_no=txn.contract_no,
            customer=txn.customer_id, merchant=txn.merchant_id, amount_fen=amount_fen, **extra,
        )
