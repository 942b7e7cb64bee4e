"""A realistic, valid instance of every message type: the seed's happy path.

Used by the interop vectors, the demo and the tests. Deterministic: the same call
returns an equal message every time (no clock, no randomness). The story: customer
``alice`` (phone 13800138000, customer number ``A0001`` at the shop) buys 2 x 120.00 CNY
of tea from merchant ``shop``; the payment center ``mpc`` holds and settles 240.00 CNY
under contract ``C20260101-000001``.
"""

from __future__ import annotations

from collections.abc import Callable

from mpay.protocol.messages import (
    Acceptance,
    CardBinding,
    Confirmation,
    ConfirmationRequest,
    Contract,
    CustomerRegistration,
    Decline,
    DisputeDecision,
    Item,
    MerchantRegistration,
    Message,
    MessageType,
    OrderContract,
    PaymentRefused,
    PaymentRequest,
    PhoneCheck,
    PhoneCheckReply,
    PointsRedemption,
    PurchaseRequest,
    Rating,
    RefundAgreement,
    RefundNotice,
    RegistrationAck,
    Rejection,
    SettlementNotice,
    ShipmentNotice,
    ShipmentReport,
    ShipRequest,
    ShopRegistration,
    TopUpInstruction,
    TopUpNotice,
    TopUpReceipt,
    contract_digest,
)

CUSTOMER_ID = "alice"
CUSTOMER_NO = "A0001"
CUSTOMER_PHONE = "13800138000"
MERCHANT_ID = "shop"
PAYMENT_CENTER_ID = "mpc"
BANK_ID = "bank"
CONTRACT_NO = "C20260101-000001"
ORDER_REF = "alice-order-1"
TOP_UP_ID = "T20260101-000001"
#: 2026-01-01T00:00:00Z: the purchase; shipping one day later.
PURCHASED_UNIX_S = 1_767_225_600
SHIPPED_UNIX_S = PURCHASED_UNIX_S + 86_400
DELIVERY_ADDRESS = "1 Chang'an Avenue, Dongcheng District, Beijing"
#: The phone-fee balance before the top-up: 50.00 CNY, short of the 240.00 CNY total.
BALANCE_FEN = 5_000
#: Alice's bank card and its 6-digit password: they appear only in messages to the bank.
CARD_NUMBER = "6222020200112233445"
PIN = "802417"
#: A fixed phone-check nonce (a real merchant draws it at random).
NONCE = bytes(range(16))

ITEMS = (
    Item(name="Longjing green tea", specification="250 g tin", quantity=2, unit_price_fen=12_000),
)
TOTAL_FEN = 24_000

CONTRACT = Contract(
    contract_no=CONTRACT_NO,
    merchant_id=MERCHANT_ID,
    customer_no=CUSTOMER_NO,
    items=ITEMS,
    shipping_method="express",
    shipping_fee_fen=0,
    total_fen=TOTAL_FEN,
    currency="CNY",
    delivery_address=DELIVERY_ADDRESS,
)


def _samples() -> dict[MessageType, Callable[[], Message]]:
    return {
        MessageType.SHOP_REGISTRATION: lambda: ShopRegistration(
            customer_no=CUSTOMER_NO, phone=CUSTOMER_PHONE, payment_method="phone_fee"
        ),
        MessageType.PHONE_CHECK: lambda: PhoneCheck(customer_no=CUSTOMER_NO, nonce=NONCE),
        MessageType.PHONE_CHECK_REPLY: lambda: PhoneCheckReply(
            customer_no=CUSTOMER_NO, nonce=NONCE
        ),
        MessageType.CUSTOMER_REGISTRATION: lambda: CustomerRegistration(
            phone=CUSTOMER_PHONE,
            name="Alice Wang",
            id_number="11010119900307123X",
            landline="010-65123456",
            address=DELIVERY_ADDRESS,
            postcode="100006",
        ),
        MessageType.CARD_BINDING: lambda: CardBinding(
            card_number=CARD_NUMBER, pin=PIN, phone=CUSTOMER_PHONE, name="Alice Wang"
        ),
        MessageType.MERCHANT_REGISTRATION: lambda: MerchantRegistration(
            merchant_id=MERCHANT_ID,
            shop_name="West Lake Tea Shop",
            phone="057187654321",
            address="18 Longjing Road, Hangzhou",
        ),
        MessageType.REGISTRATION_ACK: lambda: RegistrationAck(
            registration="customer", status="accepted"
        ),
        MessageType.PURCHASE_REQUEST: lambda: PurchaseRequest(
            order_ref=ORDER_REF,
            customer_no=CUSTOMER_NO,
            items=ITEMS,
            purchased_unix_s=PURCHASED_UNIX_S,
            delivery_address=DELIVERY_ADDRESS,
            payment_method="phone_fee",
        ),
        MessageType.ORDER_CONTRACT: lambda: OrderContract(order_ref=ORDER_REF, contract=CONTRACT),
        MessageType.PAYMENT_REQUEST: lambda: PaymentRequest(
            contract_no=CONTRACT_NO, contract=CONTRACT, customer_phone=CUSTOMER_PHONE
        ),
        MessageType.CONFIRMATION_REQUEST: lambda: ConfirmationRequest(
            contract_no=CONTRACT_NO,
            contract=CONTRACT,
            balance_fen=BALANCE_FEN,
            shortfall_fen=TOTAL_FEN - BALANCE_FEN,
            confirm_window_s=30 * 60,
        ),
        MessageType.TOP_UP_INSTRUCTION: lambda: TopUpInstruction(
            top_up_id=TOP_UP_ID,
            contract_no=CONTRACT_NO,
            command="top_up_phone_fee",
            card_number=CARD_NUMBER,
            pin=PIN,
            customer_phone=CUSTOMER_PHONE,
            amount_fen=TOTAL_FEN - BALANCE_FEN,
            currency="CNY",
        ),
        MessageType.TOP_UP_NOTICE: lambda: TopUpNotice(
            top_up_id=TOP_UP_ID,
            contract_no=CONTRACT_NO,
            customer_phone=CUSTOMER_PHONE,
            amount_fen=TOTAL_FEN - BALANCE_FEN,
            currency="CNY",
        ),
        MessageType.TOP_UP_RECEIPT: lambda: TopUpReceipt(
            top_up_id=TOP_UP_ID,
            contract_no=CONTRACT_NO,
            amount_fen=TOTAL_FEN - BALANCE_FEN,
            currency="CNY",
            status="credited",
        ),
        MessageType.CONFIRMATION: lambda: Confirmation(
            contract_no=CONTRACT_NO, contract_digest=contract_digest(CONTRACT)
        ),
        MessageType.DECLINE: lambda: Decline(
            contract_no=CONTRACT_NO, reason="changed_mind", text="Found it cheaper nearby."
        ),
        MessageType.PAYMENT_REFUSED: lambda: PaymentRefused(
            contract_no=CONTRACT_NO, reason="customer_declined"
        ),
        MessageType.SHIP_REQUEST: lambda: ShipRequest(
            contract_no=CONTRACT_NO, held_fen=TOTAL_FEN, currency="CNY", ship_window_s=72 * 3600
        ),
        MessageType.SHIPMENT_NOTICE: lambda: ShipmentNotice(
            contract_no=CONTRACT_NO,
            shipping_method="express",
            tracking_no="EMS1234567890CN",
            shipped_unix_s=SHIPPED_UNIX_S,
        ),
        MessageType.SHIPMENT_REPORT: lambda: ShipmentReport(
            contract_no=CONTRACT_NO,
            status="shipped",
            shipping_method="express",
            tracking_no="EMS1234567890CN",
            shipped_unix_s=SHIPPED_UNIX_S,
        ),
        MessageType.ACCEPTANCE: lambda: Acceptance(contract_no=CONTRACT_NO),
        MessageType.REJECTION: lambda: Rejection(
            contract_no=CONTRACT_NO,
            reason="damaged",
            text="One tin arrived crushed.",
            return_tracking_no="EMS9876543210CN",
        ),
        MessageType.SETTLEMENT_NOTICE: lambda: SettlementNotice(
            contract_no=CONTRACT_NO,
            amount_fen=TOTAL_FEN,
            currency="CNY",
            points_awarded=TOTAL_FEN // 100,
            auto_accepted=False,
        ),
        MessageType.REFUND_AGREEMENT: lambda: RefundAgreement(
            contract_no=CONTRACT_NO, returned_goods_received=True, agrees_to_refund=True
        ),
        MessageType.REFUND_NOTICE: lambda: RefundNotice(
            contract_no=CONTRACT_NO, amount_fen=TOTAL_FEN, currency="CNY", reason="rejected"
        ),
        MessageType.DISPUTE_DECISION: lambda: DisputeDecision(
            contract_no=CONTRACT_NO,
            decision="refund",
            text="The merchant did not answer within the refund window.",
        ),
        MessageType.RATING: lambda: Rating(
            contract_no=CONTRACT_NO, ratee_id=MERCHANT_ID, stars=5, comment="Fast and fragrant."
        ),
        MessageType.POINTS_REDEMPTION: lambda: PointsRedemption(
            redemption_id="R20260101-000001", points=200
        ),
    }


_SAMPLES = _samples()


def sample_message(message_type: MessageType | str) -> Message:
    """A valid, realistic instance of ``message_type`` from the happy-path story."""
    return _SAMPLES[MessageType(message_type)]()


def all_samples() -> dict[MessageType, Message]:
    """One sample per message type, in MessageType order."""
    return {t: sample_message(t) for t in MessageType}
