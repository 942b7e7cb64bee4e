"""The adversary: a Dolev-Yao attacker on the SMS network, composable from small attacks.

The attacker controls the air between handsets and SMS centres: it hears every SMS of the
numbers it watches, drops, delays, duplicates, replays, tampers with and redirects them,
and puts SMS of its own on the air from any number (SMS sender numbers can be spoofed, a
SIM can be cloned). It has no party's private key. What it may hold: its own keys, a
certification authority of its own making, and everything public (the parties'
certificates and numbers).

Each attack is one class with one job; :class:`Adversary` chains them and is what the
network's ``set_adversary`` hook and its taps see. Every attack can be built from a
scenario's ``[[attacks]]`` entry (:func:`build_adversary`) or from Python::

    adversary = Adversary([Eavesdropper(["13800138000"]), Tamperer(targets=["10658888"])])
    adversary.install(world.network, world.kernel)

Randomness comes from the seeded ``random.Random`` the adversary is given (determinism);
only key material and cipher nonces are truly random.

Times: ``from_s``/``until_s``/``at_s`` of an attack are virtual seconds after the orders
start (the end of initialization), like an order's ``at_s``. An attack without ``from_s``
acts from the very start, initialization included.
"""

from __future__ import annotations

import random
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from cryptography import x509

from mpay.protocol import messages as m
from mpay.protocol.envelope import seal
from mpay.protocol.errors import ProtocolError
from mpay.protocol.pki import Authority, Identity
from mpay.protocol.samples import sample_message
from dataclasses import replace

from mpay.sim.network import AirSms, SmsNetwork, replace_data
from mpay.protocol.sms import SMS_OCTETS, UDH_OCTETS, UDH_PREFIX, Reassembler, parse_part, segment

if TYPE_CHECKING:
    from mpay.sim.kernel import Kernel
    from mpay.keys.keycache import KeyCache

#: the seed's interceptor watches this many numbers; an eavesdropper may watch no more
MAX_EAVESDROP_NUMBERS = 20
#: SMS an eavesdropper keeps (older ones are counted, then forgotten)
MAX_CAPTURES = 100_000
#: whole messages an eavesdropper keeps after reassembling captured parts
MAX_CAPTURED_MESSAGES = 20_000
#: SMS one attack acts on at most (every attack has a bound)
MAX_ACTIONS = 1_000_000
#: messages a replayer remembers per (sender, recipient) pair
MAX_REPLAY_POOL = 64
#: messages a substituting replayer remembers deciding about
MAX_SWAPS_REMEMBERED = 4_096
#: how long the eavesdropper's reassembler keeps a partial message, seconds
EAVESDROP_REASSEMBLY_S = 3_600.0
#: the seed's phishing example (“your card was charged 2000 yuan, call 3888…”)
DEFAULT_PHISHING_TEXT = "【银行】您的银行卡被扣款2000元，详询3888。Card charged 2000 yuan, call 3888-6666"
#: a sender number that looks like the bank's (the bank's own number, spoofed)
DEFAULT_PHISHING_NUMBER = "95588"
#: a cloned SIM's plain "please pay" note
DEFAULT_CLONE_TEXT = "I confirm the order, please pay the merchant now."
#: the key-cache slots an attacker's own keys come from (far from the parties' slots)
ATTACKER_KEY_INDEX = 900_000


class AdversaryError(Exception):
    """A wiring mistake in an attack (an unknown target, a message the attacker cannot build)."""


# --- the base of every attack ---------------------------------------------------------------


@dataclass
class Attack:
    """One attack. ``targets`` are phone numbers: an SMS matches when it is sent from or to
    one of them (``direction``: "both", "from", "to"); empty targets match every SMS.
    It acts on a matching SMS with ``probability``, after skipping the first ``skip``
    matches, at most ``max_count`` times, between ``from_s`` and ``until_s``."""

    kind: ClassVar[str] = "attack"

    targets: Sequence[str] = ()
    direction: str = "both"
    probability: float = 1.0
    skip: int = 0
    max_count: int = MAX_ACTIONS
    from_s: float | None = None
    until_s: float | None = None
    #: SMS acted upon
    acted: int = field(default=0, init=False)
    _seen: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.direction not in ("both", "from", "to"):
            raise AdversaryError(f"{self.kind}: direction must be both, from or to, not {self.direction!r}")
        if not 0.0 <= self.probability <= 1.0:
            raise AdversaryError(f"{self.kind}: probability must be in [0, 1]")
        if not 0 <= self.max_count <= MAX_ACTIONS:
            raise AdversaryError(f"{self.kind}: max_count must be in 0..{MAX_ACTIONS}")
        self.targets = tuple(self.targets)

    def matches(self, sms: AirSms, adversary: Adversary) -> bool:
        """Whether this attack acts on ``sms`` (consumes randomness only for a match)."""
        if self.targets:
            hit_from = sms.sender_number in self.targets
            hit_to = sms.recipient_number in self.targets
            hit = {"both": hit_from or hit_to, "from": hit_from, "to": hit_to}[self.direction]
            if not hit:
                return False
        if not adversary.in_window(sms.at_s, self.from_s, self.until_s):
            return False
        if self.acted >= self.max_count:
            return False
        self._seen += 1
        if self._seen <= self.skip:
            return False
        if self.probability < 1.0 and adversary.rng.random() >= self.probability:
            return False
        self.acted += 1
        return True

    def observe(self, sms: AirSms, adversary: Adversary) -> None:
        """Sees every SMS on the air before :meth:`matches` (default: nothing)."""

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        """What goes on instead of ``sms`` (default: it passes)."""
        return [(0.0, sms)]

    def start(self, adversary: Adversary) -> None:
        """Called once the adversary is installed (schedule injections here)."""

    def report(self) -> dict[str, Any]:
        return {"kind": self.kind, "acted": self.acted}


# --- passive -------------------------------------------------------------------------------


@dataclass
class Eavesdropper(Attack):
    """Records every SMS to or from up to :data:`MAX_EAVESDROP_NUMBERS` numbers (a tap: it
    hears SMS even if the network then loses them) and reassembles them as the handset
    would, so that :meth:`leaks` can search whole messages for secrets."""

    kind: ClassVar[str] = "eavesdrop"

    captures: list[AirSms] = field(default_factory=list, init=False, repr=False)
    messages: list[bytes] = field(default_factory=list, init=False, repr=False)
    overflow: int = field(default=0, init=False)
    _reassemblers: dict[str, Reassembler] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.targets:
            raise AdversaryError("eavesdrop: name the numbers to watch")
        if len(self.targets) > MAX_EAVESDROP_NUMBERS:
            raise AdversaryError(
                f"eavesdrop: at most {MAX_EAVESDROP_NUMBERS} numbers, not {len(self.targets)}"
            )

    def tap(self, sms: AirSms, adversary: Adversary) -> None:
        if not self.matches(sms, adversary):
            return
        if len(self.captures) >= MAX_CAPTURES:
            self.overflow += 1
            return
        self.captures.append(sms)
        reassembler = self._reassemblers.get(sms.recipient_number)
        if reassembler is None:
            reassembler = self._reassemblers[sms.recipient_number] = Reassembler(EAVESDROP_REASSEMBLY_S)
        try:
            whole = reassembler.add(sms.sender_number, sms.data, sms.at_s)
        except ProtocolError:
            return
        if whole is not None and len(self.messages) < MAX_CAPTURED_MESSAGES:
            self.messages.append(whole)

    def captured_bytes(self) -> list[bytes]:
        """Every captured SMS and every whole message reassembled from them."""
        return [sms.data for sms in self.captures] + list(self.messages)

    def leaks(self, secrets: Iterable[str | bytes]) -> list[str]:
        """The secrets that appear in the captured bytes, as UTF-8 or as UTF-16 (UCS-2,
        the encoding of a Chinese text SMS)."""
        blobs = self.captured_bytes()
        found = []
        for secret in secrets:
            raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
            forms = {raw}
            if isinstance(secret, str):
                forms.add(secret.encode("utf-16-be"))
            if any(form and form in blob for form in forms for blob in blobs):
                found.append(secret if isinstance(secret, str) else raw.hex())
        return found

    def report(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "numbers": len(self.targets),
            "captured_sms": len(self.captures),
            "captured_messages": len(self.messages),
            "captured_bytes": sum(len(sms.data) for sms in self.captures),
        }


# --- active on the air -----------------------------------------------------------------------


@dataclass
class Dropper(Attack):
    """Drops matching SMS (jamming, or a hostile SMS centre)."""

    kind: ClassVar[str] = "drop"

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        return []


@dataclass
class Delayer(Attack):
    """Holds matching SMS back for ``delay_s``."""

    kind: ClassVar[str] = "delay"
    delay_s: float = 3_600.0

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        return [(self.delay_s, sms)]


@dataclass
class Duplicator(Attack):
    """Sends matching SMS ``copies`` extra times, ``gap_s`` apart."""

    kind: ClassVar[str] = "duplicate"
    copies: int = 1
    gap_s: float = 1.0

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        return [(0.0, sms)] + [(self.gap_s * (i + 1), sms) for i in range(self.copies)]


@dataclass
class Replayer(Attack):
    """Replays earlier SMS.

    ``mode = "later"``: every matching SMS is sent again ``delay_s`` later (after the
    handset forgot the parts, so the whole message is reassembled and opened again).
    ``mode = "substitute"``: a new message of a (sender, recipient) pair is dropped and the
    oldest earlier message of the same pair (another step, or another transaction) is sent
    in its place, all its parts. It remembers the targets' messages even outside its time
    window, at most :data:`MAX_REPLAY_POOL` per pair."""

    kind: ClassVar[str] = "replay"
    delay_s: float = 3_600.0
    mode: str = "later"
    replayed_messages: int = field(default=0, init=False)
    _pool: dict[tuple[str, str], OrderedDict[tuple[int, int], dict[int, bytes]]] = field(
        default_factory=dict, init=False, repr=False
    )
    _swapping: OrderedDict[tuple[str, str, int, int], bool] = field(
        default_factory=OrderedDict, init=False, repr=False
    )
    _singles: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.mode not in ("later", "substitute"):
            raise AdversaryError(f"replay: mode must be later or substitute, not {self.mode!r}")

    def targeted(self, sms: AirSms) -> bool:
        """Whether ``sms`` is of the targets (whatever the time window)."""
        if not self.targets:
            return True
        hit_from = sms.sender_number in self.targets
        hit_to = sms.recipient_number in self.targets
        return {"both": hit_from or hit_to, "from": hit_from, "to": hit_to}[self.direction]

    def _key(self, sms: AirSms) -> tuple[int, int] | None:
        try:
            part = parse_part(sms.data)
        except ProtocolError:
            return None
        if part is None:  # a one-SMS message: a group of its own
            self._singles += 1
            return (-self._singles, 1)
        return (part.ref, part.total)

    def observe(self, sms: AirSms, adversary: Adversary) -> None:
        """Substitute mode remembers every message of the targets, even outside its window."""
        if self.mode != "substitute" or not self.targeted(sms):
            return
        key = self._key(sms)
        if key is None:
            return
        pool = self._pool.setdefault((sms.sender_number, sms.recipient_number), OrderedDict())
        seq = sms.data[5] if key[0] >= 0 else 1
        pool.setdefault(key, {})[seq] = sms.data
        while len(pool) > MAX_REPLAY_POOL:
            pool.popitem(last=False)

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        if self.mode == "later":
            self.replayed_messages += 1
            return [(0.0, sms), (self.delay_s, sms)]
        pair = (sms.sender_number, sms.recipient_number)
        try:
            part = parse_part(sms.data)
        except ProtocolError:
            return [(0.0, sms)]
        key = (part.ref, part.total) if part is not None else None
        pool = self._pool.setdefault(pair, OrderedDict())
        swap_key = (*pair, *(key or (-1, 1)))
        if key is None or swap_key not in self._swapping:
            older = [k for k, parts in pool.items() if k != key and len(parts) == k[1]]
            swap = bool(older)
            if key is not None:
                self._swapping[swap_key] = swap
                while len(self._swapping) > MAX_SWAPS_REMEMBERED:
                    self._swapping.popitem(last=False)
            if swap:
                old = pool.pop(older[0])
                self.replayed_messages += 1
                return [(0.0, AirSms(sms.at_s, *pair, old[seq])) for seq in sorted(old)]
            return [(0.0, sms)]
        return [] if self._swapping[swap_key] else [(0.0, sms)]


@dataclass
class Tamperer(Attack):
    """Changes bytes of matching SMS: ``position = "last"`` flips the last octet (inside
    the wrapped content key, so opening fails at decryption), ``"random"`` flips a random
    octet of the payload (never the concatenation header, which only changes reassembly)."""

    kind: ClassVar[str] = "tamper"
    position: str = "last"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.position not in ("last", "random"):
            raise AdversaryError(f"tamper: position must be last or random, not {self.position!r}")

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        data = bytearray(sms.data)
        start = UDH_OCTETS if data.startswith(UDH_PREFIX) else 0
        if len(data) <= start:
            return [(0.0, sms)]
        if self.position == "last":
            index = len(data) - 1
        else:
            index = adversary.rng.randrange(start, len(data))
        data[index] ^= adversary.rng.randrange(1, 256)
        return [(0.0, replace_data(sms, bytes(data)))]


@dataclass
class Redirector(Attack):
    """Delivers matching SMS to ``to_number`` instead of their recipient."""

    kind: ClassVar[str] = "redirect"
    to_number: str = ""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.to_number:
            raise AdversaryError("redirect: name the number to redirect to (to)")

    def on_air(self, sms: AirSms, adversary: Adversary) -> list[tuple[float, AirSms]]:
        return [(0.0, replace(sms, recipient_number=self.to_number))]


# --- the attacker's own SMS ------------------------------------------------------------------


@dataclass
class Injector(Attack):
    """Puts forged protocol messages on the air at ``at_s`` (each time listed).

    The message is a real envelope: the attacker signs ``message`` (a message type,
    filled from ``protocol.samples``; ``contract_no`` overrides its contract number) as
    ``claim`` (a party id) and encrypts it for the victim ``to`` with the victim's public
    certificate. ``key``:

    * ``"own_ca"``: the attacker's key, certified by an authority of its own making as
      ``claim`` (and the certificate attached) -- refused: the chain does not reach the
      real authority;
    * ``"victim_kid"``: the attacker's key, but the kid of ``claim``'s real certificate --
      refused: the signature does not verify.

    ``from_number`` is the sender number put on the air (default: ``claim``'s number)."""

    kind: ClassVar[str] = "inject"
    to: str = ""
    claim: str = ""
    message: str = "acceptance"
    contract_no: str | None = None
    key: str = "own_ca"
    at_s: Sequence[float] = (0.0,)
    from_number: str | None = None
    injected: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.to:
            raise AdversaryError(f"{self.kind}: name the party to send to (to)")
        if self.key not in ("own_ca", "victim_kid"):
            raise AdversaryError(f"{self.kind}: key must be own_ca or victim_kid, not {self.key!r}")
        try:
            m.MessageType(self.message)
        except ValueError:
            raise AdversaryError(f"{self.kind}: unknown message type {self.message!r}") from None
        self.at_s = tuple(self.at_s)

    def start(self, adversary: Adversary) -> None:
        for at_s in self.at_s:
            adversary.at(at_s, self._inject, adversary)

    def forged_message(self) -> m.Message:
        message = sample_message(self.message)
        if self.contract_no is not None and "contract_no" in type(message).model_fields:
            message = message.model_copy(update={"contract_no": self.contract_no})
        return message

    def envelope(self, adversary: Adversary) -> bytes:
        ctx = adversary.context
        if ctx is None:
            raise AdversaryError(f"{self.kind}: the adversary has no world context (certificates, keys)")
        victim_cert = ctx.encryption_cert(self.to)
        claim = self.claim or self.to
        sender = ctx.forged_identity(claim, self.key)
        return seal(
            self.forged_message(),
            sender=sender,
            recipient_cert=victim_cert,
            seq=adversary.rng.randrange(1, 2**31),
            sent_unix_s=int(ctx.now_unix_s()),
            include_sender_cert=self.key == "own_ca",
        )

    def _inject(self, adversary: Adversary) -> None:
        ctx = adversary.context
        assert ctx is not None
        data = self.envelope(adversary)
        sender_number = self.from_number or ctx.number_of(self.claim or self.to)
        for part in segment(data, adversary.rng.randrange(256)):
            adversary.network.inject(sender_number, ctx.number_of(self.to), part)
        self.injected += 1
        self.acted += 1

    def report(self) -> dict[str, Any]:
        return {"kind": self.kind, "acted": self.acted, "injected_messages": self.injected}


@dataclass
class SimCloner(Injector):
    """A cloned SIM of ``victim``: the victim's number, but not the victim's private key.

    It sends, from the victim's number, either a plain text note (``message = "text"``:
    refused as unauthenticated) or a protocol message it signs with its own key under a
    self-made certificate claiming to be the victim (refused: unknown certificate). A clone also
    hears the SMS sent to the victim: add an :class:`Eavesdropper` on the victim's number
    (it cannot open them)."""

    kind: ClassVar[str] = "sim_clone"
    victim: str = ""
    text: str = DEFAULT_CLONE_TEXT

    def __post_init__(self) -> None:
        if not self.victim:
            raise AdversaryError("sim_clone: name the victim")
        self.claim = self.claim or self.victim
        if self.message == "text":
            Attack.__post_init__(self)
            if not self.to:
                raise AdversaryError("sim_clone: name the party to send to (to)")
            self.at_s = tuple(self.at_s)
            return
        super().__post_init__()

    def _inject(self, adversary: Adversary) -> None:
        ctx = adversary.context
        assert ctx is not None
        number = ctx.number_of(self.victim)
        if self.message == "text":
            adversary.network.inject(number, ctx.number_of(self.to), _text_sms(self.text))
            self.injected += 1
            self.acted += 1
            return
        self.from_number = number
        super()._inject(adversary)


@dataclass
class Phisher(Attack):
    """Plain text SMS pretending to be the bank, from a bank-like number, to the targets.

    No envelope, no signature: the handset flags it as untrusted and acts on nothing."""

    kind: ClassVar[str] = "phish"
    text: str = DEFAULT_PHISHING_TEXT
    from_number: str = DEFAULT_PHISHING_NUMBER
    at_s: Sequence[float] = (0.0,)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.targets:
            raise AdversaryError("phish: name the numbers to send to")
        _text_sms(self.text)
        self.at_s = tuple(self.at_s)

    def matches(self, sms: AirSms, adversary: Adversary) -> bool:
        return False  # it only sends

    def start(self, adversary: Adversary) -> None:
        for at_s in self.at_s:
            adversary.at(at_s, self._send, adversary)

    def _send(self, adversary: Adversary) -> None:
        data = _text_sms(self.text)
        for number in self.targets:
            adversary.network.inject(self.from_number, number, data)
            self.acted += 1


def _text_sms(text: str) -> bytes:
    """A text SMS's octets (UTF-8 here; a real one is GSM-7 or UCS-2): at most 140."""
    data = text.encode("utf-8")
    if len(data) > SMS_OCTETS:
        raise AdversaryError(f"text SMS of {len(data)} octets does not fit one SMS ({SMS_OCTETS})")
    return data


# --- the world the attacker lives in ---------------------------------------------------------


@dataclass
class AttackContext:
    """What an attacker can know and hold: public certificates and numbers, the time, its
    own keys. Built by the world (:meth:`mpay.sim.world.World.install_adversary`)."""

    suite: str
    key_cache: KeyCache
    epoch_unix_s: float
    kernel: Kernel
    certificates: dict[str, tuple[x509.Certificate, x509.Certificate]]
    numbers: dict[str, str]
    _own: dict[tuple[str, str], Identity] = field(default_factory=dict, repr=False)
    _fake_authority: Authority | None = field(default=None, repr=False)

    def now_unix_s(self) -> float:
        return self.kernel.now_unix_s()

    def number_of(self, party_or_number: str) -> str:
        return self.numbers.get(party_or_number, party_or_number)

    def encryption_cert(self, party_id: str) -> x509.Certificate:
        try:
            return self.certificates[party_id][1]
        except KeyError:
            raise AdversaryError(f"no published certificate for {party_id!r}") from None

    def _keys(self, slot: int) -> Any:
        return self.key_cache.keys(self.suite, ATTACKER_KEY_INDEX + slot)

    def forged_identity(self, claim: str, key: str) -> Identity:
        """The attacker's identity claiming to be ``claim``: its own keys, with a certificate
        from its own authority (``own_ca``) or the victim's real certificate (``victim_kid``)."""
        cached = self._own.get((claim, key))
        if cached is not None:
            return cached
        role = _role_of(self.certificates, claim)
        keys = self._keys(1)
        if key == "victim_kid":
            real_sign, real_agree = self.certificates[claim]
            ident = Identity(
                party_id=claim, role=role, suite=self.suite, signing_key=keys.signing,
                signing_cert=real_sign, agreement_key=keys.agreement, agreement_cert=real_agree,
            )
        else:
            if self._fake_authority is None:
                start = int(self.epoch_unix_s)
                self._fake_authority = Authority.create(
                    self._keys(0).signing,
                    not_before_unix_s=start - 86_400,
                    not_after_unix_s=start + 2 * 365 * 86_400,
                    name="mpay authority",  # the same name as the real one: a look-alike
                )
            start = int(self.epoch_unix_s)
            ident = self._fake_authority.issue_identity(
                claim, role, self.suite, keys, start - 86_400, start + 365 * 86_400
            )
        self._own[(claim, key)] = ident
        return ident


def _role_of(certificates: dict[str, tuple[x509.Certificate, x509.Certificate]], party_id: str) -> str:
    from mpay.protocol.pki import role_of

    if party_id in certificates:
        return role_of(certificates[party_id][0])
    return "customer"


# --- the composite --------------------------------------------------------------------------


class Adversary:
    """Every attack of a run, in order: what the network's adversary hook and taps call.

    For an SMS on the air each active attack in turn maps every SMS it is given to what goes
    on instead (so a duplicated SMS can then be tampered with)."""

    def __init__(self, attacks: Sequence[Attack], rng: random.Random | None = None) -> None:
        self.attacks = list(attacks)
        self.rng = rng or random.Random(0)
        self.network: SmsNetwork | None = None
        self.kernel: Kernel | None = None
        self.context: AttackContext | None = None
        #: virtual time the orders started (the origin of the attacks' times), once known
        self.origin_s: float | None = None
        self._pending: list[tuple[float, Callable[..., None], tuple]] = []

    @property
    def eavesdroppers(self) -> list[Eavesdropper]:
        return [a for a in self.attacks if isinstance(a, Eavesdropper)]

    def install(self, network: SmsNetwork, kernel: Kernel, context: AttackContext | None = None) -> None:
        """Hook into ``network`` (adversary and tap) and let the attacks schedule their SMS."""
        self.network = network
        self.kernel = kernel
        self.context = context
        network.set_adversary(self)
        network.add_tap(self._tap)
        for attack in self.attacks:
            attack.start(self)

    def start_orders(self, origin_s: float) -> None:
        """The orders start now: attack times count from here; scheduled SMS go out."""
        self.origin_s = origin_s
        pending, self._pending = self._pending, []
        for at_s, callback, args in pending:
            assert self.kernel is not None
            self.kernel.schedule(origin_s + at_s, callback, *args)

    def at(self, at_s: float, callback: Callable[..., None], *args: Any) -> None:
        """Call ``callback`` ``at_s`` seconds after the orders start."""
        if self.origin_s is None:
            self._pending.append((at_s, callback, args))
        else:
            assert self.kernel is not None
            self.kernel.schedule(self.origin_s + at_s, callback, *args)

    def in_window(self, at_s: float, from_s: float | None, until_s: float | None) -> bool:
        if from_s is None and until_s is None:
            return True
        if self.origin_s is None:
            return False
        relative_s = at_s - self.origin_s
        return (from_s is None or relative_s >= from_s) and (until_s is None or relative_s < until_s)

    def _tap(self, sms: AirSms) -> None:
        for attack in self.attacks:
            if isinstance(attack, Eavesdropper):
                attack.tap(sms, self)

    def on_air(self, sms: AirSms, network: SmsNetwork) -> list[tuple[float, AirSms]]:
        current: list[tuple[float, AirSms]] = [(0.0, sms)]
        for attack in self.attacks:
            if isinstance(attack, (Eavesdropper, Injector, Phisher)):
                continue
            following: list[tuple[float, AirSms]] = []
            for delay_s, item in current:
                attack.observe(item, self)
                if attack.matches(item, self):
                    following += [(delay_s + extra, out) for extra, out in attack.on_air(item, self)]
                else:
                    following.append((delay_s, item))
            current = following
        return current

    def report(self) -> dict[str, Any]:
        """Per attack kind, what it did (for ``summary.security.attacks``)."""
        out: dict[str, Any] = {}
        counts: Counter[str] = Counter()
        for attack in self.attacks:
            counts[attack.kind] += 1
            name = attack.kind if counts[attack.kind] == 1 else f"{attack.kind}_{counts[attack.kind]}"
            out[name] = attack.report()
        return out


# --- from a scenario ---------------------------------------------------------------------------

ATTACK_CLASSES: dict[str, type[Attack]] = {
    cls.kind: cls
    for cls in (Eavesdropper, Dropper, Delayer, Duplicator, Replayer, Tamperer, Redirector, Injector, SimCloner, Phisher)
}


def build_attack(spec: dict[str, Any], number_of: Callable[[str], str]) -> Attack:
    """One attack from a scenario entry (``mpay.schema.scenario.AttackSpec.model_dump()``): party
    ids in ``targets`` and ``to`` become phone numbers."""
    spec = {key: value for key, value in spec.items() if value is not None}
    kind = spec.pop("kind")
    cls = ATTACK_CLASSES[kind]
    spec["targets"] = tuple(number_of(t) for t in spec.get("targets", ()))
    if kind == "redirect":
        spec["to_number"] = number_of(spec.pop("to"))
    accepted = {f for f in cls.__dataclass_fields__ if cls.__dataclass_fields__[f].init}
    unknown = set(spec) - accepted
    if unknown:
        raise AdversaryError(f"{kind}: unexpected field(s) {sorted(unknown)}")
    return cls(**spec)


def build_adversary(
    specs: Sequence[dict[str, Any]], number_of: Callable[[str], str], rng: random.Random
) -> Adversary:
    return Adversary([build_attack(spec, number_of) for spec in specs], rng)


__all__ = [
    "ATTACK_CLASSES",
    "MAX_EAVESDROP_NUMBERS",
    "Adversary",
    "AdversaryError",
    "Attack",
    "AttackContext",
    "Delayer",
    "Dropper",
    "Duplicator",
    "Eavesdropper",
    "Injector",
    "Phisher",
    "Redirector",
    "Replayer",
    "SimCloner",
    "Tamperer",
    "build_adversary",
    "build_attack",
]
