"""The simulated SMS network: segmentation, latency, loss, duplication, reordering, taps.

An actor hands an envelope to :meth:`SmsNetwork.send` (the ``actors.ports.Transport``
port). The network cuts it into binary SMS (:func:`protocol.sms.segment`, with an 8-bit
reference counted per sender -> recipient pair), and for every SMS "on the air":

1. every tap sees an :class:`AirSms` (time, numbers, the octets; never the meta data);
2. the adversary, if any, returns what goes on instead: ``[]`` drops it, a modified copy
   tampers or redirects, several duplicate, a positive delay holds it back;
3. the link of (sender party, recipient party) applies loss, duplication and latency,
   each part independently (so parts, and messages, can arrive out of order);
4. at the arrival time the kernel puts an ``SmsArrival`` in the recipient's mailbox.

All randomness comes from the ``random.Random`` passed in; the same seed gives the same
drops and the same arrival times. Counters (global, per message type, per transaction)
count *octets on the air*: the actual length of every SMS sent, header included.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Literal, Protocol

from mpay.actors.ports import SendMeta, SmsArrival
from mpay.sim.kernel import Kernel
from mpay.protocol.sms import SMS_OCTETS, UDH_PREFIX, segment

__all__ = [
    "ANY",
    "MAX_SMS_RETRIES",
    "Adversary",
    "AirSms",
    "LinkConfig",
    "NetworkCounters",
    "NetworkError",
    "NotAnSms",
    "NumberInUse",
    "SmsArrival",
    "SmsNetwork",
    "TrafficCounters",
    "UnknownNumber",
    "replace_data",
]

#: most store-and-forward retries of one SMS by the SMS centre (a named limit)
MAX_SMS_RETRIES = 16

#: wildcard party id in the ``links`` mapping: ``(ANY, "mpc")`` is every link to mpc
ANY = "*"


class NetworkError(Exception):
    """Base of the network's errors (wiring mistakes: they are bugs, not network events)."""


class UnknownNumber(NetworkError, KeyError):
    """``send`` for a party that was never attached (an adversary's SMS to a number nobody
    has is not an error: it is counted as ``undeliverable``)."""


class NotAnSms(NetworkError, ValueError):
    """An adversary tried to put more than 140 octets on the air as one SMS."""


class NumberInUse(NetworkError):
    """``attach`` of a number that belongs to another party, or a party attached twice."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Conditions on one link; the defaults are a lossless link of plausible SMS latency.

    Each SMS takes ``latency_s`` plus a jitter drawn independently per SMS:
    ``"exponential"`` with mean ``jitter_mean_s`` (default: 2 s + Exp(mean 0.5 s), a few
    seconds as SMS centres deliver), ``"lognormal"`` with mean ``jitter_mean_s`` and shape
    ``jitter_sigma`` (heavier tail: the occasional SMS minutes late), or ``"none"``. An
    SMS is lost with probability ``loss``; one that is not lost is delivered twice with
    probability ``duplicate`` (the copy with its own latency). ``in_order`` keeps the
    arrivals of one link in sending order (no reordering).

    Store and forward: with ``max_retries`` > 0 the SMS centre keeps a lost SMS and tries
    again ``retry_interval_s`` later, each attempt lost with probability ``loss`` again, at
    most ``max_retries`` times (at most :data:`MAX_SMS_RETRIES`); only then is it dropped.
    The field names match the scenario's ``[network]`` section.
    """

    latency_s: float = 2.0
    jitter: Literal["none", "exponential", "lognormal"] = "exponential"
    jitter_mean_s: float = 0.5
    jitter_sigma: float = 1.0
    loss: float = 0.0
    duplicate: float = 0.0
    in_order: bool = False
    retry_interval_s: float = 60.0
    max_retries: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.latency_s) and self.latency_s >= 0):
            raise ValueError(f"latency_s must be a finite number >= 0, not {self.latency_s}")
        if self.jitter not in ("none", "exponential", "lognormal"):
            raise ValueError(f"jitter must be none, exponential or lognormal, not {self.jitter!r}")
        if not (math.isfinite(self.jitter_mean_s) and self.jitter_mean_s >= 0):
            raise ValueError(f"jitter_mean_s must be >= 0, not {self.jitter_mean_s}")
        if not (math.isfinite(self.jitter_sigma) and self.jitter_sigma > 0):
            raise ValueError(f"jitter_sigma must be > 0, not {self.jitter_sigma}")
        if not (math.isfinite(self.retry_interval_s) and self.retry_interval_s > 0):
            raise ValueError(f"retry_interval_s must be a finite number > 0, not {self.retry_interval_s}")
        if not (isinstance(self.max_retries, int) and 0 <= self.max_retries <= MAX_SMS_RETRIES):
            raise ValueError(f"max_retries must be an int in 0..{MAX_SMS_RETRIES}, not {self.max_retries!r}")
        for name in ("loss", "duplicate"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], not {p}")

    def delay_s(self, rng: random.Random) -> float:
        """One SMS's transit time, drawn from ``rng``."""
        return self.delays_s(rng, 1)[0]

    def delays_s(self, rng: random.Random, count: int) -> list[float]:
        """The transit times of ``count`` SMS, drawn from ``rng`` one after the other (the
        same as ``count`` calls of :meth:`delay_s`, in one call for all parts of a message)."""
        latency_s = self.latency_s
        mean = self.jitter_mean_s
        if self.jitter == "none" or mean == 0:
            return [latency_s] * count
        if self.jitter == "exponential":
            # rng.expovariate(rate) inlined (its very formula, the same draws): one Python
            # call less per SMS
            draw = rng.random
            log = math.log
            rate = 1.0 / mean
            return [latency_s + -log(1.0 - draw()) / rate for _ in range(count)]
        lognormvariate = rng.lognormvariate
        sigma = self.jitter_sigma
        mu = math.log(mean) - sigma * sigma / 2
        return [latency_s + lognormvariate(mu, sigma) for _ in range(count)]


@dataclass(frozen=True, slots=True)
class AirSms:
    """One SMS on the air, as a tap or an adversary sees it: no meta data, no plaintext.

    ``at_s`` is when it was transmitted; ``data`` is the SMS's octets (a whole envelope of
    up to 140 octets, or a concatenated part with its header)."""

    at_s: float
    sender_number: str
    recipient_number: str
    data: bytes


class Adversary(Protocol):
    """An active attacker on the air (see docs/network.md)."""

    def on_air(self, sms: AirSms, network: "SmsNetwork") -> list[tuple[float, AirSms]]:
        """What goes on instead of ``sms``: ``(extra delay_s, sms)`` pairs; ``[]`` drops
        it, ``[(0.0, sms)]`` lets it pass untouched."""
        ...


@dataclass(slots=True)
class TrafficCounters:
    """Messages (envelopes), SMS and octets handed to the network by senders."""

    messages: int = 0
    sms_segments: int = 0
    bytes: int = 0

    def add(self, sms_segments: int, octets: int) -> None:
        self.messages += 1
        self.sms_segments += sms_segments
        self.bytes += octets

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class NetworkCounters(TrafficCounters):
    """Global counters. ``messages``/``sms_segments``/``bytes`` count what senders sent
    (each SMS once, at its real length incl. header); the rest count what happened."""

    #: SMS lost by a link for good (after any store-and-forward retries)
    dropped: int = 0
    #: store-and-forward retries of a lost SMS by the SMS centre
    retried: int = 0
    #: extra copies made by a link
    duplicated: int = 0
    #: SMS put in a recipient's mailbox
    delivered: int = 0
    #: SMS that arrived at a full mailbox and were dropped
    mailbox_full: int = 0
    #: SMS to a number no party has (redirected or injected by an adversary)
    undeliverable: int = 0
    #: SMS the adversary dropped (returned nothing for)
    adversary_dropped: int = 0
    #: SMS the adversary changed (data, numbers) or added beyond the one it was given
    adversary_altered: int = 0
    #: SMS put on the air with :meth:`SmsNetwork.inject`
    injected: int = 0


@dataclass(slots=True)
class _Party:
    party_id: str
    number: str
    # next concatenation reference, per recipient number
    refs: dict[str, int] = field(default_factory=dict)


class SmsNetwork:
    """The SMS network between attached parties; implements ``actors.ports.Transport``.

    ``links`` maps ``(sender party id, recipient party id)`` to a :class:`LinkConfig`;
    either id may be :data:`ANY`. Lookup order: exact pair, (sender, ANY), (ANY,
    recipient), ``default_link``.
    """

    def __init__(
        self,
        kernel: Kernel,
        rng: random.Random,
        default_link: LinkConfig | None = None,
        links: Mapping[tuple[str, str], LinkConfig] | None = None,
    ) -> None:
        self.kernel = kernel
        self.rng = rng
        self.default_link = default_link if default_link is not None else LinkConfig()
        self.links: dict[tuple[str, str], LinkConfig] = dict(links or {})
        self.counters = NetworkCounters()
        #: per ``SendMeta.contract_no`` (messages without one are not in here)
        self.by_contract: dict[str, TrafficCounters] = {}
        #: per ``SendMeta.message_type``
        self.by_type: dict[str, TrafficCounters] = {}
        self.adversary: Adversary | None = None
        self._taps: list[Callable[[AirSms], None]] = []
        self._by_id: dict[str, _Party] = {}
        self._by_number: dict[str, _Party] = {}
        self._link_cache: dict[tuple[str, str], LinkConfig] = {}
        # last arrival time per (sender number, recipient number), for in_order links
        self._last_arrival: dict[tuple[str, str], float] = {}

    # --- wiring ------------------------------------------------------------------------

    def attach(self, party_id: str, phone_number: str) -> None:
        """Give ``party_id`` (a kernel actor) the SIM ``phone_number``."""
        if party_id in self._by_id:
            raise NumberInUse(f"party {party_id!r} is already attached")
        if phone_number in self._by_number:
            owner = self._by_number[phone_number].party_id
            raise NumberInUse(f"number {phone_number} already belongs to {owner!r}")
        party = _Party(party_id, phone_number)
        self._by_id[party_id] = party
        self._by_number[phone_number] = party

    def number_of(self, party_id: str) -> str:
        try:
            return self._by_id[party_id].number
        except KeyError:
            raise UnknownNumber(f"party {party_id!r} is not attached") from None

    def party_of(self, phone_number: str) -> str | None:
        """The party holding ``phone_number``, or ``None``."""
        party = self._by_number.get(phone_number)
        return party.party_id if party is not None else None

    def add_tap(self, tap: Callable[[AirSms], None]) -> None:
        """Call ``tap(air_sms)`` for every SMS put on the air (before loss: a listener near
        the sender hears it even if the network then loses it)."""
        self._taps.append(tap)

    def remove_tap(self, tap: Callable[[AirSms], None]) -> None:
        self._taps.remove(tap)

    def set_adversary(self, adversary: Adversary | None) -> None:
        self.adversary = adversary

    def link(self, sender_id: str | None, recipient_id: str | None) -> LinkConfig:
        """The link conditions from one party to another (``None``: not a party)."""
        key = (sender_id or ANY, recipient_id or ANY)
        cached = self._link_cache.get(key)
        if cached is not None:
            return cached
        links = self.links
        config = (
            links.get(key)
            or links.get((key[0], ANY))
            or links.get((ANY, key[1]))
            or links.get((ANY, ANY))
            or self.default_link
        )
        self._link_cache[key] = config
        return config

    def set_link(self, sender_id: str, recipient_id: str, config: LinkConfig) -> None:
        """Change a link's conditions from now on (either id may be :data:`ANY`)."""
        self.links[(sender_id, recipient_id)] = config
        self._link_cache.clear()

    # --- Transport port ----------------------------------------------------------------

    def send(self, sender_id: str, recipient_id: str, envelope: bytes, meta: SendMeta) -> None:
        """Send ``envelope`` from one attached party to another as binary SMS. Raises
        :class:`UnknownNumber` for an unattached party and
        ``protocol.errors.MessageTooLarge`` above 255 parts (nothing is then sent)."""
        sender = self._by_id.get(sender_id)
        if sender is None:
            raise UnknownNumber(f"sender {sender_id!r} is not attached")
        recipient = self._by_id.get(recipient_id)
        if recipient is None:
            raise UnknownNumber(f"recipient {recipient_id!r} is not attached")
        ref = sender.refs.get(recipient.number, 0)
        parts = segment(envelope, ref)
        if parts[0][:3] == UDH_PREFIX:  # concatenated: the reference is used up
            sender.refs[recipient.number] = (ref + 1) & 0xFF
        octets = sum(map(len, parts))
        n = len(parts)
        self.counters.add(n, octets)
        by_type = self.by_type.get(meta.message_type)
        if by_type is None:
            by_type = self.by_type[meta.message_type] = TrafficCounters()
        by_type.add(n, octets)
        if meta.contract_no is not None:
            by_contract = self.by_contract.get(meta.contract_no)
            if by_contract is None:
                by_contract = self.by_contract[meta.contract_no] = TrafficCounters()
            by_contract.add(n, octets)
        kernel = self.kernel
        now_s = kernel.now_s()
        sender_number = sender.number
        recipient_number = recipient.number
        config = self.link(sender_id, recipient_id)
        listened = bool(self._taps) or self.adversary is not None
        if listened or config.loss or config.duplicate or config.in_order:
            for data in parts:
                self._on_air(AirSms(now_s, sender_number, recipient_number, data))
            return
        # Nobody listens and the link only delays: what _on_air and _transmit would do,
        # without their per-part work (the same latency draw per part, in the same order).
        deliver = self._arrival_event
        for data, delay_s in zip(parts, config.delays_s(self.rng, n)):
            at_s = now_s + delay_s
            kernel.fire_at(
                at_s, deliver, recipient_id, SmsArrival(sender_number, recipient_number, data, at_s)
            )

    # --- the air -----------------------------------------------------------------------

    def inject(
        self, sender_number: str, recipient_number: str, data: bytes, at_s: float | None = None
    ) -> None:
        """An adversary's own SMS (forged sender number allowed), put on the air at
        ``at_s`` (default now) straight into the recipient's handset: taps see it, the
        adversary hook and the link model do not apply. ``data`` is one SMS: over 140
        octets raises :class:`NotAnSms` (cut messages with ``protocol.sms.segment``)."""
        data = bytes(data)
        if len(data) > SMS_OCTETS:
            raise NotAnSms(f"{len(data)} octets do not fit in one SMS ({SMS_OCTETS})")
        at_s = self.kernel.now_s() if at_s is None else at_s
        self.kernel.fire_at(at_s, self._inject_now, sender_number, recipient_number, data)

    def _inject_now(self, sender_number: str, recipient_number: str, data: bytes) -> None:
        sms = AirSms(self.kernel.now_s(), sender_number, recipient_number, data)
        self.counters.injected += 1
        for tap in self._taps:
            tap(sms)
        self._arrive(sms)

    def _on_air(self, sms: AirSms) -> None:
        for tap in self._taps:
            tap(sms)
        adversary = self.adversary
        if adversary is None:
            self._transmit(sms, 0.0)
            return
        outcome = adversary.on_air(sms, self)
        if not outcome:
            self.counters.adversary_dropped += 1
            return
        passed = False
        for extra_delay_s, out in outcome:
            if len(out.data) > SMS_OCTETS:
                raise NotAnSms(f"the adversary returned {len(out.data)} octets as one SMS")
            if out == sms and not passed:
                passed = True
            else:
                self.counters.adversary_altered += 1
            self._transmit(out, max(0.0, float(extra_delay_s)))

    def _transmit(self, sms: AirSms, extra_delay_s: float, attempt: int = 0) -> None:
        """Apply the link's loss (with store-and-forward retries), duplication and latency;
        schedule the arrival(s). ``attempt`` counts the retries made so far."""
        by_number = self._by_number
        sender = by_number.get(sms.sender_number)
        recipient = by_number.get(sms.recipient_number)
        config = self.link(
            sender.party_id if sender is not None else None,
            recipient.party_id if recipient is not None else None,
        )
        rng = self.rng
        counters = self.counters
        if config.loss and rng.random() < config.loss:
            if attempt < config.max_retries:
                counters.retried += 1
                self.kernel.call_later(
                    extra_delay_s + config.retry_interval_s, self._transmit, sms, 0.0, attempt + 1
                )
                return
            counters.dropped += 1
            return
        copies = 1
        if config.duplicate and rng.random() < config.duplicate:
            counters.duplicated += 1
            copies = 2
        kernel = self.kernel
        start_s = kernel.now_s() + extra_delay_s
        for _ in range(copies):
            at_s = start_s + config.delay_s(rng)
            if config.in_order:
                pair = (sms.sender_number, sms.recipient_number)
                at_s = max(at_s, self._last_arrival.get(pair, at_s))
                self._last_arrival[pair] = at_s
            kernel.fire_at(at_s, self._arrive, sms)

    def _arrive(self, sms: AirSms) -> None:
        recipient = self._by_number.get(sms.recipient_number)
        if recipient is None:
            self.counters.undeliverable += 1
            return
        self._deliver(
            recipient.party_id,
            SmsArrival(sms.sender_number, sms.recipient_number, sms.data, self.kernel.now_s()),
        )

    def _deliver(self, party_id: str, arrival: SmsArrival) -> None:
        """Put one SMS in the recipient's mailbox (its arrival time is now), counted."""
        if self.kernel.deliver(party_id, arrival):
            self.counters.delivered += 1
        else:
            self.counters.mailbox_full += 1

    def _arrival_event(self, party_id: str, arrival: SmsArrival) -> None:
        """:meth:`_deliver` as an event of its own (an SMS part's arrival, scheduled by
        :meth:`send`): the delivery is all the event does, so the kernel may hand the SMS to
        the handler at once (:meth:`Kernel.deliver_last`); it is counted as delivered
        first, as it would be before the handler ran."""
        counters = self.counters
        counters.delivered += 1
        if not self.kernel.deliver_last(party_id, arrival):
            counters.delivered -= 1
            counters.mailbox_full += 1

    # --- reporting ---------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """Counters as plain data (for summary.json)."""
        return {
            **self.counters.as_dict(),
            "by_type": {k: v.as_dict() for k, v in sorted(self.by_type.items())},
        }


def replace_data(sms: AirSms, data: bytes) -> AirSms:
    """A copy of ``sms`` with other octets (for tampering adversaries)."""
    return replace(sms, data=bytes(data))
