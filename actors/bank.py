"""The bank (银行): binds a card to a phone, and on a signed instruction moves money from the
card to the payment center, telling both the payment center and the customer (step 5).

Only the bank ever sees a card number or PIN; it keeps the PIN as a salted hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from actors.base import Actor
from actors.ports import BankBooks, InsufficientFunds
from protocol import messages as m
from protocol.envelope import Opened
from protocol.errors import HeaderMismatch


def _pin_hash(pin: str, salt: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, 1_000)


@dataclass
class BoundCard:
    customer_id: str
    phone_number: str
    card_number: str
    pin_salt: bytes
    pin_hash: bytes


class Bank(Actor):
    role = "bank"

    def __init__(self, *, books: BankBooks, payment_center_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.books = books
        self.payment_center_id = payment_center_id
        self.cards: dict[str, BoundCard] = {}
        #: top-up id -> amount moved to the payment center (for the reconciliation check)
        self.top_ups_fen: dict[str, int] = {}
        self.failed_pin_checks = 0

    async def on_card_binding(self, opened: Opened) -> None:
        """Init 3: the customer binds the phone to a bank card."""
        binding = opened.message
        if binding.phone != self.directory.get(opened.sender_id).number:
            raise HeaderMismatch(f"{opened.sender_id} binds a card to a phone that is not its own")
        salt = secrets.token_bytes(16)
        self.cards[opened.sender_id] = BoundCard(
            customer_id=opened.sender_id,
            phone_number=binding.phone,
            card_number=binding.card_number,
            pin_salt=salt,
            pin_hash=_pin_hash(binding.pin, salt),
        )
        self.send(
            opened.sender_id,
            m.RegistrationAck(registration="card_binding", status="accepted"),
            include_certificate=True,
        )

    async def on_top_up_instruction(self, opened: Opened) -> None:
        """Step 5: card -> the payment center's account, then notify both sides."""
        instruction = opened.message
        card = self.cards.get(opened.sender_id)
        if card is None:
            self._receipt(opened, refusal="card_not_bound")
            return
        if instruction.customer_phone != card.phone_number or instruction.card_number != card.card_number:
            self._receipt(opened, refusal="unknown_card")
            return
        if not hmac.compare_digest(_pin_hash(instruction.pin, card.pin_salt), card.pin_hash):
            self.failed_pin_checks += 1
            self._receipt(opened, refusal="wrong_pin")
            return
        top_up_id = f"{opened.sender_id}:{instruction.top_up_id}"
        try:
            await self.books.top_up(top_up_id, opened.sender_id, instruction.amount_fen)
        except InsufficientFunds:
            self._receipt(opened, refusal="insufficient_funds")
            return
        self.top_ups_fen[top_up_id] = instruction.amount_fen
        self.tracer.record(
            "ledger", actor=self.party_id, op="top_up", customer=opened.sender_id,
            amount_fen=instruction.amount_fen, contract_no=instruction.contract_no,
        )
        self.send(
            self.payment_center_id,
            m.TopUpNotice(
                top_up_id=top_up_id,
                customer_phone=card.phone_number,
                amount_fen=instruction.amount_fen,
                currency=instruction.currency,
                contract_no=instruction.contract_no,
            ),
        )
        self._receipt(opened, refusal=None)

    def _receipt(self, opened: Opened, *, refusal: str | None) -> None:
        instruction = opened.message
        self.send(
            opened.sender_id,
            m.TopUpReceipt(
                top_up_id=instruction.top_up_id,
                contract_no=instruction.contract_no,
                amount_fen=instruction.amount_fen,
                currency=instruction.currency,
                status="credited" if refusal is None else "refused",
                refusal_reason=refusal,
            ),
        )
