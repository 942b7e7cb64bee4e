"""The customer's handset (顾客手机): registers, buys, confirms, tops up, accepts or rejects, rates.

The handset keeps the card number and PIN and sends them to the bank alone. It checks
that the contract the payment center asks it to confirm is the one the merchant sent
(step 4 against step 2), and it never acts on an SMS that failed verification. A plain
text SMS (no envelope: a phishing "your card was charged" message, say) is shown in the
inbox flagged UNTRUSTED and nothing else happens.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from mpay.actors.base import Actor, OutcomeNotices
from mpay.actors.behaviour import CustomerBehaviour
from mpay.actors.ports import GoodsArrived
from mpay.protocol import messages as m
from mpay.protocol.envelope import Opened
from mpay.protocol.errors import HeaderMismatch, IllegalTransition


#: plain text SMS the handset keeps to show its user (older ones scroll away)
MAX_UNTRUSTED_INBOX = 32


@dataclass
class Purchase:
    """The handset's view of one purchase."""

    merchant_id: str
    items: tuple[Any, ...]
    contract: Any = None
    contract_digest: bytes | None = None
    confirmed: bool = False
    choice: str = ""
    shortfall_fen: int = 0
    topped_up_fen: int = 0
    outcome: str | None = None
    rated: bool = False
    steps: list[str] = field(default_factory=list)


class CustomerHandset(OutcomeNotices, Actor):
    role = "customer"

    def __init__(
        self,
        *,
        behaviour: CustomerBehaviour,
        name: str,
        id_number: str,
        landline: str,
        address: str,
        postcode: str,
        card_number: str,
        card_pin: str,
        payment_center_id: str,
        bank_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.behaviour = behaviour
        self.name = name
        self.id_number = id_number
        self.landline = landline
        self.address = address
        self.postcode = postcode
        self.card_number = card_number
        self.card_pin = card_pin
        self.payment_center_id = payment_center_id
        self.bank_id = bank_id
        self.customer_no: dict[str, str] = {}
        self.registered_with: set[str] = set()
        self.purchases_by_order: dict[str, Purchase] = {}
        self.purchases: dict[str, Purchase] = {}
        self.behaviours: dict[str, CustomerBehaviour] = {}
        self.pending_confirmations: dict[str, Opened] = {}
        #: what the user sees of plain text SMS: (sender number, "UNTRUSTED", text), the latest
        self.untrusted_inbox: deque[tuple[str, str, str]] = deque(maxlen=MAX_UNTRUSTED_INBOX)
        self._order_counter = 0

    def on_untrusted_sms(self, sender_number: str, text: str) -> None:
        """Show a plain text SMS flagged as untrusted; act on nothing in it."""
        super().on_untrusted_sms(sender_number, text)
        self.untrusted_inbox.append((sender_number, "UNTRUSTED", text))

    # --- initialization (seed init 2, 3) --------------------------------------------------

    def register_everywhere(self, merchant_ids: list[str]) -> None:
        """Init 2-3: open a shop account at each merchant, register at the payment center,
        bind the bank card at the bank."""
        self.send(
            self.payment_center_id,
            m.CustomerRegistration(
                phone=self.number,
                name=self.name,
                id_number=self.id_number,
                landline=self.landline,
                address=self.address,
                postcode=self.postcode,
            ),
            include_certificate=True,
        )
        self.send(
            self.bank_id,
            m.CardBinding(
                card_number=self.card_number,
                pin=self.card_pin,
                phone=self.number,
                name=self.name,
            ),
            include_certificate=True,
        )
        for merchant_id in merchant_ids:
            customer_no = f"{merchant_id}:{self.party_id}"
            self.customer_no[merchant_id] = customer_no
            self.send(
                merchant_id,
                m.ShopRegistration(customer_no=customer_no, phone=self.number, payment_method="phone_fee"),
                include_certificate=True,
            )

    async def on_phone_check(self, opened: Opened) -> None:
        """Init 2: the merchant checks by SMS that this phone is the customer's."""
        check = opened.message
        self.send(opened.sender_id, m.PhoneCheckReply(customer_no=check.customer_no, nonce=check.nonce))

    async def on_registration_ack(self, opened: Opened) -> None:
        self.registered_with.add(opened.sender_id)

    # --- step 1: purchase ---------------------------------------------------------------

    def buy(
        self,
        merchant_id: str,
        items: list[Any],
        behaviour: CustomerBehaviour | None = None,
        order_ref: str | None = None,
    ) -> str:
        """Step 1: send the purchase request. Returns the order reference."""
        self._order_counter += 1
        order_ref = order_ref or f"{self.party_id}-{self._order_counter}"
        message = m.PurchaseRequest(
            order_ref=order_ref,
            customer_no=self.customer_no[merchant_id],
            items=tuple(items),
            purchased_unix_s=int(self.clock.now_unix_s()),
            delivery_address=self.address,
            payment_method="phone_fee",
        )
        purchase = Purchase(merchant_id=merchant_id, items=tuple(items))
        purchase.steps.append("purchase_request")
        self.purchases_by_order[order_ref] = purchase
        if behaviour is not None:
            self.behaviours[order_ref] = behaviour
        self.send(merchant_id, message, txn_key=order_ref)
        return order_ref

    def _behaviour(self, purchase_key: str) -> CustomerBehaviour:
        return self.behaviours.get(purchase_key, self.behaviour)

    # --- step 2: the merchant's contract ------------------------------------------------

    async def on_order_contract(self, opened: Opened) -> None:
        order_ref = opened.message.order_ref
        contract = opened.message.contract
        purchase = self.purchases_by_order.get(order_ref)
        if purchase is None or purchase.merchant_id != opened.sender_id:
            raise HeaderMismatch(f"contract {contract.contract_no} answers no order of ours")
        purchase.contract = contract
        purchase.contract_digest = m.contract_digest(contract)
        self.purchases[contract.contract_no] = purchase
        if order_ref in self.behaviours:
            self.behaviours[contract.contract_no] = self.behaviours[order_ref]
        purchase.steps.append("order_contract")
        # The payment center may have been faster than the merchant's own SMS.
        early = self.pending_confirmations.pop(contract.contract_no, None)
        if early is not None:
            await self.on_confirmation_request(early)

    # --- steps 4-5: confirm (top up first if short) ------------------------------------

    async def on_confirmation_request(self, opened: Opened) -> None:
        request = opened.message
        contract_no = request.contract.contract_no
        purchase = self.purchases.get(contract_no)
        if purchase is None:
            # The contract SMS (step 2) has not arrived yet: wait for it.
            self.pending_confirmations[contract_no] = opened
            return
        if m.contract_digest(request.contract) != purchase.contract_digest:
            raise HeaderMismatch(f"{contract_no}: the payment center's contract differs from the merchant's")
        purchase.steps.append("confirmation_request")
        behaviour = self._behaviour(contract_no)
        choice = behaviour.decide_confirm(self.rng)
        purchase.shortfall_fen = request.shortfall_fen
        if choice == "ignore":
            purchase.steps.append("ignored_confirmation")
            return
        self.start_timer("decide", contract_no, self.clock.now_s() + behaviour.think_s)
        purchase.choice = choice

    async def on_timer_decide(self, contract_no: str) -> None:
        purchase = self.purchases[contract_no]
        if purchase.choice == "decline":
            self.send(
                self.payment_center_id,
                m.Decline(contract_no=contract_no, reason="changed_mind", text="changed my mind"),
            )
            purchase.steps.append("decline")
            return
        shortfall = purchase.shortfall_fen
        if shortfall > 0 and self._behaviour(contract_no).top_up:
            self.send(
                self.bank_id,
                m.TopUpInstruction(
                    top_up_id=f"T{self.next_seq}",
                    contract_no=contract_no,
                    command="top_up_phone_fee",
                    card_number=self.card_number,
                    pin=self.card_pin,
                    customer_phone=self.number,
                    amount_fen=shortfall,
                    currency=purchase.contract.currency,
                ),
            )
            purchase.steps.append("top_up_instruction")
            return
        self._confirm(contract_no, purchase)

    async def on_top_up_receipt(self, opened: Opened) -> None:
        receipt = opened.message
        purchase = self._purchase_from(opened)
        purchase.steps.append("top_up_receipt")
        if receipt.status == "credited":
            purchase.topped_up_fen += receipt.amount_fen
        # Confirm either way: with a failed top-up the hold fails and the order is declined.
        self._confirm(receipt.contract_no, purchase)

    def _confirm(self, contract_no: str, purchase: Purchase) -> None:
        if purchase.confirmed:
            return
        purchase.confirmed = True
        self.send(
            self.payment_center_id,
            m.Confirmation(contract_no=contract_no, contract_digest=purchase.contract_digest),
        )
        purchase.steps.append("confirmation")

    # --- steps 7-8: delivery, acceptance or rejection -----------------------------------

    async def on_shipment_notice(self, opened: Opened) -> None:
        self._purchase_from(opened).steps.append("shipment_notice")

    async def on_goods_arrived(self, parcel: GoodsArrived) -> None:
        """The goods are here: inspect them (this takes the behaviour's ``inspect_s``)."""
        purchase = self.purchases.get(parcel.contract_no)
        if purchase is None or purchase.merchant_id != parcel.sender_id:
            raise IllegalTransition(f"a parcel for unknown contract {parcel.contract_no}")
        purchase.steps.append("goods_arrived")
        inspect_s = self._behaviour(parcel.contract_no).inspect_s
        self.start_timer("inspect", parcel.contract_no, self.clock.now_s() + inspect_s)

    async def on_timer_inspect(self, contract_no: str) -> None:
        purchase = self.purchases[contract_no]
        if purchase.outcome is not None:
            return
        behaviour = self._behaviour(contract_no)
        choice = behaviour.decide_delivery(self.rng)
        if choice == "accept":
            self.send(self.payment_center_id, m.Acceptance(contract_no=contract_no))
            purchase.steps.append("acceptance")
        elif choice == "reject":
            rejection = m.Rejection(
                contract_no=contract_no,
                reason=behaviour.reject_reason,
                text=behaviour.reject_text,
            )
            self.send(self.payment_center_id, rejection)
            self.send(purchase.merchant_id, rejection)
            self.courier.dispatch(
                self.party_id, purchase.merchant_id, contract_no, behaviour.return_transit_s
            )
            purchase.steps.append("rejection")
        else:
            purchase.steps.append("ignored_delivery")

    # --- steps 9-11: outcome and rating --------------------------------------------------

    def _finish(self, opened: Opened, outcome: str) -> None:
        purchase = self._purchase_from(opened)
        self.finish_and_rate(
            purchase, opened, outcome, purchase.merchant_id, self._behaviour(opened.contract_no or ""),
            rate_at=self.payment_center_id,
        )

    def _purchase_from(self, opened: Opened) -> Purchase:
        purchase = self.purchases.get(opened.contract_no or "")
        if purchase is None:
            raise IllegalTransition(f"{opened.message_type} for unknown contract {opened.contract_no}")
        return purchase
