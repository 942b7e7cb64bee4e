"""What every party does with an SMS: reassemble, open, check for replay, dispatch, count.

A subclass implements one handler per message type it accepts, named ``on_<type>`` after
the seed's step (``on_payment_request``, ``on_confirmation`` …), and one per timer kind,
``on_timer_<kind>``. Anything refused on the way is counted by its ``ProtocolError.reason``
and traced; nothing refused is ever acted upon.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mpay.actors.ports import (
    Clock,
    Courier,
    GoodsArrived,
    SendMeta,
    SmsArrival,
    StateStore,
    TimerFired,
    Tracer,
    Transport,
)
from mpay.protocol.envelope import Opened, open_envelope, seal
from mpay.protocol.errors import ProtocolError, Unauthenticated, UnknownParty
from mpay.protocol.messages import Message, MessageType, Rating, contract_no_of
from mpay.protocol.pki import Identity, TrustStore
from mpay.protocol.replay import ReplayGuard
from mpay.protocol.sms import Reassembler

#: how far a send time may be from the receiver's clock (replay window and clock skew)
DEFAULT_REPLAY_WINDOW_S = 600.0
#: sequence numbers a restarted party skips: it may have sent (from its outbox, or just before
#: it died) numbers it had not yet stored, and a receiver would refuse a reused one as a replay
RESTART_SEQ_SKIP = 64
#: how long a partly received concatenated SMS is kept
DEFAULT_REASSEMBLY_TIMEOUT_S = 600.0
#: the first two octets of every protocol envelope: CBOR tag 96 (a tagged COSE_Encrypt)
ENVELOPE_PREFIX = b"\xd8\x60"
#: characters of an untrusted SMS kept in the trace (the whole text stays on the handset)
UNTRUSTED_PREVIEW_CHARS = 70


def plain_text_of(data: bytes) -> str | None:
    """The text of a plain (unauthenticated) SMS, or ``None`` when ``data`` may be an envelope.

    Every protocol envelope starts with the CBOR tag 96 octets ``d8 60``; no printable
    UTF-8 text does (``d8`` is a lead byte that ``60`` cannot follow). So bytes that do not
    start with the prefix and decode as printable UTF-8 text are an ordinary text SMS
    (phishing, a cloned SIM's "please pay" note): *unauthenticated*. Anything else goes on
    to :func:`protocol.envelope.open_envelope` and is refused there as malformed, tampered...
    """
    if not data or data.startswith(ENVELOPE_PREFIX):
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if all(ch.isprintable() or ch in "\n\r\t" for ch in text):
        return text
    return None


@dataclass(frozen=True)
class Outgoing:
    """A sealed SMS on its way out: the envelope, for whom, and its sequence number."""

    recipient_id: str
    envelope: bytes
    meta: SendMeta
    seq: int


@dataclass
class Contact:
    """What a party knows about another: its id, role and phone number.

    Certificates live in the party's ``TrustStore``: the institutions' are known from the
    start, a customer's or merchant's is learned from its first (x5chain-carrying) SMS."""

    party_id: str
    role: str
    number: str


@dataclass
class Directory:
    """Numbers and certificates a party knows, by party id and by phone number."""

    by_id: dict[str, Contact] = field(default_factory=dict)
    by_number: dict[str, Contact] = field(default_factory=dict)

    def add(self, contact: Contact) -> None:
        self.by_id[contact.party_id] = contact
        self.by_number[contact.number] = contact

    def get(self, party_id: str) -> Contact:
        try:
            return self.by_id[party_id]
        except KeyError:
            raise UnknownParty(f"no contact {party_id!r}") from None


class Actor:
    """Base of every party: the receive path and the send path of the protocol."""

    role: ClassVar[str] = ""

    def __init__(
        self,
        *,
        party_id: str,
        number: str,
        identity: Identity,
        trust: TrustStore,
        directory: Directory,
        transport: Transport,
        clock: Clock,
        tracer: Tracer,
        courier: Courier,
        rng: random.Random,
        replay_window_s: float = DEFAULT_REPLAY_WINDOW_S,
    ) -> None:
        self.party_id = party_id
        self.number = number
        self.identity = identity
        self.trust = trust
        self.directory = directory
        self.transport = transport
        self.clock = clock
        self.tracer = tracer
        self.courier = courier
        self.rng = rng
        self.replay = ReplayGuard(window_s=replay_window_s)
        self.reassembler = Reassembler(timeout_s=DEFAULT_REASSEMBLY_TIMEOUT_S)
        self.next_seq = 1
        self.rejections: Counter[str] = Counter()
        #: senders whose replay window changed since it was last saved
        self.replay_dirty: set[str] = set()
        #: plain text SMS received (never acted upon; see :meth:`on_untrusted_sms`)
        self.untrusted_sms = 0
        #: every plaintext message this party opened (for the data-placement test and demo)
        self.opened_log: list[Opened] | None = None

    # --- receive path -------------------------------------------------------------------

    def handle(self, item: object) -> Coroutine[Any, Any, None] | None:
        """The kernel's entry point, one mailbox item at a time: the coroutine that handles
        ``item``, or ``None`` when the call did all there was to do (an SMS part that only
        went into the reassembler: most items, so they cost no coroutine)."""
        if not isinstance(item, SmsArrival):
            return self._on_item(item)
        # by far the most frequent item: every SMS part
        try:
            envelope = self.reassembler.add(item.sender_number, item.data, self.clock.now_s())
        except ProtocolError as exc:
            self.reject(exc, sender_number=item.sender_number)
            return None
        if envelope is None:
            return None
        return self._on_message(envelope, item.sender_number)

    async def _on_item(self, item: object) -> None:
        """A mailbox item other than an SMS: a timer, a parcel."""
        if isinstance(item, TimerFired):
            kind, _, key = item.name.partition(":")
            handler = getattr(self, f"on_timer_{kind}")
            self.tracer.record("timer", actor=self.party_id, timer=kind, contract_no=key or None)
            await handler(key)
            return
        if isinstance(item, GoodsArrived):
            self.tracer.record(
                "goods_arrived", actor=self.party_id, sender=item.sender_id, contract_no=item.contract_no
            )
            await self.on_goods_arrived(item)
            return
        raise TypeError(f"{self.party_id}: unexpected mailbox item {item!r}")

    async def _on_message(self, envelope: bytes, sender_number: str) -> None:
        """A whole message from ``sender_number``: open, check, trace, dispatch."""
        text = plain_text_of(envelope)
        if text is not None:
            self.untrusted_sms += 1
            self.on_untrusted_sms(sender_number, text)
            self.reject(
                Unauthenticated(f"plain text SMS from {sender_number}: shown as untrusted"),
                sender_number=sender_number,
            )
            return
        try:
            opened = self.open(envelope)
            self.check_sender_number(opened, sender_number)
            self.check_replay(opened)
        except ProtocolError as exc:
            self.reject(exc, sender_number=sender_number)
            return
        if self.opened_log is not None:
            self.opened_log.append(opened)
        self.tracer.record(
            "sms_opened",
            actor=self.party_id,
            type=str(opened.message_type),
            sender=opened.sender_id,
            contract_no=opened.contract_no,
            seq=opened.seq,
            bytes=len(envelope),
            checks=self._passed_checks(opened, sender_number),
        )
        handler = getattr(self, f"on_{opened.message_type}", None)
        if handler is None:
            self.reject(
                UnknownParty(f"{self.role} does not accept {opened.message_type}"),
                sender_number=sender_number,
            )
            return
        try:
            await handler(opened)
        except ProtocolError as exc:
            self.reject(exc, sender_number=sender_number, message_type=str(opened.message_type))

    def on_untrusted_sms(self, sender_number: str, text: str) -> None:
        """A plain text SMS: traced as untrusted and never acted upon. A handset also shows
        it to its user with a warning (:class:`actors.customer.CustomerHandset`)."""
        self.tracer.record(
            "untrusted_sms",
            actor=self.party_id,
            sender_number=sender_number,
            chars=len(text),
            preview=text[:UNTRUSTED_PREVIEW_CHARS],
        )

    def open(self, envelope: bytes) -> Opened:
        return open_envelope(
            envelope, recipient=self.identity, trust=self.trust, now_unix_s=self.clock.now_unix_s()
        )

    def check_sender_number(self, opened: Opened, sender_number: str) -> None:
        """A contact's SMS must come from its known number (the SIM), as well as its key."""
        contact = self.directory.by_id.get(opened.sender_id)
        if contact is not None and contact.number != sender_number:
            raise UnknownParty(
                f"{opened.sender_id} signed it but it came from {sender_number}, not {contact.number}"
            )

    def check_replay(self, opened: Opened) -> None:
        self.replay.check_and_record(
            opened.sender_id, opened.seq, opened.sent_unix_s, self.clock.now_unix_s()
        )
        self.replay_dirty.add(opened.sender_id)

    async def save_receiver_state(
        self, store: StateStore, records: list[tuple[str, str, dict]] | None = None
    ) -> None:
        """Persist (inside the step's SQL transaction) the replay windows of the senders heard
        since the last save and the next sequence number: constant work per message, however
        many parties there are. ``records`` (table, key, document), the step's own state, go
        in the same statement: one statement for all of it."""
        items: list[tuple[str, str, dict]] = list(records) if records else []
        for sender_id in sorted(self.replay_dirty):
            window = self.replay.export_sender(sender_id)
            if window is not None:
                items.append(("replay", sender_id, {"window": window}))
        meta = {"window_s": self.replay.window_s, "seq_window": self.replay.seq_window, "next_seq": self.next_seq}
        items.append(("meta", "receiver", meta))
        await store.put_many(items)
        self.replay_dirty.clear()

    async def restore_receiver_state(self, store: StateStore) -> None:
        """After a restart: the replay windows as stored, and a sequence number past any this
        party may have used before it died."""
        meta = (await store.load("meta")).get("receiver")
        if meta is None:
            return
        self.replay = ReplayGuard(window_s=meta["window_s"], seq_window=meta["seq_window"])
        for sender_id, record in (await store.load("replay")).items():
            self.replay.import_sender(sender_id, record["window"])
        self.next_seq = meta["next_seq"] + RESTART_SEQ_SKIP

    def _passed_checks(self, opened: Opened, sender_number: str) -> list[dict[str, object]]:
        """Every check an opened SMS passed, with its detail (traces, the teaching demo):
        the envelope's own, then the sender-number and replay checks made here."""
        contact = self.directory.by_id.get(opened.sender_id)
        number = (
            f"sent from {sender_number}, {opened.sender_id}'s known number"
            if contact is not None
            else f"sent from {sender_number} (no number on file for {opened.sender_id})"
        )
        age_s = self.clock.now_unix_s() - opened.sent_unix_s
        replay = (
            f"seq {opened.seq} of {opened.sender_id} not seen before; sent {age_s:.0f} s ago,"
            f" window ±{self.replay.window_s:.0f} s"
        )
        checks = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in opened.checks]
        checks.append({"name": "sender_number", "ok": True, "detail": number})
        checks.append({"name": "replay", "ok": True, "detail": replay})
        return checks

    def reject(self, exc: ProtocolError, **fields: object) -> None:
        self.rejections[exc.reason] += 1
        checks = getattr(exc, "checks", None)
        if checks:
            fields["checks"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        self.tracer.record(
            "rejected", actor=self.party_id, reason=exc.reason, detail=exc.detail, **fields
        )

    async def on_goods_arrived(self, parcel: GoodsArrived) -> None:
        raise TypeError(f"{self.role} {self.party_id} receives no goods ({parcel.contract_no})")

    # --- send path ----------------------------------------------------------------------

    def send(
        self,
        recipient_id: str,
        message: Message,
        *,
        include_certificate: bool = False,
        txn_key: str | None = None,
    ) -> None:
        """Sign, encrypt for the recipient and hand to the SMS network.

        ``txn_key`` names the transaction the SMS is counted under when the message has no
        contract number yet (the purchase request counts under its order reference)."""
        self.transmit(
            self.seal_outgoing(
                recipient_id, message, include_certificate=include_certificate, txn_key=txn_key
            )
        )

    def transmit(self, out: Outgoing) -> None:
        """Hand a sealed envelope to the SMS network."""
        self.transport.send(self.party_id, out.recipient_id, out.envelope, out.meta)

    def seal_outgoing(
        self,
        recipient_id: str,
        message: Message,
        *,
        include_certificate: bool = False,
        txn_key: str | None = None,
    ) -> Outgoing:
        """Sign and encrypt ``message`` for ``recipient_id`` (uses up a sequence number and
        traces ``sms_sent``); :meth:`transmit` sends it."""
        recipient_cert = self.trust.encryption_cert(recipient_id)
        seq = self.next_seq
        self.next_seq += 1
        envelope = seal(
            message,
            sender=self.identity,
            recipient_cert=recipient_cert,
            seq=seq,
            sent_unix_s=int(self.clock.now_unix_s()),
            include_sender_cert=include_certificate,
        )
        contract_no = contract_no_of(message) or txn_key
        message_type = str(message.TYPE)
        self.tracer.record(
            "sms_sent",
            actor=self.party_id,
            to=recipient_id,
            type=message_type,
            contract_no=contract_no,
            seq=seq,
            bytes=len(envelope),
        )
        meta = SendMeta(message_type=message_type, contract_no=contract_no)
        return Outgoing(recipient_id, envelope, meta, seq)

    # --- the outbox: SMS of a step that survive a crash ------------------------------------

    async def stage_outbox(self, store: StateStore, outgoing: list[Outgoing]) -> None:
        """Inside the step's SQL transaction: keep its sealed SMS in the store's outbox (one
        statement), so that they commit with the step and a crash before they are sent does
        not lose them."""
        if outgoing:
            await store.outbox_add(
                [(out.seq, out.recipient_id, out.meta.message_type, out.meta.contract_no, out.envelope)
                 for out in outgoing]
            )

    async def flush_outbox(self, store: StateStore, outgoing: list[Outgoing]) -> None:
        """After the commit: send the staged SMS, then forget them (one statement: all or
        none, and no transaction block of its own)."""
        for out in outgoing:
            self.transmit(out)
        if outgoing:
            await store.outbox_remove([out.seq for out in outgoing])

    async def resend_outbox(self, store: StateStore) -> int:
        """After a restart: send what a crash kept in the outbox, byte for byte (same
        sequence numbers: a receiver that got one already refuses the copy as a replay)."""
        outgoing = [
            Outgoing(recipient_id, envelope, SendMeta(message_type=message_type, contract_no=contract_no), seq)
            for seq, recipient_id, message_type, contract_no, envelope in await store.outbox_load()
        ]
        for out in outgoing:
            self.tracer.record(
                "sms_sent", actor=self.party_id, to=out.recipient_id, type=out.meta.message_type,
                contract_no=out.meta.contract_no, seq=out.seq, bytes=len(out.envelope),
            )
        await self.flush_outbox(store, outgoing)
        return len(outgoing)

    # --- steps 9-11 for customers and merchants ----------------------------------------

    def finish_and_rate(
        self,
        record: Any,
        opened: Opened,
        outcome: str,
        ratee_id: str,
        behaviour: Any,
        *,
        rate_at: str,
    ) -> None:
        """Note a transaction's outcome on ``record`` (a purchase or a sale), then, step 11,
        rate the other side once on the payment center's site (not after a decline)."""
        record.outcome = outcome
        record.steps.append(str(opened.message_type))
        if not behaviour.rate or record.rated or outcome == "declined":
            return
        record.rated = True
        stars = behaviour.stars_when_settled if outcome == "settled" else behaviour.stars_when_refunded
        self.send(
            rate_at,
            Rating(contract_no=opened.contract_no, ratee_id=ratee_id, stars=stars, comment=""),
        )

    # --- timers -------------------------------------------------------------------------

    def start_timer(self, kind: str, key: str, at_s: float) -> None:
        self.clock.call_at(at_s, self.party_id, f"{kind}:{key}")

    def cancel_timer(self, kind: str, key: str) -> None:
        self.clock.cancel(self.party_id, f"{kind}:{key}")


__all__ = ["Actor", "Contact", "Directory", "MessageType", "OutcomeNotices", "Outgoing", "plain_text_of"]


class OutcomeNotices:
    """Steps 4-10 end for a customer or a merchant: the payment center's notice of how a
    transaction ended, each handled by the party's ``_finish(opened, outcome)``."""

    async def on_settlement_notice(self, opened: Opened) -> None:
        self._finish(opened, "settled")  # type: ignore[attr-defined]

    async def on_refund_notice(self, opened: Opened) -> None:
        self._finish(opened, "refunded")  # type: ignore[attr-defined]

    async def on_payment_refused(self, opened: Opened) -> None:
        self._finish(opened, "declined")  # type: ignore[attr-defined]

    async def on_dispute_decision(self, opened: Opened) -> None:
        self._finish(opened, "disputed")  # type: ignore[attr-defined]
