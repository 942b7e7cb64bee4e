"""The merchant (商家): checks customers' phones, writes contracts, asks for payment, ships,
takes returns and agrees refunds, rates customers.

The merchant never learns a card number or PIN: it is paid through the payment center.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mpay.actors.base import Actor, OutcomeNotices
from mpay.actors.behaviour import MerchantBehaviour
from mpay.actors.ports import GoodsArrived
from mpay.protocol import messages as m
from mpay.protocol.envelope import Opened
from mpay.protocol.errors import HeaderMismatch, IllegalTransition


@dataclass
class Sale:
    """The merchant's view of one contract."""

    customer_id: str
    contract: Any
    rejected: bool = False
    outcome: str | None = None
    rated: bool = False
    steps: list[str] = field(default_factory=list)


class Merchant(OutcomeNotices, Actor):
    role = "merchant"

    def __init__(
        self,
        *,
        behaviour: MerchantBehaviour,
        payment_center_id: str,
        shop_name: str,
        address: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.shop_name = shop_name
        self.address = address
        self.behaviour = behaviour
        self.behaviours: dict[str, MerchantBehaviour] = {}
        self.payment_center_id = payment_center_id
        self.customers: dict[str, dict[str, Any]] = {}
        self.phone_nonces: dict[str, bytes] = {}
        self.sales: dict[str, Sale] = {}
        self._contract_counter = 0

    def register_at_payment_center(self) -> None:
        """Init 4."""
        self.send(
            self.payment_center_id,
            m.MerchantRegistration(
                merchant_id=self.party_id, shop_name=self.shop_name, phone=self.number, address=self.address
            ),
            include_certificate=True,
        )

    def _behaviour(self, contract_no: str) -> MerchantBehaviour:
        return self.behaviours.get(contract_no, self.behaviour)

    # --- init 2: the customer opens a shop account --------------------------------------

    async def on_shop_registration(self, opened: Opened) -> None:
        registration = opened.message
        if registration.phone != self.directory.get(opened.sender_id).number:
            raise HeaderMismatch(f"{opened.sender_id} registers a phone that is not its own")
        nonce = self.rng.randbytes(16)
        self.customers[opened.sender_id] = {
            "customer_no": registration.customer_no,
            "phone": registration.phone,
            "verified": False,
        }
        self.phone_nonces[opened.sender_id] = nonce
        self.send(
            opened.sender_id,
            m.PhoneCheck(customer_no=registration.customer_no, nonce=nonce),
            include_certificate=True,
        )

    async def on_phone_check_reply(self, opened: Opened) -> None:
        expected = self.phone_nonces.pop(opened.sender_id, None)
        if expected is None or opened.message.nonce != expected:
            raise HeaderMismatch(f"{opened.sender_id}: phone check answer does not match")
        self.customers[opened.sender_id]["verified"] = True

    async def on_registration_ack(self, opened: Opened) -> None:
        return None

    # --- steps 1-3: order, contract, payment request -----------------------------------

    def expect_behaviour(self, order_ref: str, behaviour: MerchantBehaviour) -> None:
        """Let the scenario give one order its own behaviour."""
        self.behaviours[order_ref] = behaviour

    async def on_purchase_request(self, opened: Opened) -> None:
        request = opened.message
        customer = self.customers.get(opened.sender_id)
        if customer is None or not customer["verified"]:
            raise IllegalTransition(f"{opened.sender_id} has no verified shop account")
        self._contract_counter += 1
        contract_no = f"{self.party_id.upper()}-{self._contract_counter:06d}"
        behaviour = self.behaviours.pop(request.order_ref, self.behaviour)
        self.behaviours[contract_no] = behaviour
        total_fen = sum(item.quantity * item.unit_price_fen for item in request.items)
        contract = m.Contract(
            contract_no=contract_no,
            merchant_id=self.party_id,
            customer_no=request.customer_no,
            items=request.items,
            shipping_method=behaviour.shipping_method,
            total_fen=total_fen,
            currency=m.CURRENCY,
            delivery_address=request.delivery_address,
        )
        sale = Sale(customer_id=opened.sender_id, contract=contract)
        sale.steps += ["purchase_request", "order_contract", "payment_request"]
        self.sales[contract_no] = sale
        self.send(opened.sender_id, m.OrderContract(order_ref=request.order_ref, contract=contract))
        self.send(
            self.payment_center_id,
            m.PaymentRequest(contract_no=contract_no, contract=contract, customer_phone=customer["phone"]),
        )

    # --- steps 6-7: ship ----------------------------------------------------------------

    async def on_ship_request(self, opened: Opened) -> None:
        contract_no = opened.message.contract_no
        sale = self._sale(contract_no)
        sale.steps.append("ship_request")
        behaviour = self._behaviour(contract_no)
        if behaviour.decide_ship(self.rng) == "never":
            sale.steps.append("never_shipped")
            return
        self.start_timer("ship", contract_no, self.clock.now_s() + behaviour.ship_delay_s)

    async def on_timer_ship(self, contract_no: str) -> None:
        sale = self._sale(contract_no)
        if sale.outcome is not None:
            return  # refunded automatically before we shipped
        behaviour = self._behaviour(contract_no)
        tracking_no = f"SF{self.rng.randrange(10**11, 10**12)}"
        shipped_unix_s = int(self.clock.now_unix_s())
        self.courier.dispatch(self.party_id, sale.customer_id, contract_no, behaviour.transit_s)
        self.send(
            sale.customer_id,
            m.ShipmentNotice(
                contract_no=contract_no,
                shipping_method=behaviour.shipping_method,
                tracking_no=tracking_no,
                shipped_unix_s=shipped_unix_s,
            ),
        )
        self.send(
            self.payment_center_id,
            m.ShipmentReport(
                contract_no=contract_no,
                status="shipped",
                shipping_method=behaviour.shipping_method,
                tracking_no=tracking_no,
                shipped_unix_s=shipped_unix_s,
            ),
        )
        sale.steps.append("shipped")

    # --- steps 8, 10: return and refund -------------------------------------------------

    async def on_rejection(self, opened: Opened) -> None:
        contract_no = opened.message.contract_no
        sale = self._sale(contract_no)
        if sale.customer_id != opened.sender_id:
            raise HeaderMismatch(f"{opened.sender_id} is not the customer of {contract_no}")
        sale.rejected = True
        sale.steps.append("rejection")

    async def on_goods_arrived(self, parcel: GoodsArrived) -> None:
        """Step 10: the returned goods are back; agree the refund (or, misbehaving, not)."""
        contract_no = parcel.contract_no
        sale = self._sale(contract_no)
        if parcel.sender_id != sale.customer_id:
            raise IllegalTransition(f"a return for {contract_no} from {parcel.sender_id}")
        sale.steps.append("goods_returned")
        if sale.outcome is not None:
            return
        if self._behaviour(contract_no).decide_refund(self.rng) == "agree":
            self.send(
                self.payment_center_id,
                m.RefundAgreement(
                    contract_no=contract_no, returned_goods_received=True, agrees_to_refund=True
                ),
            )
            sale.steps.append("refund_agreement")
        else:
            sale.steps.append("ignored_return")

    # --- steps 9-11: outcome and rating --------------------------------------------------

    def _finish(self, opened: Opened, outcome: str) -> None:
        sale = self._sale(opened.contract_no or "")
        self.finish_and_rate(
            sale, opened, outcome, sale.customer_id, self._behaviour(opened.contract_no or ""),
            rate_at=self.payment_center_id,
        )

    def _sale(self, contract_no: str) -> Sale:
        try:
            return self.sales[contract_no]
        except KeyError:
            raise IllegalTransition(f"no contract {contract_no!r} at {self.party_id}") from None
