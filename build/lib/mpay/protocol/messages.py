"""The protocol's messages: one strict pydantic model per SMS of the seed.

Every model is frozen, forbids extra fields, bounds every string and number, and
carries money as a positive integer of minor units (fen) with a currency. A message
knows its :class:`MessageType`; :func:`encode_message` / :func:`decode_message` turn
it into deterministic CBOR and back (the payload that the envelope signs).

Seed step -> message type is documented in ``docs/protocol.md``.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, NamedTuple, get_args, get_origin

import cbor2
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationError,
    WrapSerializer,
    model_validator,
)

from mpay.protocol.errors import MalformedMessage, MessageTooLarge

#: Largest CBOR payload accepted for one message (bytes). 255 SMS parts of 134 octets
#: is 34,170 octets for the whole envelope; the payload must leave room for COSE.
MAX_PAYLOAD_BYTES = 32_768


class MessageType(StrEnum):
    """Every message type, named after the seed step it implements."""

    # Initialization
    SHOP_REGISTRATION = "shop_registration"  # customer -> merchant (init 2)
    PHONE_CHECK = "phone_check"  # merchant -> customer (init 2)
    PHONE_CHECK_REPLY = "phone_check_reply"  # customer -> merchant (init 2)
    CUSTOMER_REGISTRATION = "customer_registration"  # customer -> payment center (init 3)
    CARD_BINDING = "card_binding"  # customer -> bank (init 3)
    MERCHANT_REGISTRATION = "merchant_registration"  # merchant -> payment center (init 4)
    REGISTRATION_ACK = "registration_ack"  # payment center / bank -> registrant (init 3, 4)
    # The transaction
    PURCHASE_REQUEST = "purchase_request"  # step 1
    ORDER_CONTRACT = "order_contract"  # step 2
    PAYMENT_REQUEST = "payment_request"  # step 3
    CONFIRMATION_REQUEST = "confirmation_request"  # step 4
    TOP_UP_INSTRUCTION = "top_up_instruction"  # step 5, customer -> bank
    TOP_UP_NOTICE = "top_up_notice"  # step 5, bank -> payment center
    TOP_UP_RECEIPT = "top_up_receipt"  # step 5, bank -> customer
    CONFIRMATION = "confirmation"  # step 5, customer -> payment center
    DECLINE = "decline"  # step 5 alternative, customer -> payment center
    PAYMENT_REFUSED = "payment_refused"  # step 4/5 end, payment center -> merchant
    SHIP_REQUEST = "ship_request"  # step 6
    SHIPMENT_NOTICE = "shipment_notice"  # step 7, merchant -> customer
    SHIPMENT_REPORT = "shipment_report"  # step 7, merchant -> payment center
    ACCEPTANCE = "acceptance"  # step 8, customer -> payment center
    REJECTION = "rejection"  # step 8, customer -> payment center and merchant
    SETTLEMENT_NOTICE = "settlement_notice"  # step 9
    REFUND_AGREEMENT = "refund_agreement"  # step 10, merchant -> payment center
    REFUND_NOTICE = "refund_notice"  # step 10, payment center -> customer / merchant
    DISPUTE_DECISION = "dispute_decision"  # extension, payment center -> both
    RATING = "rating"  # step 11
    POINTS_REDEMPTION = "points_redemption"  # step 11, customer -> payment center


class Message(BaseModel):
    """Base of every protocol message: strict, frozen, no extra fields."""

    # Bytes fields (nonces, digests) appear as hex in JSON (traces, interop vectors).
    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, ser_json_bytes="hex", val_json_bytes="hex"
    )

    TYPE: ClassVar[MessageType]
    #: The seed step the message implements ("init 2", "5", "extension"...), for docs/traces.
    STEP: ClassVar[str]
    #: Roles that may send / receive this message; the envelope layer checks them.
    SENDER_ROLES: ClassVar[frozenset[str]]
    RECIPIENT_ROLES: ClassVar[frozenset[str]]

    @property
    def message_type(self) -> MessageType:
        return self.TYPE


#: MessageType -> model class; filled by :func:`register`.
MESSAGE_MODELS: dict[MessageType, type[Message]] = {}


def register(cls: type[Message]) -> type[Message]:
    """Class decorator: make ``cls`` the model of its ``TYPE``."""
    if cls.TYPE in MESSAGE_MODELS:
        raise RuntimeError(f"two models for {cls.TYPE}")
    MESSAGE_MODELS[cls.TYPE] = cls
    return cls


class _KeptEncoder(threading.local):
    """One cbor2 encoder per thread, kept: ``cbor2.dumps`` spends about 3 µs per call
    setting one up, more than encoding a whole message takes. It collects the pieces written
    in a list and joins them once (anything with a ``write`` method will do; ``protocol``
    imports no I/O module)."""

    def __init__(self, canonical: bool) -> None:
        self.canonical = canonical
        self.pieces: list[bytes] = []
        self.write = self.pieces.append
        self.encoder = cbor2.CBOREncoder(self, canonical=canonical)

    def encode(self, obj: Any) -> bytes:
        self.pieces.clear()
        try:
            self.encoder.encode(obj)
        except BaseException:
            self.__init__(self.canonical)  # type: ignore[misc]  # a failed encoding may leave state behind
            raise
        return b"".join(self.pieces)


_canonical = _KeptEncoder(canonical=True)
#: writes maps in the order given: the deterministic encoding too when every map's keys are
#: already in deterministic order and the rest are integers, strings, booleans, null and
#: arrays (the canonical mode sorts each map by encoding every key apart, about half its time)
_in_order = _KeptEncoder(canonical=False)


def canonical_cbor(obj: Any) -> bytes:
    """``cbor2.dumps(obj, canonical=True)``, the same bytes and errors, faster."""
    return _canonical.encode(obj)


# --- reading deterministic CBOR directly -----------------------------------------------------
# cbor2 decodes and the canonical encoder checks; for the few item kinds our payloads and COSE
# headers hold, reading the bytes in Python does both at once, and a reader that accepts only
# shortest-form heads accepts exactly the deterministic encodings.

#: major types (pre-shifted): unsigned and negative integer, byte and text string, array, map
_UINT, _NINT, _BSTR, _TSTR, _ARRAY, _MAP = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
#: additional information 24..27 -> (bytes of argument that follow, smallest argument allowed)
_LONG_ARGUMENTS = {24: (1, 24), 25: (2, 0x100), 26: (4, 0x10000), 27: (8, 0x100000000)}
#: the simple values read: false, true, null
_SIMPLE_VALUES: dict[int, Any] = {0xF4: False, 0xF5: True, 0xF6: None}


def read_head(data: bytes, pos: int) -> tuple[int, int, int] | None:
    """(major type, argument, position after the head) of the item at ``pos``, or None when
    the head is not in its shortest form, is indefinite or reserved, or is cut off.
    (IndexError when ``pos`` is past the end.)"""
    initial = data[pos]
    argument = initial & 0x1F
    pos += 1
    if argument >= 24:
        long_form = _LONG_ARGUMENTS.get(argument)
        if long_form is None:
            return None
        size, smallest = long_form
        end = pos + size
        argument = int.from_bytes(data[pos:end], "big")
        if argument < smallest or end > len(data):
            return None
        pos = end
    return initial & 0xE0, argument, pos


def read_scalar(data: bytes, pos: int) -> tuple[Any, int] | None:
    """The integer, byte string, text string, boolean or null at ``pos``, exactly as cbor2
    decodes it, and the position after it; None for any other item, a head not in its
    shortest form, a cut-off item or invalid UTF-8. (IndexError when cut off at ``pos`` or
    right after it: callers catch it once for a whole structure.)"""
    initial = data[pos]
    if initial < 24:  # the commonest case, a small unsigned integer
        return initial, pos + 1
    if initial >= 0xE0:
        return (_SIMPLE_VALUES[initial], pos + 1) if initial in _SIMPLE_VALUES else None
    major = initial & 0xE0
    argument = initial & 0x1F
    if argument < 24:
        pos += 1
    elif argument == 24:  # one byte of argument follows
        argument = data[pos + 1]
        if argument < 24:
            return None
        pos += 2
    else:
        head = read_head(data, pos)
        if head is None:
            return None
        _, argument, pos = head
    if major == _UINT:
        return argument, pos
    if major == _NINT:
        return -1 - argument, pos
    end = pos + argument
    if major > _TSTR or end > len(data):
        return None
    if major == _BSTR:
        return data[pos:end], end
    try:
        return data[pos:end].decode("utf-8"), end
    except UnicodeDecodeError:
        return None


# --- the deterministic encoding of our own models, without sorting --------------------------

#: the types whose in-order and canonical encodings are the same bytes
_PLAIN_SCALARS = frozenset({str, int, bytes, bool, type(None)})


class _Layout(NamedTuple):
    """How a model's fields appear in its deterministic CBOR map."""

    model: type[BaseModel]
    #: every field, in deterministic key order (shorter encoded key first, then bytewise)
    names: tuple[str, ...]
    #: fields that hold an integer, string, boolean or null (checked value by value)
    scalars: tuple[str, ...]
    #: fields that hold one nested model, and fields that hold a tuple of them
    parts: tuple[tuple[str, _Layout], ...]
    part_tuples: tuple[tuple[str, _Layout], ...]
    #: the map's head, and per field in order: (name, its key's encoding, the layout of the
    #: nested model or None, whether it is a tuple of them)
    map_head: bytes
    entries: tuple[tuple[str, bytes, _Layout | None, bool], ...]


def _key_order(name: str) -> tuple[int, bytes]:
    """The sort key cbor2's canonical mode gives a map key: its encoding's length, then its bytes."""
    encoded = cbor2.dumps(name)
    return len(encoded), encoded


def _model_in(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _layout_of(cls: type[BaseModel]) -> _Layout | None:
    """The layout of ``cls``; None when ``model_dump`` would not give its fields as they are
    (a serializer, an excluded or computed field) or a field holds a tuple of non-models."""
    decorators = cls.__pydantic_decorators__
    if (
        decorators.field_serializers
        or decorators.model_serializers
        or cls.model_computed_fields
        or cls.model_config.get("serialize_by_alias")
    ):
        return None
    scalars: list[str] = []
    nested: dict[str, tuple[_Layout, bool]] = {}
    for name, field in cls.model_fields.items():
        if (
            field.exclude
            or getattr(field, "exclude_if", None) is not None
            or any(isinstance(meta, (PlainSerializer, WrapSerializer)) for meta in field.metadata)
        ):
            return None
        annotation = field.annotation
        args = get_args(annotation)
        part = _model_in(annotation)
        is_tuple = part is None and get_origin(annotation) is tuple and len(args) == 2 and args[1] is Ellipsis
        if is_tuple:
            part = _model_in(args[0])
            if part is None:
                return None
        if part is None:  # its values are checked one by one: anything but a plain scalar takes the general path
            scalars.append(name)
            continue
        part_layout = _layout_of(part)
        if part_layout is None:
            return None
        nested[name] = (part_layout, is_tuple)
    names = tuple(sorted(cls.model_fields, key=_key_order))
    return _Layout(
        model=cls,
        names=names,
        scalars=tuple(scalars),
        parts=tuple((name, layout) for name, (layout, is_tuple) in nested.items() if not is_tuple),
        part_tuples=tuple((name, layout) for name, (layout, is_tuple) in nested.items() if is_tuple),
        map_head=bytes((_MAP | len(names),)) if len(names) < 24 else b"",  # b"": never read directly
        entries=tuple((name, cbor2.dumps(name), *nested.get(name, (None, False))) for name in names),
    )


def _plain_fields(model: BaseModel, layout: _Layout) -> dict[str, Any] | None:
    """``model.model_dump()`` with every map's keys in deterministic order, or None when a
    value is not of the plain types the layout expects (then the general path encodes)."""
    if type(model) is not layout.model:
        return None
    values = model.__dict__
    try:
        out = {name: values[name] for name in layout.names}
    except KeyError:  # a field never set (model_construct)
        return None
    for name in layout.scalars:
        if type(out[name]) not in _PLAIN_SCALARS:
            return None
    for name, part_layout in layout.parts:
        nested = _plain_fields(out[name], part_layout)
        if nested is None:
            return None
        out[name] = nested
    for name, part_layout in layout.part_tuples:
        items = out[name]
        if type(items) is not tuple:
            return None
        plain_items = []
        for item in items:
            nested = _plain_fields(item, part_layout)
            if nested is None:
                return None
            plain_items.append(nested)
        out[name] = plain_items
    return out


def _read_fields(payload: bytes, pos: int, layout: _Layout) -> tuple[dict[str, Any], int] | None:
    """The map at ``pos`` when it is exactly what :func:`_encode_model` writes for some
    instance of the layout's model, decoded as cbor2 decodes it, and the position after it;
    None for anything else. (IndexError when cut off.)"""
    if not layout.map_head or not payload.startswith(layout.map_head, pos):
        return None
    pos += 1
    fields: dict[str, Any] = {}
    for name, key_item, part_layout, is_tuple in layout.entries:
        if not payload.startswith(key_item, pos):
            return None
        pos += len(key_item)
        if part_layout is None:
            read = read_scalar(payload, pos)
        elif is_tuple:
            read = _read_parts(payload, pos, part_layout)
        else:
            start = pos
            read = _read_fields(payload, pos, part_layout)
            if read is not None and part_layout.model in _SHARED_PART_MODELS:
                fields[name], pos = _shared_part(payload[start:read[1]], part_layout.model, read[0]), read[1]
                continue
        if read is None:
            return None
        fields[name], pos = read
    return fields, pos


#: deterministic encoding -> the live part it encodes. Each party of a transaction keeps the
#: contract until the transaction closes; one object instead of a copy per party (and one
#: validation instead of one per message carrying it) is a third of the memory an open
#: transaction holds. Weak: an entry goes when the last party lets go of the contract.
_PARTS_BY_ENCODING: weakref.WeakValueDictionary[bytes, BaseModel] = weakref.WeakValueDictionary()


def _shared_part(encoding: bytes, model: type[BaseModel], fields: dict[str, Any]) -> Any:
    """The part these bytes encode: the live one if any, else validated from ``fields`` and
    kept. A part that fails validation stays a dict, so the message's own validation reports
    it with its place in the message."""
    part = _PARTS_BY_ENCODING.get(encoding)
    if part is None:
        try:
            part = model.model_validate(fields)
        except ValidationError:
            return fields
        _PARTS_BY_ENCODING[encoding] = part
    return part


def _share_sent_part(encoding: bytes, part: BaseModel, fields: dict[str, Any]) -> None:
    """Let the readers of ``encoding`` share the sender's own ``part``, when reading those
    bytes would give an equal part. Validated first: a sender may have built it unchecked
    (``model_construct``), and a reader must never get what it would have refused."""
    if encoding in _PARTS_BY_ENCODING:
        return
    try:
        read = type(part).model_validate(fields)
    except ValidationError:
        return  # the reader's own validation reports it
    _PARTS_BY_ENCODING[encoding] = part if read == part else read


def _read_parts(payload: bytes, pos: int, layout: _Layout) -> tuple[list[dict[str, Any]], int] | None:
    """An array of maps each read by :func:`_read_fields`, as a list (cbor2 decodes arrays
    as lists), and the position after it; None for anything else."""
    head = read_head(payload, pos)
    if head is None or head[0] != _ARRAY:
        return None
    _, count, pos = head
    items = []
    for _ in range(count):  # each item takes at least a byte: bounded by the payload
        read = _read_fields(payload, pos, layout)
        if read is None:
            return None
        item, pos = read
        items.append(item)
    return items, pos


#: model class -> its layout; filled below for every registered model and the contract
_LAYOUTS: dict[type[BaseModel], _Layout] = {}


def _encode_model(model: BaseModel) -> bytes:
    """Deterministic CBOR of a model's fields: written in order from a prepared layout, or
    by the canonical encoder from ``model_dump`` (the same bytes)."""
    layout = _LAYOUTS.get(type(model))
    if layout is not None:
        fields = _plain_fields(model, layout)
        if fields is not None:
            for name, part_layout in layout.parts:
                if part_layout.model in _SHARED_PART_MODELS:
                    _share_sent_part(_in_order.encode(fields[name]), getattr(model, name), fields[name])
            return _in_order.encode(fields)
    return canonical_cbor(model.model_dump(mode="python"))


def encode_message(message: Message) -> bytes:
    """Deterministic CBOR (RFC 8949 §4.2) of the message's fields."""
    return _encode_model(message)


def _read_payload(payload: bytes, layout: _Layout | None) -> dict[str, Any] | None:
    """A payload laid out as sealing writes it, read directly; None for anything else."""
    if layout is None or type(payload) is not bytes:
        return None
    try:
        read = _read_fields(payload, 0, layout)
    except IndexError:  # cut off
        return None
    return read[0] if read is not None and read[1] == len(payload) else None


def decode_message(message_type: MessageType | str, payload: bytes) -> Message:
    """Parse and validate a payload as ``message_type``; any flaw is :class:`MalformedMessage`."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise MessageTooLarge(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        # a MessageType is a str: its value finds the model without building the enum member
        model = MESSAGE_MODELS[message_type]  # type: ignore[index]
    except (KeyError, TypeError) as exc:
        raise MalformedMessage(f"unknown message type {message_type!r}") from exc
    # One encoding per message: trailing bytes, unsorted keys, long-form integers or
    # indefinite lengths would give one message several signed forms. A payload laid out as
    # sealing writes it is read directly (which accepts only that); anything else is decoded
    # by cbor2 and must be exactly what the canonical encoder writes for it.
    data: Any = _read_payload(payload, _LAYOUTS.get(model))
    if data is None:
        try:
            data = cbor2.loads(payload)
            canonical = canonical_cbor(data)
        except Exception as exc:  # cbor2 raises several types; all mean malformed
            raise MalformedMessage(f"payload is not CBOR: {exc}") from exc
        if canonical != payload:
            raise MalformedMessage("payload is not deterministic CBOR (RFC 8949 section 4.2)")
        if not isinstance(data, dict):
            raise MalformedMessage("payload is not a CBOR map")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise MalformedMessage(f"{message_type}: {loc}: {first['msg']}") from exc


# --- the models ---------------------------------------------------------------------------
# (one class per MessageType, each decorated with @register)

#: The parties' roles, as certificates carry them.
ROLES: frozenset[str] = frozenset({"customer", "merchant", "payment_center", "bank", "authority"})

# --- named limits ----------------------------------------------------------------------------
#: Largest amount in one message, in fen (10**12 fen = 10 billion yuan).
MAX_AMOUNT_FEN = 10**12
#: Largest points figure (integrity or loyalty points) in one message.
MAX_POINTS = 10**12
#: Goods lines per purchase request or contract.
MAX_ITEMS = 20
#: Quantity of one goods line.
MAX_QUANTITY = 999
#: Longest name (person, shop, goods).
MAX_NAME_CHARS = 64
#: Longest goods specification.
MAX_SPEC_CHARS = 128
#: Longest postal address.
MAX_ADDRESS_CHARS = 200
#: Longest free text (decline and rejection explanations, decisions).
MAX_TEXT_CHARS = 280
#: Longest rating comment (the issue asks for 140).
MAX_COMMENT_CHARS = 140
#: Longest identifier (contract number, top-up id, tracking number, ...).
MAX_REF_CHARS = 40
#: Largest window a message announces (one year, seconds).
MAX_WINDOW_S = 366 * 24 * 3600
#: Largest Unix time a message carries (2**32 - 1: the year 2106).
MAX_UNIX_S = 2**32 - 1
#: Phone-check nonce length bounds (bytes).
MIN_NONCE_BYTES = 16
MAX_NONCE_BYTES = 32
#: SHA-256 digest length (bytes).
DIGEST_BYTES = 32
#: The only currency of this protocol: the phone-fee balance is held in yuan (fen).
CURRENCY = "CNY"

# --- constrained field types -------------------------------------------------------------------
#: A party id: lower-case, as in the certificates' CN ("alice", "shop", "mpc", "customer-0007").
PartyId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,31}$")]
#: Contract numbers, top-up ids, tracking numbers, order references: letters, digits, "-_.:".
Ref = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")]
ContractNo = Ref
#: E.164-ish: optional "+", 5 to 15 digits (mainland mobile numbers have 11).
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9]{5,15}$")]
#: Landline with optional area-code hyphen, e.g. "010-12345678".
Landline = Annotated[str, StringConstraints(pattern=r"^[0-9][0-9-]{4,19}$")]
#: Bank card numbers (PAN): 12 to 19 digits.
CardNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{12,19}$")]
#: Card password: 6 digits, as Chinese bank cards use.
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
#: Chinese postcode: 6 digits.
Postcode = Annotated[str, StringConstraints(pattern=r"^[0-9]{6}$")]
#: Resident ID number: 18 characters, 17 digits and a check character (digit or X).
#: The check character is not verified (simulated people need not have real numbers).
IdNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{17}[0-9X]$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME_CHARS)]
Spec = Annotated[str, StringConstraints(max_length=MAX_SPEC_CHARS)]
Address = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ADDRESS_CHARS)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
Comment = Annotated[str, StringConstraints(max_length=MAX_COMMENT_CHARS)]
#: A positive amount of money in fen.
AmountFen = Annotated[int, Field(gt=0, le=MAX_AMOUNT_FEN)]
#: A balance or fee in fen: may be zero.
BalanceFen = Annotated[int, Field(ge=0, le=MAX_AMOUNT_FEN)]
Quantity = Annotated[int, Field(ge=1, le=MAX_QUANTITY)]
Points = Annotated[int, Field(ge=0, le=MAX_POINTS)]
UnixS = Annotated[int, Field(ge=0, le=MAX_UNIX_S)]
WindowS = Annotated[int, Field(gt=0, le=MAX_WINDOW_S)]
Nonce = Annotated[bytes, Field(min_length=MIN_NONCE_BYTES, max_length=MAX_NONCE_BYTES)]
Digest = Annotated[bytes, Field(min_length=DIGEST_BYTES, max_length=DIGEST_BYTES)]
#: Currency: a Literal, not an Enum, so strict mode accepts the ``str`` that CBOR decodes.
Currency = Literal["CNY"]

ShippingMethod = Literal["surface", "express"]
#: Why a customer rejects goods at step 8.
RejectionReason = Literal["not_as_described", "damaged", "wrong_item", "not_received", "other"]
#: Why a customer declines a contract at step 5.
DeclineReason = Literal["changed_mind", "balance_short", "contract_wrong", "other"]
#: Why the payment center refuses a payment (steps 3-6): also the escrow's decline reasons.
RefusalReason = Literal[
    "customer_declined", "confirmation_timeout", "insufficient_funds", "credit_policy"
]
#: Why the payment center refunds: also the escrow's refund reasons.
RefundReason = Literal["rejected", "not_shipped", "dispute"]
#: Why the bank refused a top-up.
TopUpRefusal = Literal["insufficient_funds", "wrong_pin", "unknown_card", "card_not_bound"]
DisputeOutcome = Literal["refund", "settle"]


def _must_be_true(value: bool) -> bool:
    if value is not True:
        raise ValueError("must be true")
    return value


#: A statement that must be made (true). Not ``Literal[True]``: that would accept 1 as well.
Yes = Annotated[bool, AfterValidator(_must_be_true)]


def _list_to_tuple(value: Any) -> Any:
    """CBOR decodes arrays as lists; the models keep tuples (immutable, hashable)."""
    return tuple(value) if isinstance(value, list) else value


class _Part(BaseModel):
    """A nested part of a message (not a message itself): same strictness."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, ser_json_bytes="hex", val_json_bytes="hex"
    )


class Item(_Part):
    """One goods line: name, specification, quantity, unit price (seed steps 1 and 2)."""

    name: Name
    specification: Spec = ""
    quantity: Quantity
    unit_price_fen: AmountFen

    @property
    def subtotal_fen(self) -> int:
        return self.quantity * self.unit_price_fen


Items = Annotated[
    tuple[Item, ...], BeforeValidator(_list_to_tuple), Field(min_length=1, max_length=MAX_ITEMS)
]


def _items_total_fen(items: tuple[Item, ...]) -> int:
    return sum(item.subtotal_fen for item in items)


class Contract(_Part):
    """The order contract (step 2): embedded unchanged in steps 2, 3 and 4.

    ``total_fen`` must equal the goods plus the shipping fee, so a contract whose sum does
    not add up is malformed rather than a matter of opinion.
    """

    contract_no: ContractNo
    merchant_id: PartyId
    customer_no: Ref
    items: Items
    shipping_method: ShippingMethod
    shipping_fee_fen: BalanceFen = 0
    total_fen: AmountFen
    currency: Currency
    delivery_address: Address

    @model_validator(mode="after")
    def _total_adds_up(self) -> Contract:
        expected = _items_total_fen(self.items) + self.shipping_fee_fen
        if self.total_fen != expected:
            raise ValueError(f"total_fen {self.total_fen} != goods + shipping {expected}")
        return self


def contract_digest(contract: Contract) -> bytes:
    """SHA-256 of the contract's deterministic CBOR: what the customer confirms (step 5)."""
    return hashlib.sha256(_encode_model(contract)).digest()


def contract_no_of(message: Message) -> str | None:
    """The contract number a message is about, or None (registration, redemption, purchase).

    The envelope binds this value under the signature.
    """
    # a registered model looks only where it has fields: a missing attribute costs pydantic
    # an AttributeError raised and caught
    has_number, has_contract = _CONTRACT_NO_FIELDS.get(type(message), (True, True))
    if has_number:
        value = getattr(message, "contract_no", None)
        if isinstance(value, str):
            return value
    if has_contract:
        contract = getattr(message, "contract", None)
        if isinstance(contract, Contract):
            return contract.contract_no
    return None


def _roles(*names: str) -> frozenset[str]:
    roles = frozenset(names)
    assert roles <= ROLES, roles - ROLES
    return roles


_CUSTOMER = _roles("customer")
_MERCHANT = _roles("merchant")
_CENTER = _roles("payment_center")
_BANK = _roles("bank")
_PARTIES = _roles("customer", "merchant")


# --- initialization ----------------------------------------------------------------------------


@register
class ShopRegistration(Message):
    """Init 2: the customer opens an account at the shop, paying by phone fee from ``phone``."""

    TYPE: ClassVar[MessageType] = MessageType.SHOP_REGISTRATION
    STEP: ClassVar[str] = "init 2"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _MERCHANT

    customer_no: Ref
    phone: Phone
    payment_method: Literal["phone_fee"]


@register
class PhoneCheck(Message):
    """Init 2: the merchant checks by SMS that the customer holds the phone: echo the nonce."""

    TYPE: ClassVar[MessageType] = MessageType.PHONE_CHECK
    STEP: ClassVar[str] = "init 2"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CUSTOMER

    customer_no: Ref
    nonce: Nonce


@register
class PhoneCheckReply(Message):
    """Init 2: the handset echoes the merchant's nonce, proving it receives SMS at the number."""

    TYPE: ClassVar[MessageType] = MessageType.PHONE_CHECK_REPLY
    STEP: ClassVar[str] = "init 2"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _MERCHANT

    customer_no: Ref
    nonce: Nonce


@register
class CustomerRegistration(Message):
    """Init 3: real-name phone data at the payment center."""

    TYPE: ClassVar[MessageType] = MessageType.CUSTOMER_REGISTRATION
    STEP: ClassVar[str] = "init 3"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    phone: Phone
    name: Name
    id_number: IdNumber
    landline: Landline
    address: Address
    postcode: Postcode


@register
class CardBinding(Message):
    """Init 3: bind the phone to a bank card. Card number and PIN go to the bank only."""

    TYPE: ClassVar[MessageType] = MessageType.CARD_BINDING
    STEP: ClassVar[str] = "init 3"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _BANK

    card_number: CardNumber = Field(repr=False)
    pin: Pin = Field(repr=False)
    phone: Phone
    name: Name


@register
class MerchantRegistration(Message):
    """Init 4: the merchant registers at the payment center."""

    TYPE: ClassVar[MessageType] = MessageType.MERCHANT_REGISTRATION
    STEP: ClassVar[str] = "init 4"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    merchant_id: PartyId
    shop_name: Name
    phone: Phone
    address: Address


@register
class RegistrationAck(Message):
    """Init 2-4: the registrar's answer (shop, payment center or bank)."""

    TYPE: ClassVar[MessageType] = MessageType.REGISTRATION_ACK
    STEP: ClassVar[str] = "init 2-4"
    SENDER_ROLES: ClassVar[frozenset[str]] = _roles("merchant", "payment_center", "bank")
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _PARTIES

    registration: Literal["shop", "customer", "merchant", "card_binding"]
    status: Literal["accepted", "refused"]
    reason: Text = ""


# --- the transaction ---------------------------------------------------------------------------


@register
class PurchaseRequest(Message):
    """Step 1: the customer's order. No contract number exists yet: ``order_ref`` (chosen by
    the handset) lets the customer match the merchant's contract to this request."""

    TYPE: ClassVar[MessageType] = MessageType.PURCHASE_REQUEST
    STEP: ClassVar[str] = "1"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _MERCHANT

    order_ref: Ref
    customer_no: Ref
    items: Items
    purchased_unix_s: UnixS
    delivery_address: Address
    payment_method: Literal["phone_fee"]

    @model_validator(mode="after")
    def _bounded_total(self) -> PurchaseRequest:
        if _items_total_fen(self.items) > MAX_AMOUNT_FEN:
            raise ValueError(f"order total exceeds {MAX_AMOUNT_FEN} fen")
        return self


@register
class OrderContract(Message):
    """Step 2: the merchant's contract with its unique number, answering ``order_ref``."""

    TYPE: ClassVar[MessageType] = MessageType.ORDER_CONTRACT
    STEP: ClassVar[str] = "2"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CUSTOMER

    order_ref: Ref
    contract: Contract


class _AboutContract(Message):
    """A message that names its contract by number, with the same number inside if embedded."""

    @model_validator(mode="after")
    def _numbers_agree(self) -> _AboutContract:
        contract = getattr(self, "contract", None)
        number = getattr(self, "contract_no", None)
        if isinstance(contract, Contract) and contract.contract_no != number:
            raise ValueError(f"contract_no {number!r} != contract.contract_no")
        return self


@register
class PaymentRequest(_AboutContract):
    """Step 3: the merchant asks the payment center to collect the contract's total."""

    TYPE: ClassVar[MessageType] = MessageType.PAYMENT_REQUEST
    STEP: ClassVar[str] = "3"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo
    contract: Contract
    customer_phone: Phone


@register
class ConfirmationRequest(_AboutContract):
    """Step 4: the contract and the phone-fee balance; ``shortfall_fen`` > 0 is the warning."""

    TYPE: ClassVar[MessageType] = MessageType.CONFIRMATION_REQUEST
    STEP: ClassVar[str] = "4"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CENTER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CUSTOMER

    contract_no: ContractNo
    contract: Contract
    balance_fen: BalanceFen
    shortfall_fen: BalanceFen
    confirm_window_s: WindowS

    @model_validator(mode="after")
    def _shortfall_is_consistent(self) -> ConfirmationRequest:
        expected = max(0, self.contract.total_fen - self.balance_fen)
        if self.shortfall_fen != expected:
            raise ValueError(f"shortfall_fen {self.shortfall_fen} != {expected}")
        return self

    @property
    def balance_short(self) -> bool:
        """The seed's warning: the balance does not cover the contract."""
        return self.shortfall_fen > 0


@register
class TopUpInstruction(Message):
    """Step 5 (balance short): the customer tells the bank to move money from the card to
    the phone-fee account. Card number and PIN go to the bank only."""

    TYPE: ClassVar[MessageType] = MessageType.TOP_UP_INSTRUCTION
    STEP: ClassVar[str] = "5"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _BANK

    top_up_id: Ref
    contract_no: ContractNo
    command: Literal["top_up_phone_fee"]
    card_number: CardNumber = Field(repr=False)
    pin: Pin = Field(repr=False)
    customer_phone: Phone
    amount_fen: AmountFen
    currency: Currency


@register
class TopUpNotice(Message):
    """Step 5: the bank tells the payment center to credit the customer's phone-fee wallet."""

    TYPE: ClassVar[MessageType] = MessageType.TOP_UP_NOTICE
    STEP: ClassVar[str] = "5"
    SENDER_ROLES: ClassVar[frozenset[str]] = _BANK
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    top_up_id: Ref
    contract_no: ContractNo
    customer_phone: Phone
    amount_fen: AmountFen
    currency: Currency


@register
class TopUpReceipt(Message):
    """Step 5: the bank's answer to the customer: credited, or refused with a reason."""

    TYPE: ClassVar[MessageType] = MessageType.TOP_UP_RECEIPT
    STEP: ClassVar[str] = "5"
    SENDER_ROLES: ClassVar[frozenset[str]] = _BANK
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CUSTOMER

    top_up_id: Ref
    contract_no: ContractNo
    amount_fen: AmountFen
    currency: Currency
    status: Literal["credited", "refused"]
    refusal_reason: TopUpRefusal | None = None

    @model_validator(mode="after")
    def _reason_iff_refused(self) -> TopUpReceipt:
        if (self.status == "refused") != (self.refusal_reason is not None):
            raise ValueError("refusal_reason is required exactly when status is 'refused'")
        return self


@register
class Confirmation(Message):
    """Step 5: the customer confirms the contract whose SHA-256 digest it names."""

    TYPE: ClassVar[MessageType] = MessageType.CONFIRMATION
    STEP: ClassVar[str] = "5"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo
    contract_digest: Digest


@register
class Decline(Message):
    """Step 5 alternative: the customer refuses the contract; no money moves."""

    TYPE: ClassVar[MessageType] = MessageType.DECLINE
    STEP: ClassVar[str] = "5"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo
    reason: DeclineReason
    text: Text = ""


@register
class PaymentRefused(Message):
    """Steps 3-6 end: the payment center tells the merchant (and customer) no payment comes."""

    TYPE: ClassVar[MessageType] = MessageType.PAYMENT_REFUSED
    STEP: ClassVar[str] = "4-6"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CENTER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _PARTIES

    contract_no: ContractNo
    reason: RefusalReason


@register
class ShipRequest(Message):
    """Step 6: the payment is held; the merchant should ship within ``ship_window_s``."""

    TYPE: ClassVar[MessageType] = MessageType.SHIP_REQUEST
    STEP: ClassVar[str] = "6"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CENTER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _MERCHANT

    contract_no: ContractNo
    held_fen: AmountFen
    currency: Currency
    ship_window_s: WindowS


@register
class ShipmentNotice(Message):
    """Step 7: the merchant tells the customer the goods are on their way."""

    TYPE: ClassVar[MessageType] = MessageType.SHIPMENT_NOTICE
    STEP: ClassVar[str] = "7"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CUSTOMER

    contract_no: ContractNo
    shipping_method: ShippingMethod
    tracking_no: Ref
    shipped_unix_s: UnixS


@register
class ShipmentReport(Message):
    """Step 7: the merchant reports "shipped" to the payment center."""

    TYPE: ClassVar[MessageType] = MessageType.SHIPMENT_REPORT
    STEP: ClassVar[str] = "7"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo
    status: Literal["shipped"]
    shipping_method: ShippingMethod
    tracking_no: Ref
    shipped_unix_s: UnixS


@register
class Acceptance(Message):
    """Step 8: "transaction succeeded": the goods passed inspection."""

    TYPE: ClassVar[MessageType] = MessageType.ACCEPTANCE
    STEP: ClassVar[str] = "8"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo


@register
class Rejection(Message):
    """Step 8: "transaction failed": the goods go back; the reason goes to both parties."""

    TYPE: ClassVar[MessageType] = MessageType.REJECTION
    STEP: ClassVar[str] = "8"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _roles("payment_center", "merchant")

    contract_no: ContractNo
    reason: RejectionReason
    text: Text = ""
    return_tracking_no: Ref | None = None


@register
class SettlementNotice(Message):
    """Step 9: the held amount went to the merchant; the customer earned loyalty points."""

    TYPE: ClassVar[MessageType] = MessageType.SETTLEMENT_NOTICE
    STEP: ClassVar[str] = "9"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CENTER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _PARTIES

    contract_no: ContractNo
    amount_fen: AmountFen
    currency: Currency
    points_awarded: Points
    auto_accepted: bool


@register
class RefundAgreement(Message):
    """Step 10: the merchant received the returned goods and agrees to the refund."""

    TYPE: ClassVar[MessageType] = MessageType.REFUND_AGREEMENT
    STEP: ClassVar[str] = "10"
    SENDER_ROLES: ClassVar[frozenset[str]] = _MERCHANT
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo
    returned_goods_received: Yes
    agrees_to_refund: Yes


@register
class RefundNotice(Message):
    """Step 10: the held amount went back to the customer's phone-fee wallet."""

    TYPE: ClassVar[MessageType] = MessageType.REFUND_NOTICE
    STEP: ClassVar[str] = "10"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CENTER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _PARTIES

    contract_no: ContractNo
    amount_fen: AmountFen
    currency: Currency
    reason: RefundReason


@register
class DisputeDecision(Message):
    """EXTENSION: the payment center decides a dispute (refund window lapsed)."""

    TYPE: ClassVar[MessageType] = MessageType.DISPUTE_DECISION
    STEP: ClassVar[str] = "extension"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CENTER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _PARTIES

    contract_no: ContractNo
    decision: DisputeOutcome
    text: Text = ""


@register
class Rating(Message):
    """Step 11: one party rates the other on the transaction-record site."""

    TYPE: ClassVar[MessageType] = MessageType.RATING
    STEP: ClassVar[str] = "11"
    SENDER_ROLES: ClassVar[frozenset[str]] = _PARTIES
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    contract_no: ContractNo
    ratee_id: PartyId
    stars: Annotated[int, Field(ge=1, le=5)]
    comment: Comment = ""


@register
class PointsRedemption(Message):
    """Step 11: the customer turns loyalty points into discounted phone fee."""

    TYPE: ClassVar[MessageType] = MessageType.POINTS_REDEMPTION
    STEP: ClassVar[str] = "11"
    SENDER_ROLES: ClassVar[frozenset[str]] = _CUSTOMER
    RECIPIENT_ROLES: ClassVar[frozenset[str]] = _CENTER

    redemption_id: Ref
    points: Annotated[int, Field(gt=0, le=MAX_POINTS)]


#: Message types whose payload carries bank-card secrets: only the bank may receive them.
CARD_SECRET_TYPES: frozenset[MessageType] = frozenset(
    {MessageType.CARD_BINDING, MessageType.TOP_UP_INSTRUCTION}
)

_missing = set(MessageType) - set(MESSAGE_MODELS)
assert not _missing, f"message types without a model: {sorted(_missing)}"

#: registered model -> whether it has a ``contract_no`` and a ``contract`` (field or attribute)
_CONTRACT_NO_FIELDS: dict[type, tuple[bool, bool]] = {
    cls: tuple(name in cls.model_fields or hasattr(cls, name) for name in ("contract_no", "contract"))  # type: ignore[misc]
    for cls in MESSAGE_MODELS.values()
}
#: frozen parts that every party of a transaction holds (the contract): one object per
#: encoding, shared by whoever built or read those exact bytes (see _PARTS_BY_ENCODING)
_SHARED_PART_MODELS: frozenset[type[BaseModel]] = frozenset({Contract})
for _cls in (*MESSAGE_MODELS.values(), Contract):
    _layout = _layout_of(_cls)
    if _layout is not None:
        _LAYOUTS[_cls] = _layout
