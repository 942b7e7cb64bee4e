"""The teaching demo: one purchase, narrated SMS by SMS as the simulated world runs it.

Nothing here is staged. :func:`run_demo` builds the scenario's real world (keys,
certificates, SQLite ledgers, the SMS network, virtual time), puts a *tap* on the network
to see what an eavesdropper on the air sees, and a *listener* on the trace to narrate each
event as it happens:

* when an SMS goes on the air: the seed's step, who sends what to whom, and the air view
  (phone numbers, size, SMS parts, the first bytes in hex: never the content);
* when its receiver has opened it: the decrypted content (from the receiver's own log of
  plaintexts) and every check the receiver made, with its result;
* timers that lapse, ledger moves (hold 预扣, settle, refund, top-up), escrow transitions,
  parcels and ratings;
* at the end: balances, points, integrity points, credit scores, the invariants, and the
  figures of the seed's own weaknesses (many steps, lots of data).

Because the listener runs inside the world, ``--step`` pauses the whole (virtual) world at
each SMS until Enter is pressed; at end of input it carries on without pausing.

Optional, for contrast: :func:`legacy_des_section` encrypts one real message with the
seed's DES (single DES in CBC mode), clearly marked insecure, and searches a reduced key
space for real to estimate what a full search costs. It exists only here: scenarios
cannot select it.
"""

from __future__ import annotations

import os
import sys
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, modes
from cryptography.hazmat.primitives.serialization import Encoding

from mpay.actors.base import Actor
from mpay.present import i18n
from mpay.present.i18n import text
from mpay.keys.keycache import KeyCache
from mpay.sim.network import AirSms
from mpay.schema.scenario import Scenario
from mpay.sim.world import World, expand
from mpay.protocol import messages as m
from mpay.protocol.envelope import Opened
from mpay.protocol.sms import parts_needed

#: the demo's default: the seed's transaction, every step
#: the shipped scenario the demo walks through unless told otherwise
DEFAULT_SCENARIO = "happy_path"
#: bytes of the first SMS part the eavesdropper view shows
AIR_HEX_BYTES = 16
#: longest byte string shown in full in decrypted content (longer ones are cut)
MAX_SHOWN_BYTES = 16
#: key bits the legacy-DES brute force really searches (2^16 keys: well under a second)
DES_SEARCH_BITS = 16
#: DES keys per second of the EFF's "Deep Crack" machine (1998), for the estimate
DEEP_CRACK_KEYS_PER_S = 9.2e10
#: SMS loss rate used for the "lossy channel" figure when the scenario's network loses none
HYPOTHETICAL_LOSS = 0.01
#: message fields that carry bank-card secrets (only the bank ever receives them)
CARD_SECRET_FIELDS = frozenset({"card_number", "pin"})

_PARTY_ROLES_ORDER = ("customer", "merchant", "payment_center", "bank")


@dataclass(frozen=True)
class DemoOptions:
    """How the demo speaks: language, pauses, colour, the optional DES contrast."""

    lang: str = "en"
    step: bool = False
    color: bool = False
    legacy_des: bool = False


def first_order_only(scenario: Scenario) -> tuple[Scenario, int]:
    """The scenario cut down to its first order and that order's two parties.

    Returns the scenario to demonstrate and how many orders the original had (a
    ``[workload]`` counts its generated orders). A single-order scenario comes back as is.
    """
    customers, merchants, orders = expand(scenario)
    if len(orders) <= 1 and scenario.workload is None:
        return scenario, len(orders)
    first = orders[0]
    customer = next(c for c in customers if c.id == first.customer)
    merchant = next(s for s in merchants if s.id == first.merchant)
    trimmed = scenario.model_copy(
        update={"customers": [customer], "merchants": [merchant], "orders": [first], "workload": None}
    )
    return trimmed, len(orders)


# --- formatting helpers ---------------------------------------------------------------------


class Style:
    """ANSI colour on a terminal, plain text elsewhere; Unicode marks when the stream can
    encode them."""

    _CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "cyan": "36"}

    def __init__(self, color: bool, unicode_ok: bool, encoding: str = "utf-8") -> None:
        self.color = color
        self.unicode_ok = unicode_ok
        self.encoding = encoding
        self.ok_mark = "✓" if unicode_ok else "ok"
        self.fail_mark = "✗" if unicode_ok else "FAILED"
        self.bullet = "·" if unicode_ok else "-"

    def paint(self, style: str, line: str) -> str:
        if not self.color:
            return line
        return f"\x1b[{self._CODES[style]}m{line}\x1b[0m"

    def arrows(self, line: str) -> str:
        """Arrows as arrows where the stream can show them; elsewhere what it cannot encode
        (the Chinese terms) becomes ``?`` rather than an error."""
        if self.unicode_ok:
            return line.replace("->", "→").replace("<-", "←")
        return line.encode(self.encoding, "replace").decode(self.encoding)


def _unicode_ok(stream: TextIO) -> bool:
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        "→✓✗·预扣".encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True


def yuan(amount_fen: int | None, lang: str) -> str:
    """Fen as yuan with two decimals: ``24000`` -> ``240.00 CNY`` (``240.00 元``)."""
    if amount_fen is None:
        return "-"
    sign = "-" if amount_fen < 0 else ""
    whole, fen = divmod(abs(amount_fen), 100)
    return text("yuan", lang, yuan=f"{sign}{whole}.{fen:02d}")


def clock(t_s: float) -> str:
    """Virtual time since the start: ``T+00:00:13`` or ``T+1d 02:01:28``."""
    total = int(t_s)
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    hms = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    return f"T+{days}d {hms}" if days else f"T+{hms}"


_UNITS = {"en": ("d", "h", "min", "s"), "zh": ("天", "小时", "分钟", "秒")}


def duration(seconds: float, lang: str) -> str:
    """A span in days, hours, minutes and seconds, leaving out zero parts."""
    total = int(round(seconds))
    day, hour, minute, second = _UNITS[lang]
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{value} {unit}" if lang == "en" else f"{value}{unit}"
        for value, unit in ((days, day), (hours, hour), (minutes, minute), (secs, second))
        if value
    ]
    return (" " if lang == "en" else "").join(parts) or (f"0 {second}" if lang == "en" else f"0{second}")


def display_width(line: str) -> int:
    """Terminal columns of ``line``: Chinese characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in line)


def spaced_hex(data: bytes) -> str:
    return " ".join(f"{byte:02x}" for byte in data)


def step_of(message: m.Message) -> tuple[str, int | None]:
    """The seed step a message implements: ``("init", 2)``, ``("step", 5)`` or
    ``("extension", None)``; from the model's ``STEP``, made exact where it spans steps."""
    if isinstance(message, m.RegistrationAck):
        return "init", {"shop": 2, "customer": 3, "card_binding": 3, "merchant": 4}[message.registration]
    if isinstance(message, m.PaymentRefused):
        by_reason = {"credit_policy": 3, "confirmation_timeout": 4, "customer_declined": 5, "insufficient_funds": 6}
        return "step", by_reason[message.reason]
    return _parse_step(type(message).STEP)


def _parse_step(step: str) -> tuple[str, int | None]:
    if step.startswith("init"):
        return "init", int(step.split()[1].split("-")[0])
    if step == "extension":
        return "extension", None
    return "step", int(step.split("-")[0])


def step_label(kind: str, number: int | None, lang: str) -> str:
    """``Step 3`` / ``第3步``, ``Init 2`` / ``初始化 2``, ``Extension`` / ``扩展``."""
    if kind == "init":
        return f"{text('init', lang)} {number}"
    if kind == "extension":
        return text("extension", lang)
    if lang == "zh":
        return f"{text('step', lang)}{number}{text('step_suffix', lang)}"
    return f"{text('step', lang)} {number}"


def content_lines(message: m.Message | m._Part, lang: str, indent: int = 4) -> list[tuple[str, bool]]:
    """A message's fields as compact ``field: value`` lines; ``(line, bank_only)`` pairs."""
    lines: list[tuple[str, bool]] = []
    pad = " " * indent
    for name in type(message).model_fields:
        value = getattr(message, name)
        label = i18n.field_name(name, lang)
        if isinstance(value, m.Contract):
            lines.append((f"{pad}{label}:", False))
            lines.extend(content_lines(value, lang, indent + 2))
        elif name == "items":
            for item in value:
                spec = f" ({item.specification})" if item.specification else ""
                lines.append(
                    (
                        f"{pad}{label}: {item.name}{spec} x {item.quantity} @ "
                        f"{yuan(item.unit_price_fen, lang)} = {yuan(item.subtotal_fen, lang)}",
                        False,
                    )
                )
        else:
            lines.append((f"{pad}{label}: {_value(name, value, lang)}", name in CARD_SECRET_FIELDS))
    return lines


def _value(name: str, value: Any, lang: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return text("yes" if value else "no", lang)
    if isinstance(value, bytes):
        shown = value[:MAX_SHOWN_BYTES].hex()
        return shown if len(value) <= MAX_SHOWN_BYTES else shown + text("bytes_more", lang, n=len(value))
    if isinstance(value, int) and name.endswith("_fen"):
        return yuan(value, lang)
    if isinstance(value, int) and name.endswith("_unix_s"):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, int) and name.endswith("_window_s"):
        return duration(value, lang)
    if isinstance(value, str):
        return i18n.value_word(value, lang) if value else "-"
    return str(value)


# --- the narrator ------------------------------------------------------------------------------


@dataclass
class SentSms:
    """One message handed to the network, and the SMS the tap saw go on the air."""

    index: int
    t_s: float
    sender: str
    recipient: str
    message_type: str
    seq: int
    envelope_bytes: int
    sender_number: str
    recipient_number: str
    expected_parts: int
    parts: list[bytes] = field(default_factory=list)
    shown: bool = False
    in_transaction: bool = False


class Narrator:
    """Listens to the world's trace and network and tells the story as it happens."""

    def __init__(self, world: World, options: DemoOptions, out: TextIO, style: Style) -> None:
        self.world = world
        self.lang = options.lang
        self.pause = options.step
        self.out = out
        self.style = style
        self.sent: dict[tuple[str, str, int], SentSms] = {}
        self.all_sent: list[SentSms] = []
        self._collecting: SentSms | None = None
        self._last_shown: SentSms | None = None
        self._legend_shown = False
        self.initialized = False
        self.init_counters: dict[str, int] = {}
        #: transaction steps already announced (1..11), and how
        self.steps_seen: dict[int, str] = {}
        self.max_step = 0
        self.plaintexts: dict[str, m.Message] = {}
        self.pauses = 0
        #: the reader closed the output (a broken pipe)
        self.closed = False

    # --- output -----------------------------------------------------------------------

    def say(self, line: str = "", style: str | None = None) -> None:
        line = self.style.arrows(line)
        self.write((self.style.paint(style, line) if style else line) + "\n")

    def write(self, chunk: str) -> None:
        """Write to the output; once the reader has gone (``mpay demo | head``), say no more
        but let the world finish its run."""
        if self.closed:
            return
        try:
            self.out.write(chunk)
        except BrokenPipeError:
            self.closed = True

    def heading(self, line: str) -> None:
        self.say()
        self.say(line, "bold")
        self.say("=" * min(78, max(display_width(line), 20)), "bold")

    def wait(self) -> None:
        """``--step``: wait for Enter; at end of input (or no input at all) stop waiting."""
        if not self.pause:
            return
        self.write(self.style.arrows(text("press_enter", self.lang)))
        try:
            self.out.flush()
        except BrokenPipeError:
            self.closed = True
        try:
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""
        self.pauses += 1
        if line == "":
            self.pause = False
            self.write("\n")

    def name(self, party_id: str) -> str:
        actor = self.actor(party_id)
        role = i18n.role_name(actor.role, self.lang) if actor is not None else "?"
        return f"{party_id} ({role})" if self.lang == "en" else f"{party_id}({role})"

    def actor(self, party_id: str) -> Actor | None:
        world = self.world
        if party_id == world.payment_center.party_id:
            return world.payment_center
        if party_id == world.bank.party_id:
            return world.bank
        return world.customers.get(party_id) or world.merchants.get(party_id)

    # --- the network tap --------------------------------------------------------------

    def on_air(self, sms: AirSms) -> None:
        sending = self._collecting
        if (
            sending is not None
            and sms.sender_number == sending.sender_number
            and sms.recipient_number == sending.recipient_number
            and len(sending.parts) < sending.expected_parts
        ):
            sending.parts.append(sms.data)
            if len(sending.parts) == sending.expected_parts:
                self._show_sent(sending)
            return
        self._flush_sending()
        tag = text("air_tag", self.lang)
        self.say(
            f"  {tag} "
            + text(
                "air_unknown",
                self.lang,
                sender_number=sms.sender_number,
                recipient_number=sms.recipient_number,
                octets=len(sms.data),
            ),
            "red",
        )

    def _flush_sending(self) -> None:
        if self._collecting is not None and not self._collecting.shown:
            self._show_sent(self._collecting)
        self._collecting = None

    # --- the trace listener ---------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        self._flush_sending()
        handler = getattr(self, f"_on_{event['kind']}", None)
        if handler is not None:
            handler(event)

    def _on_sms_sent(self, event: dict[str, Any]) -> None:
        network = self.world.network
        sms = SentSms(
            index=event["i"],
            t_s=event["t_s"],
            sender=event["actor"],
            recipient=event["to"],
            message_type=event["type"],
            seq=event["seq"],
            envelope_bytes=event["bytes"],
            sender_number=network.number_of(event["actor"]),
            recipient_number=network.number_of(event["to"]),
            expected_parts=parts_needed(event["bytes"]),
            in_transaction=self.initialized,
        )
        self.sent[(sms.sender, sms.recipient, sms.seq)] = sms
        self.all_sent.append(sms)
        self._collecting = sms

    def _show_sent(self, sms: SentSms) -> None:
        """The first half of an SMS's story: the step, who sends what, the air view."""
        sms.shown = True
        if self._collecting is sms:
            self._collecting = None
        lang = self.lang
        model = m.MESSAGE_MODELS[m.MessageType(sms.message_type)]
        kind, number = _parse_step(model.STEP)
        if kind == "step" and number is not None:
            self._enter_step(number)
        what = i18n.words(i18n.MESSAGE_NAMES, sms.message_type, lang)
        self.say()
        self.say(f"{self._step_label_for(sms, kind, number)} {self.style.bullet} {what}   [{clock(sms.t_s)}]", "bold")
        self.say(
            "  "
            + text(
                "sends",
                lang,
                sender=self.name(sms.sender),
                recipient=self.name(sms.recipient),
                type=sms.message_type,
                seq=sms.seq,
            )
        )
        self.say("  " + text("air", lang), "cyan")
        tag = text("air_tag", lang)
        first = sms.parts[0] if sms.parts else b""
        self.say(
            f"    {tag} "
            + text(
                "air_size",
                lang,
                sender_number=sms.sender_number,
                recipient_number=sms.recipient_number,
                bytes=sms.envelope_bytes,
                parts=len(sms.parts),
                octets=sum(map(len, sms.parts)),
            ),
            "cyan",
        )
        self.say(f"    {tag} " + text("air_hex", lang, hex=spaced_hex(first[:AIR_HEX_BYTES])), "cyan")
        if not self._legend_shown:
            self._legend_shown = True
            self.say(f"    {tag} " + text("air_legend", lang), "dim")
        self._last_shown = sms

    def _step_label_for(self, sms: SentSms, kind: str, number: int | None) -> str:
        # The exact step of registration answers and refusals is in their content, which
        # only the receiver sees; the model's STEP range is shown until then.
        model = m.MESSAGE_MODELS[m.MessageType(sms.message_type)]
        if "-" in model.STEP:
            prefix = step_label(kind, number, self.lang)
            return prefix.replace(str(number), model.STEP.split()[-1], 1)
        return step_label(kind, number, self.lang)

    def _enter_step(self, number: int, how: str = "sms") -> None:
        """Announce the steps a path jumps over, in order, before step ``number``."""
        if number > self.max_step + 1 and self.initialized:
            for skipped in range(self.max_step + 1, number):
                if skipped not in self.steps_seen:
                    self._skipped(skipped, "not_taken")
        self.steps_seen.setdefault(number, how)
        self.max_step = max(self.max_step, number)

    def _skipped(self, number: int, why: str) -> None:
        lang = self.lang
        sender_role, recipient_role = i18n.SEED_STEP_ROLES[number]
        sender, recipient = self._party_with_role(sender_role), self._party_with_role(recipient_role)
        name = i18n.SEED_STEPS[number][lang]
        detail = text(why, lang, sender=self.name(sender), recipient=self.name(recipient))
        self.say()
        self.say(f"{step_label('step', number, lang)} {self.style.bullet} {name}: {detail}", "dim")

    def _party_with_role(self, role: str) -> str:
        world = self.world
        if role == "payment_center":
            return world.payment_center.party_id
        if role == "bank":
            return world.bank.party_id
        if role == "customer":
            return next(iter(world.customers))
        return next(iter(world.merchants))

    def _on_sms_opened(self, event: dict[str, Any]) -> None:
        """The second half: what the receiver decrypted and every check it made."""
        lang = self.lang
        receiver = event["actor"]
        sms = self.sent.pop((event["sender"], receiver, event["seq"]), None)
        opened = self._opened(receiver, event)
        if sms is None or self._last_shown is not sms:
            if opened is not None:
                kind, number = step_of(opened.message)
            else:
                kind, number = _parse_step(m.MESSAGE_MODELS[m.MessageType(event["type"])].STEP)
            label = step_label(kind, number, lang)
            self.say()
            self.say(
                f"  {self.style.bullet} {self.name(receiver)} <- {event['sender']}: {event['type']}, "
                f"seq {event['seq']} ({label})   [{clock(event['t_s'])}]",
                "bold",
            )
        self.say("  " + text("content", lang, receiver=receiver))
        if opened is not None:
            self.plaintexts[event["type"]] = opened.message
            bank_only = text("bank_only", lang)
            for line, secret in content_lines(opened.message, lang):
                self.say(f"{line}   <- {bank_only}" if secret else line, "yellow" if secret else None)
        self.say("  " + text("checks", lang, receiver=receiver))
        for check in event.get("checks", ()):
            self._check_line(check)
        self._last_shown = None
        self.wait()

    def _check_line(self, check: dict[str, Any]) -> None:
        name = check["name"]
        label = i18n.CHECK_NAMES[name][self.lang] if name in i18n.CHECK_NAMES else name
        mark = self.style.ok_mark if check["ok"] else self.style.fail_mark
        self.say(f"    {mark} {label}: {check['detail']}", "green" if check["ok"] else "red")

    def _opened(self, receiver: str, event: dict[str, Any]) -> Opened | None:
        actor = self.actor(receiver)
        log = actor.opened_log if actor is not None else None
        for opened in reversed(log or []):
            if opened.seq == event["seq"] and opened.sender_id == event["sender"]:
                return opened
        return None

    def _on_rejected(self, event: dict[str, Any]) -> None:
        lang = self.lang
        self.say()
        self.say(
            f"  {self.style.fail_mark} "
            + text("refused", lang, actor=self.name(event["actor"]), reason=event["reason"], detail=event["detail"])
            + f"   [{clock(event['t_s'])}]",
            "red",
        )
        for check in event.get("checks", ()):
            self._check_line(check)
        self.wait()

    def _on_timer(self, event: dict[str, Any]) -> None:
        lang = self.lang
        actor, timer = event["actor"], event["timer"]
        if actor == self.world.payment_center.party_id and timer in i18n.WINDOW_LAPSES:
            windows = self.world.scenario.windows
            window_s = {
                "confirm": windows.confirm_s,
                "ship": windows.ship_s,
                "accept": windows.accept_s,
                "refund": windows.refund_s,
                "dispute": self.world.payment_center.dispute_review_s,
            }[timer]
            if timer == "accept" and 8 not in self.steps_seen:
                self._enter_step(8, "lapse")
                self.say()
                self.say(f"{step_label('step', 8, lang)} {self.style.bullet} {i18n.SEED_STEPS[8][lang]}", "bold")
            line = i18n.words(i18n.WINDOW_LAPSES, timer, lang, window=duration(window_s, lang))
            self.say(f"  {self.style.bullet} {text('timer', lang)} [{clock(event['t_s'])}]: {line}", "yellow")
            return
        if timer in i18n.PARTY_TIMERS:
            line = i18n.words(i18n.PARTY_TIMERS, timer, lang, actor=actor)
        else:
            line = f"{actor}: {timer}"
        self.say(f"  {self.style.bullet} {text('timer', lang)} [{clock(event['t_s'])}]: {line}", "dim")

    def _on_ledger(self, event: dict[str, Any]) -> None:
        lang = self.lang
        op = event["op"]
        if op not in i18n.LEDGER_MOVES:
            self.say(f"  {self.style.bullet} {text('ledger', lang)}: {op} {yuan(event.get('amount_fen'), lang)}")
            return
        line = i18n.words(
            i18n.LEDGER_MOVES,
            op,
            lang,
            amount=yuan(event.get("amount_fen"), lang),
            customer=event.get("customer", "?"),
            merchant=event.get("merchant", "?"),
            points=event.get("points", 0),
        )
        self.say(f"  {self.style.bullet} {text('ledger', lang)}: {line}", "yellow")

    def _on_transition(self, event: dict[str, Any]) -> None:
        self.say(
            f"  {self.style.bullet} {text('escrow', self.lang)}: {event['before']} -> {event['after']}"
            f" ({event['event']})",
            "dim",
        )

    def _on_txn_opened(self, event: dict[str, Any]) -> None:
        self.say(
            f"  {self.style.bullet} "
            + text(
                "txn_opened",
                self.lang,
                contract_no=event["contract_no"],
                amount=yuan(event["amount_fen"], self.lang),
                customer=event["customer"],
                merchant=event["merchant"],
            )
        )

    def _on_parcel_sent(self, event: dict[str, Any]) -> None:
        self.say(
            f"  {self.style.bullet} "
            + text(
                "parcel",
                self.lang,
                sender=event["actor"],
                recipient=event["to"],
                transit=duration(event["transit_s"], self.lang),
            )
        )

    def _on_goods_arrived(self, event: dict[str, Any]) -> None:
        self.say(
            f"  {self.style.bullet} [{clock(event['t_s'])}] "
            + text("goods_arrived", self.lang, sender=event["sender"], actor=event["actor"])
        )

    def _on_rating(self, event: dict[str, Any]) -> None:
        self.say(
            f"  {self.style.bullet} "
            + text("rating", self.lang, rater=event["rater"], ratee=event["ratee"], stars=event["stars"]),
            "yellow",
        )

    def _on_restarted(self, event: dict[str, Any]) -> None:
        self.say(f"  {self.style.bullet} " + text("restarted", self.lang), "yellow")

    def _on_initialized(self, event: dict[str, Any]) -> None:
        self.say()
        self.say(text("init5", self.lang), "bold")
        self.initialized = True
        self.init_counters = dict(self.world.network.counters.as_dict())
        self.wait()
        customer = next(iter(self.world.customers))
        merchant = next(iter(self.world.merchants))
        self.heading(text("part_txn", self.lang) + f": {customer} -> {merchant}")

    # --- before and after ---------------------------------------------------------------

    def show_certificates(self) -> None:
        lang = self.lang
        self.heading(text("part_init", lang))
        self.say(text("init1", lang), "bold")
        world = self.world
        actors = sorted(world.actors(), key=lambda a: _PARTY_ROLES_ORDER.index(a.role))
        for actor in actors:
            cert = actor.identity.signing_cert
            key = cert.public_key()
            key_name = f"RSA-{key.key_size}" if hasattr(key, "key_size") else type(key).__name__.replace(
                "PublicKey", ""
            ).lstrip("_")
            der = len(cert.public_bytes(Encoding.DER))
            self.say(
                f"  {self.style.bullet} "
                + text(
                    "cert_line",
                    lang,
                    party=actor.party_id,
                    role=i18n.role_name(actor.role, lang),
                    number=actor.number,
                    key=key_name,
                    der=der,
                    start=cert.not_valid_before_utc.date().isoformat(),
                    end=cert.not_valid_after_utc.date().isoformat(),
                )
            )
        self.wait()

    def finish_steps(self) -> None:
        """After the run: the steps the transaction never reached."""
        for number in range(self.max_step + 1, 12):
            self._skipped(number, "not_reached")

    def show_end(self, summary: dict[str, Any]) -> None:
        lang = self.lang
        style = self.style
        lost = [sms for sms in self.all_sent if (sms.sender, sms.recipient, sms.seq) in self.sent]
        for sms in lost:
            self.say(
                "  "
                + text("lost", lang, sender=sms.sender, recipient=sms.recipient, type=sms.message_type, seq=sms.seq),
                "red",
            )
        self.heading(text("balances", lang))
        for txn in summary["transactions"]:
            auto = text("auto", lang) if txn["auto_accepted"] else ""
            outcome = i18n.OUTCOMES.get(txn["outcome"], {}).get(lang, txn["outcome"])
            self.say(f"  {style.bullet} " + text("outcome", lang, contract_no=txn["id"], outcome=outcome, auto=auto))
        opening = summary["opening"]
        for party_id, party in summary["parties"].items():
            if party["role"] not in ("customer", "merchant"):
                continue
            before = opening.get(party_id, {})
            card = (
                text("card", lang, before=yuan(before.get("bank_account"), lang), after=yuan(party["bank_account"], lang))
                if party["bank_account"] is not None
                else ""
            )
            points = text("points", lang, points=party["points"]) if party["points"] is not None else ""
            self.say(
                f"  {style.bullet} "
                + text(
                    "party_line",
                    lang,
                    party=party_id,
                    role=i18n.role_name(party["role"], lang),
                    wallet_name=text(f"wallet_{party['role']}", lang),
                    wallet_before=yuan(before.get("wallet"), lang),
                    wallet=yuan(party["wallet"], lang),
                    card=card,
                    points=points,
                    integrity=text("integrity", lang, points=party["integrity_points"]),
                    credit=text("credit", lang, score=party["credit_score"]),
                )
            )
        self.say(f"  {style.bullet} " + text("escrow_left", lang, amount=yuan(summary["escrow_fen"], lang)))
        self.say(f"  {style.bullet} " + text("invariants", lang))
        for name, ok in summary["invariants"].items():
            mark = style.ok_mark if ok else style.fail_mark
            self.say(f"    {mark} {name}: {text('holds' if ok else 'violated', lang)}", "green" if ok else "red")
        rejected = summary["security"]["rejected"]
        listed = ", ".join(f"{reason} {count}" for reason, count in rejected.items()) or text("none", lang)
        self.say(f"  {style.bullet} " + text("rejections", lang, list=listed))
        self._show_figures(summary)

    def _show_figures(self, summary: dict[str, Any]) -> None:
        lang = self.lang
        bullet = self.style.bullet
        self.heading(text("figures", lang))
        txn = summary["transactions"][0]
        self.say(
            f"  {bullet} "
            + text(
                "fig_steps",
                lang,
                messages=txn["messages"],
                parts=txn["sms_segments"],
                octets=txn["bytes"],
                duration=duration(txn["duration_s"], lang),
            )
        )
        init = self.init_counters
        self.say(
            f"  {bullet} "
            + text("fig_init", lang, messages=init.get("messages", 0), parts=init.get("sms_segments", 0), octets=init.get("bytes", 0))
        )
        sizes = [sms.envelope_bytes for sms in self.all_sent if sms.in_transaction]
        if sizes:
            self.say(
                f"  {bullet} "
                + text("fig_sizes", lang, smallest=min(sizes), largest=max(sizes), mean=round(sum(sizes) / len(sizes)))
            )
        parts = max((len(sms.parts) for sms in self.all_sent), default=0)
        if parts:
            loss = self.world.scenario.network.loss
            key = "fig_loss" if loss > 0 else "fig_loss_if"
            shown_loss = loss if loss > 0 else HYPOTHETICAL_LOSS
            whole = (1 - shown_loss) ** parts
            self.say(
                f"  {bullet} "
                + text(key, lang, loss=f"{shown_loss:.0%}", parts=parts, whole=f"{whole:.0%}")
            )
        per_party: dict[str, int] = {}
        for sms in self.all_sent:
            if sms.in_transaction:
                per_party[sms.sender] = per_party.get(sms.sender, 0) + 1
        self.say(f"  {bullet} " + text("fig_parties", lang, list=", ".join(f"{p} {n}" for p, n in per_party.items())))
        path = []
        for number in range(1, 12):
            how = self.steps_seen.get(number)
            mark = self.style.ok_mark if how else "-"
            path.append(f"{number} {mark}" + (" (lapse)" if how == "lapse" else ""))
        self.say(f"  {bullet} " + text("path", lang, list="  ".join(path)))


# --- the optional, INSECURE legacy-DES contrast -------------------------------------------------


def _des_key(key56: int) -> bytes:
    """A 56-bit DES key as 8 bytes, 7 key bits per byte and odd parity in the low bit."""
    out = bytearray()
    for i in range(8):
        seven = (key56 >> (49 - 7 * i)) & 0x7F
        byte = seven << 1
        out.append(byte | (bin(byte).count("1") + 1) % 2)
    return bytes(out)


def _des(key8: bytes) -> TripleDES:
    """Single DES, as the seed used it: TripleDES with K1 = K2 = K3 (EDE collapses to DES)."""
    return TripleDES(key8 * 3)


def des_cbc_encrypt(key8: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """INSECURE, demo only: DES-CBC with PKCS#7 padding."""
    padder = padding.PKCS7(64).padder()
    padded = padder.update(plaintext) + padder.finalize()
    encryptor = Cipher(_des(key8), modes.CBC(iv)).encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def des_cbc_decrypt(key8: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    decryptor = Cipher(_des(key8), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(64).unpadder()
    return unpadder.update(padded) + unpadder.finalize()


@dataclass(frozen=True)
class DesSearch:
    """The result of a real brute-force search over the low ``bits`` bits of a DES key."""

    bits: int
    tried: int
    found_key: bytes | None
    seconds: float

    @property
    def keys_per_s(self) -> float:
        return self.tried / self.seconds if self.seconds > 0 else float("inf")


def des_search(iv: bytes, ciphertext: bytes, known_block: bytes, key56_high: int, bits: int) -> DesSearch:
    """Try every value of the low ``bits`` bits of the key (the rest known): the key is the
    one under which the first ciphertext block decrypts to ``known_block``. The whole
    reduced space is searched (the worst case), so the rate is measured on a fixed amount
    of work; wall time is measured, never asserted."""
    first = ciphertext[:8]
    target = bytes(a ^ b for a, b in zip(known_block, iv, strict=True))  # CBC: D(C1) = P1 xor IV
    started = time.perf_counter()
    found = None
    for low in range(1 << bits):
        key8 = _des_key(key56_high | low)
        if Cipher(_des(key8), modes.ECB()).decryptor().update(first) == target and found is None:
            found = key8
    return DesSearch(bits=bits, tried=1 << bits, found_key=found, seconds=time.perf_counter() - started)


def legacy_des_section(narrator: Narrator, plaintext: bytes) -> None:
    """Encrypt ``plaintext`` with the seed's DES and show why that is no protection."""
    lang = narrator.lang
    words = i18n.DES_TEXTS
    bullet = narrator.style.bullet
    narrator.heading(i18n.words(words, "title", lang))
    key56 = int.from_bytes(os.urandom(7), "big")
    key8 = _des_key(key56)
    iv = os.urandom(8)
    ciphertext = des_cbc_encrypt(key8, iv, plaintext)
    assert des_cbc_decrypt(key8, iv, ciphertext) == plaintext
    narrator.say(f"  {bullet} " + i18n.words(words, "what", lang, plain=len(plaintext)), "red")
    narrator.say(
        f"  {bullet} " + i18n.words(words, "cipher", lang, size=len(ciphertext), hex=spaced_hex(ciphertext[:16])),
        "red",
    )
    narrator.say(f"  {bullet} " + i18n.words(words, "keyspace", lang, keys=f"{2**56:,}"))
    mask = (1 << DES_SEARCH_BITS) - 1
    search = des_search(iv, ciphertext, plaintext[:8], key56 & ~mask, DES_SEARCH_BITS)
    recovered = search.found_key is not None and des_cbc_decrypt(search.found_key, iv, ciphertext) == plaintext
    narrator.say(
        f"  {bullet} "
        + i18n.words(
            words,
            "search",
            lang,
            bits=search.bits,
            tried=search.tried,
            seconds=f"{search.seconds:.2f}",
            found=i18n.words(words, "found" if recovered else "not_found", lang),
        ),
        "red",
    )
    rate = search.keys_per_s
    years = 2**56 / rate / (365.25 * 86_400)
    narrator.say(f"  {bullet} " + i18n.words(words, "rate", lang, rate=f"{rate:,.0f}", years=f"{years:,.0f}"))
    narrator.say(
        f"  {bullet} " + i18n.words(words, "hardware", lang, days=f"{2**56 / DEEP_CRACK_KEYS_PER_S / 86_400:.1f}")
    )
    narrator.say(f"  {bullet} " + i18n.words(words, "moral", lang))


# --- running -------------------------------------------------------------------------------------


async def run_demo(
    scenario: Scenario,
    *,
    options: DemoOptions,
    out: TextIO | None = None,
    key_cache: KeyCache | None = None,
) -> int:
    """Run ``scenario``'s first transaction in a real (in-memory) world and narrate it.

    Returns 0 when every money invariant holds at the end, 1 when one does not.
    """
    out = out if out is not None else sys.stdout
    lang = options.lang
    demo_scenario, order_count = first_order_only(scenario)
    style = Style(
        color=options.color, unicode_ok=_unicode_ok(out), encoding=getattr(out, "encoding", None) or "utf-8"
    )
    world = await World.build(demo_scenario, None, key_cache=key_cache, keep_trace=True, record_plaintexts=True)
    narrator = Narrator(world, options, out, style)
    try:
        narrator.say(text("title", lang), "bold")
        narrator.say(text("scenario", lang, name=scenario.name, seed=scenario.seed, suite=scenario.suite))
        for line in scenario.description.strip().splitlines():
            narrator.say(f"  {line}", "dim")
        if order_count > 1:
            order = demo_scenario.orders[0]
            narrator.say(
                text("first_of_many", lang, count=order_count, customer=order.customer, merchant=order.merchant),
                "yellow",
            )
        narrator.show_certificates()
        world.network.add_tap(narrator.on_air)
        world.tracer.listeners.append(narrator.on_event)
        summary = await world.run()
        narrator.on_event({"kind": "_end", "i": -1, "t_s": world.kernel.now_s()})
        narrator.finish_steps()
        narrator.show_end(summary)
        if options.legacy_des:
            payment = narrator.plaintexts.get(m.MessageType.PAYMENT_REQUEST)
            if payment is not None:
                legacy_des_section(narrator, m.encode_message(payment))
    finally:
        await world.close()
    try:
        out.flush()
    except BrokenPipeError:
        narrator.closed = True
    if narrator.closed and out is sys.__stdout__:
        # Nobody reads any more: point stdout at /dev/null so that the interpreter's own
        # flush at exit does not complain about the broken pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    return 0 if all(summary["invariants"].values()) else 1


__all__ = [
    "DEFAULT_SCENARIO",
    "DemoOptions",
    "DesSearch",
    "Narrator",
    "clock",
    "content_lines",
    "des_cbc_decrypt",
    "des_cbc_encrypt",
    "des_search",
    "duration",
    "first_order_only",
    "legacy_des_section",
    "run_demo",
    "step_of",
    "yuan",
]
