"""The world's check that a party acts only on SMS its signer really sent to it, and on each
once (the invariant ``only_genuine_messages_acted_upon``).

It follows the trace: ``sms_sent`` records (sender, recipient, seq), ``sms_opened`` must find
its own (sender, recipient, seq) recorded and not yet acted upon. Every party numbers what it
sends with one counter from 1 (skipping a few after a restart), so one sender's record is an
array indexed by sequence number holding the recipient and an "acted upon" bit: 4 bytes per
SMS for the whole run, where a set of (sender, recipient, seq) tuples for each of the two
questions held about 150 bytes per SMS each (at 100,000 transactions, ~2.6 million SMS, the
sets alone had grown past 300 MB). Anything that does not fit the numbering (a number far
beyond the sender's last, a second recipient for one number, an SMS opened by someone it
was not sent to) is kept exactly, in small sets.
"""

from __future__ import annotations

from array import array
from typing import Any

#: bit set in a record once the recipient acted on that SMS; the bits below it are the
#: recipient's code (1 and up; 0: nothing sent with that number)
_ACTED = 1 << 31
_RECIPIENT = _ACTED - 1
_ITEM_BYTES = array("I").itemsize
assert _ITEM_BYTES >= 4, "an unsigned int of at least 32 bits holds a record"
#: numbers further than this past a sender's array go to the exact sets instead of growing it
_MAX_JUMP = 1 << 16


class GenuineCheck:
    """Trace listener (:meth:`on_event`) keeping what was sent and what was acted upon."""

    def __init__(self) -> None:
        #: what was acted upon that no party sent to that party, or acted upon twice
        self.not_genuine: list[str] = []
        self._codes: dict[str, int] = {}
        self._by_sender: dict[str, array[int]] = {}
        # the exact remainder, as (sender, recipient, seq)
        self._other_sent: set[tuple[str, str, int]] = set()
        self._other_acted: set[tuple[str, str, int]] = set()
        #: party -> the SMS whose step it is taking (None: a timer or a parcel)
        self._handling: dict[str, tuple[str, str, int] | None] = {}

    def on_event(self, event: dict[str, Any]) -> None:
        kind = event["kind"]
        if kind == "sms_sent":
            self._sent(event["actor"], event["to"], event["seq"])
        elif kind == "sms_opened":
            self._opened(event["sender"], event["actor"], event["seq"], event["type"])
        elif kind == "timer" or kind == "goods_arrived":
            self._handling[event["actor"]] = None

    def forget_uncommitted(self, party_id: str) -> None:
        """``party_id`` crashed before committing the step it was taking: the SMS that
        started it was not acted upon after all (a copy may still be, once)."""
        key = self._handling.pop(party_id, None)
        if key is None:
            return
        sender, recipient, seq = key
        records = self._by_sender.get(sender)
        if key in self._other_acted:
            self._other_acted.discard(key)
        elif records is not None and 0 < seq < len(records) and records[seq] & _RECIPIENT == self._codes.get(recipient):
            records[seq] &= _RECIPIENT

    # --- the record -------------------------------------------------------------------------

    def _code(self, party_id: str) -> int:
        code = self._codes.get(party_id)
        if code is None:
            code = self._codes[party_id] = len(self._codes) + 1
        return code

    def _slot(self, sender: str, seq: int, grow: bool) -> array[int] | None:
        """The sender's array when it covers ``seq`` (grown to cover it if ``grow`` and
        ``seq`` is near its end), else None."""
        records = self._by_sender.get(sender)
        if records is None:
            if not grow:
                return None
            records = self._by_sender[sender] = array("I", bytes(_ITEM_BYTES * 64))
        if 0 < seq < len(records):
            return records
        if not grow or seq <= 0 or seq >= len(records) + _MAX_JUMP:
            return None
        records.frombytes(bytes(_ITEM_BYTES * max(len(records), seq + 1 - len(records))))  # at least doubles
        return records

    def _sent(self, sender: str, recipient: str, seq: int) -> None:
        code = self._code(recipient)
        records = self._slot(sender, seq, grow=True)
        if records is None:
            self._other_sent.add((sender, recipient, seq))
            return
        held = records[seq] & _RECIPIENT
        if held == 0:
            records[seq] |= code
            if self._other_acted and (sender, recipient, seq) in self._other_acted:  # acted on before it was sent
                self._other_acted.discard((sender, recipient, seq))
                records[seq] |= _ACTED
        elif held != code:  # one number sent to two parties: keep the second exactly
            self._other_sent.add((sender, recipient, seq))

    def _opened(self, sender: str, recipient: str, seq: int, message_type: str) -> None:
        key = (sender, recipient, seq)
        self._handling[recipient] = key
        records = self._slot(sender, seq, grow=False)
        code = self._codes.get(recipient)
        if records is not None and code is not None and records[seq] & _RECIPIENT == code:
            if records[seq] & _ACTED:
                self.not_genuine.append(f"{recipient} acted twice on {message_type} seq {seq} of {sender}")
            records[seq] |= _ACTED
            return
        if key not in self._other_sent:
            self.not_genuine.append(f"{recipient} acted on {message_type} seq {seq} that {sender} never sent")
        elif key in self._other_acted:
            self.not_genuine.append(f"{recipient} acted twice on {message_type} seq {seq} of {sender}")
        self._other_acted.add(key)
