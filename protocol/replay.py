"""Replay protection: per-sender sequence numbers and a send-time window.

Every envelope carries, under the sender's signature, a per-sender sequence number and
the send time. A receiver keeps a :class:`ReplayGuard`:

* the send time must be within ``window_s`` of the receiver's clock (either direction, so
  moderate clock skew and SMS delay are tolerated; anything older is refused outright,
  which also bounds how long a captured SMS stays useful);
* per sender, a sliding window of the last ``seq_window`` sequence numbers, kept as a
  bitmap like the IPsec/DTLS anti-replay window (RFC 4303 §3.4.3, RFC 9147 §4.5.1):
  numbers above the highest seen slide the window forward; numbers inside it are accepted
  once (SMS reordering is fine); numbers below it are refused.

A sender keeps one :class:`SequenceCounter` for all its recipients, so a receiver sees
gaps -- which the window accepts. Both persist through ``to_dict``/``from_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mpay.protocol.errors import Replay

#: largest sequence number (fits a signed 64-bit integer in any database)
MAX_SEQ = 2**63 - 1
#: widest sequence window a guard may keep per sender (bits)
MAX_SEQ_WINDOW = 65_536
#: most senders a guard tracks (a world of a million parties fits)
MAX_SENDERS = 1_000_000


@dataclass
class _Window:
    highest: int
    #: bit i set <=> sequence number ``highest - i`` was seen
    bitmap: int


class ReplayGuard:
    """Refuses repeated sequence numbers and stale or future send times."""

    def __init__(self, window_s: float, seq_window: int = 1024):
        if not window_s > 0:
            raise ValueError("window_s must be positive")
        if not isinstance(seq_window, int) or not 1 <= seq_window <= MAX_SEQ_WINDOW:
            raise ValueError(f"seq_window must be an int in 1..{MAX_SEQ_WINDOW}")
        self.window_s = float(window_s)
        self.seq_window = seq_window
        self._mask = (1 << seq_window) - 1
        self._senders: dict[str, _Window] = {}

    def __len__(self) -> int:
        """Number of senders tracked."""
        return len(self._senders)

    def check(self, sender_id: str, seq: int, sent_unix_s: float, now_unix_s: float) -> None:
        """Raise :class:`Replay` if the message would be refused; records nothing."""
        if not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
            raise Replay(f"sequence number {seq!r} out of range 0..{MAX_SEQ}")
        skew = sent_unix_s - now_unix_s
        if abs(skew) > self.window_s:
            direction = "old" if skew < 0 else "in the future"
            raise Replay(
                f"send time {sent_unix_s} is {abs(skew):.0f} s {direction}; window is ±{self.window_s:.0f} s"
            )
        window = self._senders.get(sender_id)
        if window is None:
            if len(self._senders) >= MAX_SENDERS:
                raise Replay(f"replay guard full ({MAX_SENDERS} senders)")
            return
        if seq > window.highest:
            return
        age = window.highest - seq
        if age >= self.seq_window:
            raise Replay(
                f"sequence number {seq} of {sender_id} is below the window "
                f"({window.highest - self.seq_window + 1}..{window.highest})"
            )
        if window.bitmap >> age & 1:
            raise Replay(f"sequence number {seq} of {sender_id} already seen")

    def check_and_record(self, sender_id: str, seq: int, sent_unix_s: float, now_unix_s: float) -> None:
        """:meth:`check`, then remember ``seq`` as seen."""
        self.check(sender_id, seq, sent_unix_s, now_unix_s)
        window = self._senders.get(sender_id)
        if window is None:
            self._senders[sender_id] = _Window(highest=seq, bitmap=1)
        elif seq > window.highest:
            shift = seq - window.highest
            window.bitmap = ((window.bitmap << shift) | 1) & self._mask if shift < self.seq_window else 1
            window.highest = seq
        else:
            window.bitmap |= 1 << (window.highest - seq)

    def highest_seq(self, sender_id: str) -> int | None:
        """Highest sequence number recorded for ``sender_id``, or None."""
        window = self._senders.get(sender_id)
        return None if window is None else window.highest

    def export_sender(self, sender_id: str) -> list[Any] | None:
        """One sender's window, JSON-ready (``[highest, bitmap hex]``), or None if unknown:
        lets a receiver persist only what a message changed."""
        window = self._senders.get(sender_id)
        return None if window is None else [window.highest, format(window.bitmap, "x")]

    def import_sender(self, sender_id: str, state: list[Any]) -> None:
        """Inverse of :meth:`export_sender`; ``ValueError`` on a malformed state."""
        try:
            highest, bitmap = int(state[0]), int(state[1], 16)
        except (TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"not a replay window for {sender_id!r}: {state!r}") from exc
        if not 0 <= highest <= MAX_SEQ or bitmap >> self.seq_window or bitmap < 0:
            raise ValueError(f"bad window for {sender_id!r}")
        self._senders[str(sender_id)] = _Window(highest=highest, bitmap=bitmap)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready state (bitmaps as hex strings)."""
        return {
            "window_s": self.window_s,
            "seq_window": self.seq_window,
            "senders": {s: [w.highest, format(w.bitmap, "x")] for s, w in sorted(self._senders.items())},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplayGuard:
        """Inverse of :meth:`to_dict`; ``ValueError`` on a malformed dict."""
        try:
            guard = cls(window_s=data["window_s"], seq_window=data["seq_window"])
            for sender, (highest, bitmap_hex) in data["senders"].items():
                highest = int(highest)
                bitmap = int(bitmap_hex, 16)
                if not 0 <= highest <= MAX_SEQ or bitmap >> guard.seq_window:
                    raise ValueError(f"bad window for {sender!r}")
                guard._senders[str(sender)] = _Window(highest=highest, bitmap=bitmap)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not a ReplayGuard state: {exc}") from exc
        return guard


class SequenceCounter:
    """A sender's sequence numbers: 1, 2, 3, ... (one counter for all recipients)."""

    def __init__(self, last: int = 0):
        if not isinstance(last, int) or not 0 <= last <= MAX_SEQ:
            raise ValueError(f"last must be an int in 0..{MAX_SEQ}")
        self._last = last

    @property
    def last(self) -> int:
        """The last number handed out (0 before the first)."""
        return self._last

    def next(self) -> int:
        """The next sequence number."""
        if self._last >= MAX_SEQ:
            raise OverflowError("sequence numbers exhausted; the sender needs a new certificate")
        self._last += 1
        return self._last

    def to_dict(self) -> dict[str, int]:
        return {"last": self._last}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> SequenceCounter:
        try:
            return cls(last=data["last"])
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a SequenceCounter state: {exc}") from exc


__all__ = ["MAX_SEQ", "MAX_SEQ_WINDOW", "ReplayGuard", "SequenceCounter"]
