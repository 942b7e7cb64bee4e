"""Binary SMS: cutting an envelope into SMS and putting it back together (sans-IO).

A binary SMS carries :data:`SMS_OCTETS` (140) octets of user data. A longer message is
sent as a *concatenated* SMS: every part starts with the 6-octet user-data header of
3GPP TS 23.040 §9.2.3.24.1 (8-bit reference)::

    05 00 03 ref total seq      UDHL=5, IEI=0 (concatenation, 8-bit ref), IEDL=3

followed by up to :data:`PART_PAYLOAD_OCTETS` (134) octets of the message; at most
:data:`MAX_PARTS` (255) parts, so at most :data:`MAX_MESSAGE_OCTETS` (34,170) octets.

On a real handset the TP-UDHI bit, outside the 140 octets, says whether a header is
present. Here an SMS is only its bytes, so the rule is *in band*: an SMS whose first three
octets are ``05 00 03`` is a concatenated part; anything else is a whole message.
:func:`segment` keeps that rule unambiguous by never sending a message that itself starts
with ``05 00 03`` without a header (it uses the one-or-more-part form instead).

:class:`Reassembler` is the handset's side: it is tolerant of duplicated and reordered
parts, bounded in memory, discards partial messages after a timeout, and counts every
discard. Partial messages are keyed by ``(sender, ref, total)``: the reference is only 8
bits and wraps after 256 concatenated messages from the same sender.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from typing import NoReturn

from mpay.protocol.errors import MalformedMessage, MessageTooLarge

#: octets of user data in one binary SMS
SMS_OCTETS = 140
#: octets of the concatenation user-data header (05 00 03 ref total seq)
UDH_OCTETS = 6
#: octets of message payload in one concatenated part
PART_PAYLOAD_OCTETS = SMS_OCTETS - UDH_OCTETS
#: most parts in one concatenated message (the 8-bit ``total`` field)
MAX_PARTS = 255
#: largest message that can be sent: 255 parts of 134 octets
MAX_MESSAGE_OCTETS = PART_PAYLOAD_OCTETS * MAX_PARTS
#: the first three octets of every concatenated part: UDHL, IEI, IEDL
UDH_PREFIX = b"\x05\x00\x03"

#: each octet value as a one-octet bytes object (headers are assembled from them)
_OCTET = [bytes((value,)) for value in range(256)]

#: default bound on partial messages kept for one sender
DEFAULT_MAX_PENDING_PER_SENDER = 64
#: default bound on partial messages kept in total
DEFAULT_MAX_PENDING_TOTAL = 512


def parts_needed(length: int) -> int:
    """How many SMS :func:`segment` sends for a message of ``length`` octets (ignoring the
    ``05 00 03`` special case, which only matters for messages of 134 octets or fewer)."""
    if length <= SMS_OCTETS:
        return 1
    return -(-length // PART_PAYLOAD_OCTETS)


def segment(data: bytes, ref: int) -> list[bytes]:
    """Cut ``data`` into binary SMS.

    One SMS without header when it fits in 140 octets (and does not itself start with
    ``05 00 03``); otherwise concatenated parts with reference ``ref`` (0..255), each part
    but the last carrying exactly 134 octets. Raises :class:`MessageTooLarge` above
    :data:`MAX_MESSAGE_OCTETS`.
    """
    if not 0 <= ref <= 0xFF:
        raise ValueError(f"concatenation reference {ref} is not an octet (0..255)")
    data = bytes(data)
    length = len(data)
    if length <= SMS_OCTETS and not data.startswith(UDH_PREFIX):
        return [data]
    if length > MAX_MESSAGE_OCTETS:
        raise MessageTooLarge(
            f"message of {length} octets needs more than {MAX_PARTS} SMS parts"
            f" (limit {MAX_MESSAGE_OCTETS} octets)"
        )
    total = max(1, -(-length // PART_PAYLOAD_OCTETS))
    header = UDH_PREFIX + _OCTET[ref] + _OCTET[total]  # all but the part's number
    return [
        header + _OCTET[seq + 1] + data[seq * PART_PAYLOAD_OCTETS : (seq + 1) * PART_PAYLOAD_OCTETS]
        for seq in range(total)
    ]


@dataclass(frozen=True, slots=True)
class Part:
    """One parsed concatenated part."""

    ref: int
    total: int
    seq: int
    payload: bytes


def parse_part(sms: bytes) -> Part | None:
    """Parse ``sms``: a :class:`Part` if it carries the concatenation header, ``None`` if it
    is a whole message. Raises :class:`MalformedMessage` for a bad header or length."""
    if len(sms) > SMS_OCTETS:
        raise MessageTooLarge(f"SMS of {len(sms)} octets exceeds {SMS_OCTETS}")
    if not sms.startswith(UDH_PREFIX):
        return None
    if len(sms) <= UDH_OCTETS:
        raise MalformedMessage(f"concatenated part of {len(sms)} octets carries no payload")
    ref, total, seq = sms[3], sms[4], sms[5]
    if total == 0:
        raise MalformedMessage("concatenation header with total = 0")
    if not 1 <= seq <= total:
        raise MalformedMessage(f"concatenation header with part {seq} of {total}")
    return Part(ref=ref, total=total, seq=seq, payload=sms[UDH_OCTETS:])


@dataclass(slots=True)
class ReassemblyCounters:
    """What a :class:`Reassembler` saw and threw away; every discard has a counter."""

    #: SMS given to :meth:`Reassembler.add`
    sms: int = 0
    #: whole messages returned (single SMS or completed concatenations)
    completed: int = 0
    #: concatenated messages completed from parts
    concatenated: int = 0
    #: parts already held (or of a message just completed), dropped
    duplicates: int = 0
    #: parts whose slot was already held with *different* bytes (the first is kept)
    conflicts: int = 0
    #: partial messages discarded because their timeout passed
    expired: int = 0
    #: partial messages discarded to respect the per-sender or total bound
    evicted: int = 0
    #: SMS refused with MalformedMessage
    malformed: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class _Partial:
    sender: str
    total: int
    deadline_s: float
    #: a completed message of the same key was remembered when this one began (the 8-bit
    #: reference wrapped): only then can a part be a duplicate of that message's
    shadowed: bool = False
    parts: dict[int, bytes] = field(default_factory=dict)


_Key = tuple[str, int, int]
_NEVER_S = float("inf")


class Reassembler:
    """Puts concatenated SMS back together, one instance per receiving handset.

    ``add(sender, sms, now_s)`` returns the whole message when ``sms`` completes one (a
    single SMS completes itself), else ``None``. A partial message is discarded
    ``timeout_s`` after its first part arrived. At most ``max_pending_per_sender`` partial
    messages per sender and ``max_pending_total`` in all are kept; beyond, the oldest is
    evicted. A part identical to one of a message completed less than ``timeout_s`` ago
    is a duplicate and ignored (so a duplicated part does not start a ghost message).
    ``now_s`` must not go backwards.
    """

    def __init__(
        self,
        timeout_s: float,
        *,
        max_pending_per_sender: int = DEFAULT_MAX_PENDING_PER_SENDER,
        max_pending_total: int = DEFAULT_MAX_PENDING_TOTAL,
    ) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if max_pending_per_sender < 1 or max_pending_total < 1:
            raise ValueError("the pending bounds must be at least 1")
        self.timeout_s = float(timeout_s)
        self.max_pending_per_sender = max_pending_per_sender
        self.max_pending_total = max_pending_total
        self.counters = ReassemblyCounters()
        # insertion order == arrival order of first parts (now_s is monotone)
        self._pending: OrderedDict[_Key, _Partial] = OrderedDict()
        self._per_sender: dict[str, OrderedDict[_Key, None]] = {}
        # recently completed messages: key -> (forget_at_s, their parts' payloads by
        # number), so a late duplicate part is recognised
        self._done: OrderedDict[_Key, tuple[float, dict[int, bytes]]] = OrderedDict()
        #: no partial message times out and no completed one is forgotten before this
        self._next_expiry_s = _NEVER_S

    @property
    def pending(self) -> int:
        """Partial messages currently held."""
        return len(self._pending)

    def add(self, sender: str, sms: bytes, now_s: float) -> bytes | None:
        """Take one SMS from ``sender``; return a whole message or ``None``.

        Raises :class:`MalformedMessage` (counted) for an SMS over 140 octets or a bad
        concatenation header.
        """
        counters = self.counters
        counters.sms += 1
        if now_s >= self._next_expiry_s:
            self.expire(now_s)
        if type(sms) is not bytes:
            sms = bytes(sms)
        length = len(sms)
        if sms[:3] != UDH_PREFIX and length <= SMS_OCTETS:
            counters.completed += 1
            return sms
        # parse_part's checks, inlined for the common case: this runs for every part a
        # handset receives; anything unusual goes through parse_part for its error
        if length > SMS_OCTETS or length <= UDH_OCTETS:
            self._refuse(sms)
        ref, total, seq = sms[3], sms[4], sms[5]
        if not 1 <= seq <= total:
            self._refuse(sms)
        payload = sms[UDH_OCTETS:]
        key = (sender, ref, total)
        partial = self._pending.get(key)
        # a completed message's key enters _done only as its partial closes, so the
        # look-up for a late duplicate is needed only when the partial began shadowed
        if partial is None or partial.shadowed:
            done = self._done.get(key)
            if done is not None and done[1].get(seq) == payload:
                counters.duplicates += 1
                return None
            if partial is None:
                partial = self._open(key, sender, total, now_s, shadowed=done is not None)
        parts = partial.parts
        held = parts.get(seq)
        if held is not None:
            if held == payload:
                counters.duplicates += 1
            else:
                counters.conflicts += 1
            return None
        parts[seq] = payload
        if len(parts) < total:
            return None
        self._close(key)
        message = b"".join([parts[i] for i in range(1, total + 1)])
        forget_at_s = now_s + self.timeout_s
        self._done[key] = (forget_at_s, parts)
        self._done.move_to_end(key)
        if forget_at_s < self._next_expiry_s:
            self._next_expiry_s = forget_at_s
        while len(self._done) > self.max_pending_total:
            self._done.popitem(last=False)
        counters.completed += 1
        counters.concatenated += 1
        return message

    def _refuse(self, sms: bytes) -> NoReturn:
        """Count ``sms`` as malformed and raise :func:`parse_part`'s error for it."""
        self.counters.malformed += 1
        parse_part(sms)
        raise AssertionError(f"parse_part accepted an SMS that add refused: {sms.hex()}")

    def expire(self, now_s: float) -> int:
        """Discard partial messages whose timeout has passed; return how many."""
        expired = 0
        pending = self._pending
        while pending:
            key, partial = next(iter(pending.items()))
            if partial.deadline_s > now_s:
                break
            self._close(key)
            expired += 1
        self.counters.expired += expired
        done = self._done
        while done:
            key, (forget_at_s, _) = next(iter(done.items()))
            if forget_at_s > now_s:
                break
            del done[key]
        # both orders are by time (now_s never goes backwards): the next work is at the
        # earlier of their heads
        next_s = _NEVER_S
        if pending:
            next_s = next(iter(pending.values())).deadline_s
        if done:
            next_s = min(next_s, next(iter(done.values()))[0])
        self._next_expiry_s = next_s
        return expired

    def _open(self, key: _Key, sender: str, total: int, now_s: float, *, shadowed: bool) -> _Partial:
        mine = self._per_sender.get(sender)
        if mine is None:
            mine = self._per_sender[sender] = OrderedDict()
        if len(mine) >= self.max_pending_per_sender:
            self._close(next(iter(mine)))
            self.counters.evicted += 1
        if len(self._pending) >= self.max_pending_total:
            self._close(next(iter(self._pending)))
            self.counters.evicted += 1
        partial = _Partial(
            sender=sender, total=total, deadline_s=now_s + self.timeout_s, shadowed=shadowed
        )
        self._pending[key] = partial
        if partial.deadline_s < self._next_expiry_s:
            self._next_expiry_s = partial.deadline_s
        mine[key] = None
        return partial

    def _close(self, key: _Key) -> None:
        partial = self._pending.pop(key)
        mine = self._per_sender[partial.sender]
        del mine[key]
        if not mine:
            del self._per_sender[partial.sender]


__all__ = [
    "DEFAULT_MAX_PENDING_PER_SENDER",
    "DEFAULT_MAX_PENDING_TOTAL",
    "MAX_MESSAGE_OCTETS",
    "MAX_PARTS",
    "PART_PAYLOAD_OCTETS",
    "SMS_OCTETS",
    "UDH_OCTETS",
    "UDH_PREFIX",
    "Part",
    "ReassemblyCounters",
    "Reassembler",
    "parse_part",
    "parts_needed",
    "segment",
]
