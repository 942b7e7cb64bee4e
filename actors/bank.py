"""The bank (银行): binds a card to a phone, and on a signed instruction moves money from the
card to the payment center, telling both the payment center and the customer (step 5).

Only the bank ever sees a card number or PIN; it keeps the PIN as a salted hash.

It is restartable like the payment center: with a ``StateStore`` the card bindings, the
processed top-ups and its replay window are written in the same SQL transaction as the
money movement of the step, and :meth:`Bank.restore` rebuilds them after a crash. A
top-up instruction that arrives again (a duplicate SMS, a replay) is refused by the replay
window, and the ledger's top-up is idempotent on its id besides. The top-up notice and
receipt are sealed inside the top-up's transaction and kept in an outbox until sent.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import asdict, dataclass
from typing import Any

from cryptography.hazmat.primitives.serialization import Encoding

from mpay.actors.base import Actor
from mpay.actors.ports import BankBooks, InsufficientFunds, StateStore
from mpay.protocol import messages as m
from mpay.protocol.envelope import Opened
from mpay.protocol.errors import HeaderMismatch
from mpay.protocol.pki import load_der_certificate



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

    def __init__(
        self,
        *,
        books: BankBooks,
        payment_center_id: str,
        store: StateStore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.books = books
        self.payment_center_id = payment_center_id
        #: durable state (None: memory only, the bank cannot be restarted)
        self.store = store
        self.cards: dict[str, BoundCard] = {}
        #: top-up id -> amount moved to the payment center (for the reconciliation check)
        self.top_ups_fen: dict[str, int] = {}
        self.failed_pin_checks = 0

    # --- durability ----------------------------------------------------------------------

    async def restore(self) -> None:
        """Reload card bindings, processed top-ups and the replay window (after a restart)."""
        if self.store is None:
            return
        for customer_id, record in (await self.store.load("cards")).items():
            self.cards[customer_id] = BoundCard(
                customer_id=record["customer_id"],
                phone_number=record["phone_number"],
                card_number=record["card_number"],
                pin_salt=bytes.fromhex(record["pin_salt"]),
                pin_hash=bytes.fromhex(record["pin_hash"]),
            )
            for der_hex in record.get("certificates", ()):
                self.trust.add(load_der_certificate(bytes.fromhex(der_hex)))
        for top_up_id, record in (await self.store.load("top_ups")).items():
            self.top_ups_fen[top_up_id] = record["amount_fen"]
        await self.restore_receiver_state(self.store)
        await self.resend_outbox(self.store)

    async def _save(self, table: str | None = None, key: str = "", value: dict | None = None) -> None:
        """Inside ``books.atomic()``: one record (if given) and the receiver state."""
        if self.store is None:
            return
        record = [(table, key, value)] if table is not None and value is not None else None
        await self.save_receiver_state(self.store, record)

    # --- init 3 and step 5 -----------------------------------------------------------------

    async def on_card_binding(self, opened: Opened) -> None:
        """Init 3: the customer binds the phone to a bank card."""
        binding = opened.message
        if binding.phone != self.directory.get(opened.sender_id).number:
            raise HeaderMismatch(f"{opened.sender_id} binds a card to a phone that is not its own")
        salt = secrets.token_bytes(16)
        card = BoundCard(
            customer_id=opened.sender_id,
            phone_number=binding.phone,
            card_number=binding.card_number,
            pin_salt=salt,
            pin_hash=_pin_hash(binding.pin, salt),
        )
        record = asdict(card) | {
            "pin_salt": salt.hex(),
            "pin_hash": card.pin_hash.hex(),
            # the customer's certificate came in this SMS: keep it, or a restarted bank
            # would not know the customer's key
            "certificates": [
                cert.public_bytes(Encoding.DER).hex() for cert in self.trust.certs_of(opened.sender_id)
            ],
        }
        async with self.books.atomic():
            await self._save("cards", opened.sender_id, record)
        self.cards[opened.sender_id] = card
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
        notice = m.TopUpNotice(
            top_up_id=top_up_id,
            customer_phone=card.phone_number,
            amount_fen=instruction.amount_fen,
            currency=instruction.currency,
            contract_no=instruction.contract_no,
        )
        try:
            async with self.books.atomic():
                await self.books.top_up(top_up_id, opened.sender_id, instruction.amount_fen)
                await self._save("top_ups", top_up_id, {"amount_fen": instruction.amount_fen})
                self.tracer.record(
                    "ledger", actor=self.party_id, op="top_up", customer=opened.sender_id,
                    amount_fen=instruction.amount_fen, contract_no=instruction.contract_no,
                )
                # the notice and the receipt commit with the money (the outbox), so that a
                # crash before they go out cannot leave the top-up in flight for good
                sealed = [
                    self.seal_outgoing(self.payment_center_id, notice),
                    self.seal_outgoing(opened.sender_id, self._receipt_message(opened, refusal=None)),
                ]
                if self.store is not None:
                    await self.stage_outbox(self.store, sealed)
                await self._save()
        except InsufficientFunds:
            self._receipt(opened, refusal="insufficient_funds")
            return
        self.top_ups_fen[top_up_id] = instruction.amount_fen
        if self.store is not None:
            await self.flush_outbox(self.store, sealed)
        else:
            for out in sealed:
                self.transmit(out)

    def _receipt(self, opened: Opened, *, refusal: str | None) -> None:
        self.send(opened.sender_id, self._receipt_message(opened, refusal=refusal))

    @staticmethod
    def _receipt_message(opened: Opened, *, refusal: str | None) -> m.TopUpReceipt:
        instruction = opened.message
        return m.TopUpReceipt(
            top_up_id=instruction.top_up_id,
            contract_no=instruction.contract_no,
            amount_fen=instruction.amount_fen,
            currency=instruction.currency,
            status="credited" if refusal is None else "refused",
            refusal_reason=refusal,
        )
