"""The message models: strict, bounded, CBOR round trip, roles, secrets, samples."""

from __future__ import annotations

import contextlib
import re
import types
import warnings
from collections.abc import Iterator
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import cbor2
import pytest
from annotated_types import Ge, Gt, Le, Lt, MaxLen, MinLen
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, StringConstraints

from mpay.protocol import messages as m
from mpay.protocol.errors import MalformedMessage, MessageTooLarge
from mpay.protocol.messages import (
    MAX_AMOUNT_FEN,
    MAX_ITEMS,
    MESSAGE_MODELS,
    ROLES,
    Contract,
    Item,
    MessageType,
    contract_digest,
    contract_no_of,
    decode_message,
    encode_message,
)
from mpay.protocol.samples import CONTRACT, CONTRACT_NO, all_samples, sample_message

ALL_TYPES = list(MessageType)
FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _cbor(data: Any) -> bytes:
    return cbor2.dumps(data, canonical=True)


def _dump(message: m.Message) -> dict[str, Any]:
    return message.model_dump(mode="python")


# --- strategies built from the models' own constraints ----------------------------------------


def _bounds(metadata: list[Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for meta in metadata:
        if isinstance(meta, Ge):
            out["min_value"] = meta.ge
        elif isinstance(meta, Gt):
            out["min_value"] = meta.gt + 1
        elif isinstance(meta, Le):
            out["max_value"] = meta.le
        elif isinstance(meta, Lt):
            out["max_value"] = meta.lt - 1
        elif isinstance(meta, MinLen):
            out["min_size"] = meta.min_length
        elif isinstance(meta, MaxLen):
            out["max_size"] = meta.max_length
        elif isinstance(meta, StringConstraints):
            if meta.pattern:
                out["pattern"] = meta.pattern
            if meta.min_length is not None:
                out["min_size"] = meta.min_length
            if meta.max_length is not None:
                out["max_size"] = meta.max_length
    return out


def _unwrap(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    if get_origin(annotation) is Annotated:
        base, *meta = get_args(annotation)
        return _unwrap(base, [*meta, *metadata])
    return annotation, metadata


def strategy_for(annotation: Any, metadata: list[Any]) -> st.SearchStrategy[Any]:
    """A strategy of valid values for one field, from its type and pydantic constraints."""
    annotation, metadata = _unwrap(annotation, metadata)
    origin = get_origin(annotation)
    b = _bounds(metadata)
    if origin in (Union, types.UnionType):
        return st.one_of(
            [st.none() if a is type(None) else strategy_for(a, metadata) for a in get_args(annotation)]
        )
    if origin is Literal:
        return st.sampled_from(get_args(annotation))
    if annotation is bool:
        return st.booleans()
    if annotation is int:
        return st.integers(b.get("min_value"), b.get("max_value"))
    if annotation is str:
        if "pattern" in b:
            return st.from_regex(b["pattern"], fullmatch=True)
        return st.text(min_size=b.get("min_size", 0), max_size=b.get("max_size", 50))
    if annotation is bytes:
        return st.binary(min_size=b.get("min_size", 0), max_size=b.get("max_size", 64))
    if origin is tuple:
        inner = strategy_for(get_args(annotation)[0], [])
        return st.lists(inner, min_size=b.get("min_size", 0), max_size=min(b.get("max_size", 3), 3)).map(tuple)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return model_strategy(annotation)
    raise AssertionError(f"no strategy for {annotation!r}")  # a new field type: teach the test


def _fit_items(items: tuple[Item, ...], shipping_fen: int) -> tuple[tuple[Item, ...], int]:
    """Shrink prices so the total stays within MAX_AMOUNT_FEN (the model's own limit)."""
    if sum(i.subtotal_fen for i in items) + shipping_fen > MAX_AMOUNT_FEN:
        items = tuple(i.model_copy(update={"unit_price_fen": 1}) for i in items)
        shipping_fen = 0
    return items, shipping_fen


def _fix(cls: type[BaseModel], d: dict[str, Any]) -> dict[str, Any]:
    """Make cross-field constraints hold (sums, matching numbers, consistent flags)."""
    if cls is Contract:
        d["items"], d["shipping_fee_fen"] = _fit_items(d["items"], d["shipping_fee_fen"])
        d["total_fen"] = sum(i.subtotal_fen for i in d["items"]) + d["shipping_fee_fen"]
    if cls is m.PurchaseRequest:
        d["items"], _ = _fit_items(d["items"], 0)
    if "contract" in d and "contract_no" in d:
        d["contract_no"] = d["contract"].contract_no
    if cls is m.ConfirmationRequest:
        d["shortfall_fen"] = max(0, d["contract"].total_fen - d["balance_fen"])
    if cls is m.RefundAgreement:
        d["returned_goods_received"] = d["agrees_to_refund"] = True
    if cls is m.TopUpReceipt:
        if d["status"] == "credited":
            d["refusal_reason"] = None
        elif d["refusal_reason"] is None:
            d["refusal_reason"] = "wrong_pin"
    return d


def model_strategy(cls: type[BaseModel]) -> st.SearchStrategy[Any]:
    fields = {n: strategy_for(f.annotation, list(f.metadata)) for n, f in cls.model_fields.items()}
    return st.fixed_dictionaries(fields).map(lambda d: cls.model_validate(_fix(cls, d)))


def invalid_values(cls: type[BaseModel], name: str) -> st.SearchStrategy[Any]:
    """Values the field must refuse: wrong types, out of bounds, too long, bad pattern."""
    f = cls.model_fields[name]
    annotation, metadata = _unwrap(f.annotation, list(f.metadata))
    b = _bounds(metadata)
    origin = get_origin(annotation)
    wrong_type = st.sampled_from([1.5, [], {}, b"\x00", 7, "x"])
    if origin in (Union, types.UnionType):
        return st.sampled_from([1.5, 7, [], {}])
    if origin is Literal:
        choices = get_args(annotation)
        return st.one_of(st.text(max_size=20), st.integers(), st.just(False)).filter(
            lambda v: v not in choices or type(v) is not type(choices[0])
        )
    if annotation is bool:
        return st.sampled_from([0, 1, "true", None])  # (False too for the must-be-true ones)
    if annotation is int:
        low, high = b.get("min_value"), b.get("max_value")
        bad = [st.sampled_from([True, 1.0, "1", None])]
        if low is not None:
            bad.append(st.integers(max_value=low - 1))
        if high is not None:
            bad.append(st.integers(min_value=high + 1))
        return st.one_of(bad)
    if annotation is str:
        bad = [wrong_type.filter(lambda v: not isinstance(v, str))]
        if "pattern" in b:
            pattern = re.compile(b["pattern"])
            bad.append(st.text(max_size=60).filter(lambda s: not pattern.fullmatch(s)))
            bad.append(st.from_regex(b["pattern"], fullmatch=True).map(lambda s: s + "\n"))
        if "max_size" in b:
            bad.append(st.text(min_size=b["max_size"] + 1, max_size=b["max_size"] + 5))
        if b.get("min_size"):
            bad.append(st.just(""))
        return st.one_of(bad)
    if annotation is bytes:
        return st.one_of(
            st.binary(max_size=b["min_size"] - 1),
            st.binary(min_size=b["max_size"] + 1, max_size=b["max_size"] + 4),
            st.just("00" * b["min_size"]),
        )
    if origin is tuple:
        return st.sampled_from([[], "items", [1, 2], [{}] * (MAX_ITEMS + 1)])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return st.sampled_from([{}, [], "contract", 1])
    raise AssertionError(f"no invalid values for {annotation!r}")


# --- the catalogue -----------------------------------------------------------------------------


def test_every_message_type_has_exactly_one_model_with_roles() -> None:
    assert set(MESSAGE_MODELS) == set(MessageType)
    for message_type, cls in MESSAGE_MODELS.items():
        assert cls.TYPE is message_type
        assert cls.SENDER_ROLES and cls.SENDER_ROLES <= ROLES, cls
        assert cls.RECIPIENT_ROLES and cls.RECIPIENT_ROLES <= ROLES, cls
        assert "authority" not in cls.SENDER_ROLES | cls.RECIPIENT_ROLES
        assert cls.STEP
        assert cls.model_config["strict"] and cls.model_config["extra"] == "forbid"
        assert cls.model_config["frozen"]


def test_register_refuses_a_second_model_for_a_type() -> None:
    class Twin(m.Message):
        TYPE = MessageType.ACCEPTANCE
        contract_no: str

    with pytest.raises(RuntimeError):
        m.register(Twin)


@pytest.mark.parametrize(
    ("message_type", "senders", "recipients"),
    [
        ("top_up_notice", {"bank"}, {"payment_center"}),
        ("top_up_receipt", {"bank"}, {"customer"}),
        ("top_up_instruction", {"customer"}, {"bank"}),
        ("card_binding", {"customer"}, {"bank"}),
        ("payment_request", {"merchant"}, {"payment_center"}),
        ("confirmation_request", {"payment_center"}, {"customer"}),
        ("confirmation", {"customer"}, {"payment_center"}),
        ("acceptance", {"customer"}, {"payment_center"}),
        ("ship_request", {"payment_center"}, {"merchant"}),
        ("rejection", {"customer"}, {"payment_center", "merchant"}),
        ("rating", {"customer", "merchant"}, {"payment_center"}),
    ],
)
def test_roles_follow_the_seed(message_type: str, senders: set[str], recipients: set[str]) -> None:
    cls = MESSAGE_MODELS[MessageType(message_type)]
    assert cls.SENDER_ROLES == senders
    assert cls.RECIPIENT_ROLES == recipients


def test_confirmation_and_acceptance_never_go_to_the_merchant() -> None:
    """The seed: the customer's confirmation and acceptance go only to the payment center."""
    for t in ("confirmation", "acceptance", "decline"):
        assert MESSAGE_MODELS[MessageType(t)].RECIPIENT_ROLES == {"payment_center"}


def _field_names(cls: type[BaseModel]) -> set[str]:
    names = set()
    for name, f in cls.model_fields.items():
        names.add(name)
        for inner in (f.annotation, *get_args(f.annotation)):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                names |= _field_names(inner)
    return names


def test_card_secrets_exist_only_in_messages_to_the_bank() -> None:
    holders = {t for t, cls in MESSAGE_MODELS.items() if {"card_number", "pin"} & _field_names(cls)}
    assert holders == {MessageType.CARD_BINDING, MessageType.TOP_UP_INSTRUCTION}
    assert holders == m.CARD_SECRET_TYPES
    for t in holders:
        assert MESSAGE_MODELS[t].RECIPIENT_ROLES == {"bank"}


def test_card_number_and_pin_appear_in_no_other_payload_and_no_repr() -> None:
    secret = sample_message("top_up_instruction")
    assert isinstance(secret, m.TopUpInstruction)
    for t, message in all_samples().items():
        if t in m.CARD_SECRET_TYPES:
            assert secret.pin not in repr(message) and secret.card_number not in repr(message)
            continue
        payload = encode_message(message)
        assert secret.card_number.encode() not in payload, t
        assert secret.pin.encode() not in payload, t


# --- samples -----------------------------------------------------------------------------------


@pytest.mark.parametrize("message_type", ALL_TYPES)
def test_sample_is_valid_deterministic_and_round_trips(message_type: MessageType) -> None:
    message = sample_message(message_type)
    assert message.message_type is message_type
    assert sample_message(message_type) == message
    payload = encode_message(message)
    assert payload == encode_message(sample_message(message_type))
    assert decode_message(message_type, payload) == message
    assert type(message).model_validate_json(message.model_dump_json()) == message


def test_samples_tell_the_happy_path_story() -> None:
    contract = sample_message("payment_request").contract  # type: ignore[attr-defined]
    assert contract == CONTRACT
    assert contract.total_fen == 24_000 and contract.currency == "CNY"
    assert [(i.quantity, i.unit_price_fen) for i in contract.items] == [(2, 12_000)]
    assert sample_message("payment_request").customer_phone == "13800138000"  # type: ignore[attr-defined]
    confirmation = sample_message("confirmation")
    assert confirmation.contract_digest == contract_digest(CONTRACT)  # type: ignore[attr-defined]
    request = sample_message("confirmation_request")
    assert request.balance_short  # type: ignore[attr-defined]
    top_up = sample_message("top_up_instruction")
    assert top_up.amount_fen == request.shortfall_fen  # type: ignore[attr-defined]


def test_contract_no_of_names_the_contract_or_none() -> None:
    no_contract = {
        "shop_registration", "phone_check", "phone_check_reply", "customer_registration",
        "card_binding", "merchant_registration", "registration_ack", "purchase_request",
        "points_redemption",
    }  # fmt: skip
    for t, message in all_samples().items():
        expected = None if t in no_contract else CONTRACT_NO
        assert contract_no_of(message) == expected, t
    # anything else is asked for both attributes
    assert contract_no_of(types.SimpleNamespace(contract_no="C-1")) == "C-1"  # type: ignore[arg-type]
    assert contract_no_of(types.SimpleNamespace(contract=CONTRACT)) == CONTRACT_NO  # type: ignore[arg-type]
    assert contract_no_of(types.SimpleNamespace()) is None  # type: ignore[arg-type]


# --- round trip (hypothesis) -------------------------------------------------------------------


@pytest.mark.parametrize("message_type", ALL_TYPES)
@FAST
@given(data=st.data())
def test_every_message_round_trips_through_cbor(message_type: MessageType, data: st.DataObject) -> None:
    message = data.draw(model_strategy(MESSAGE_MODELS[message_type]))
    payload = encode_message(message)
    assert payload == cbor2.dumps(message.model_dump(mode="python"), canonical=True)
    assert decode_message(message_type, payload) == message
    assert decode_message(str(message_type), payload) == message
    assert encode_message(decode_message(message_type, payload)) == payload


# --- invalid input (hypothesis) ----------------------------------------------------------------


@pytest.mark.parametrize("message_type", ALL_TYPES)
@FAST
@given(data=st.data())
def test_any_invalid_field_value_is_malformed(message_type: MessageType, data: st.DataObject) -> None:
    cls = MESSAGE_MODELS[message_type]
    name = data.draw(st.sampled_from(sorted(cls.model_fields)))
    bad = data.draw(invalid_values(cls, name))
    fields = _dump(sample_message(message_type))
    fields[name] = bad
    with pytest.raises(MalformedMessage):
        decode_message(message_type, _cbor(fields))


@pytest.mark.parametrize("message_type", ALL_TYPES)
@FAST
@given(key=st.text(min_size=1, max_size=20), value=st.one_of(st.integers(), st.text(max_size=5)))
def test_an_extra_field_is_malformed(message_type: MessageType, key: str, value: Any) -> None:
    fields = _dump(sample_message(message_type))
    if key in fields:
        return
    fields[key] = value
    with pytest.raises(MalformedMessage):
        decode_message(message_type, _cbor(fields))


@pytest.mark.parametrize("message_type", ALL_TYPES)
def test_a_missing_required_field_is_malformed(message_type: MessageType) -> None:
    cls = MESSAGE_MODELS[message_type]
    for name, f in cls.model_fields.items():
        if not f.is_required():
            continue
        fields = _dump(sample_message(message_type))
        del fields[name]
        with pytest.raises(MalformedMessage, match=name):
            decode_message(message_type, _cbor(fields))


@pytest.mark.parametrize("amount", [0, -1, -24_000, MAX_AMOUNT_FEN + 1, 12.5, True, "24000"])
def test_amounts_must_be_positive_bounded_integers(amount: Any) -> None:
    fields = _dump(sample_message("top_up_notice"))
    fields["amount_fen"] = amount
    with pytest.raises(MalformedMessage, match="amount_fen"):
        decode_message("top_up_notice", _cbor(fields))


@pytest.mark.parametrize("currency", ["USD", "cny", "", 156])
def test_only_cny_is_accepted(currency: Any) -> None:
    fields = _dump(sample_message("settlement_notice"))
    fields["currency"] = currency
    with pytest.raises(MalformedMessage, match="currency"):
        decode_message("settlement_notice", _cbor(fields))


def _contract_fields(**changes: Any) -> dict[str, Any]:
    fields = _dump(sample_message("payment_request"))
    fields["contract"].update(changes)
    return fields


@pytest.mark.parametrize(
    "changes",
    [
        {"items": []},
        {"items": [{"name": "tea", "specification": "", "quantity": 1, "unit_price_fen": 1}] * 21},
        {"items": [{"name": "tea", "specification": "", "quantity": 1000, "unit_price_fen": 24}]},
        {"items": [{"name": "tea", "specification": "", "quantity": 0, "unit_price_fen": 24}]},
        {"items": [{"name": "tea", "specification": "", "quantity": 1, "unit_price_fen": -5}]},
        {"items": [{"name": "", "specification": "", "quantity": 1, "unit_price_fen": 5}]},
        {"items": [{"name": "t" * 65, "specification": "", "quantity": 1, "unit_price_fen": 5}]},
        {"total_fen": 23_999},  # does not add up
        {"shipping_method": "pigeon"},
        {"delivery_address": "x" * 201},
        {"contract_no": "C 1"},
        {"contract_no": "C" * 41},
        {"bonus": 1},  # extra field inside the nested contract
    ],
)
def test_bad_contracts_are_malformed(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        decode_message("payment_request", _cbor(_contract_fields(**changes)))


def test_contract_total_includes_shipping() -> None:
    fields = _contract_fields(shipping_fee_fen=1_000, total_fen=25_000)
    message = decode_message("payment_request", _cbor(fields))
    assert message.contract.total_fen == 25_000  # type: ignore[attr-defined]


def test_contract_number_outside_must_match_inside() -> None:
    fields = _dump(sample_message("payment_request"))
    fields["contract_no"] = "C20260101-000002"
    with pytest.raises(MalformedMessage, match="contract_no"):
        decode_message("payment_request", _cbor(fields))


def test_confirmation_request_shortfall_must_be_consistent() -> None:
    fields = _dump(sample_message("confirmation_request"))
    fields["shortfall_fen"] = 0  # balance 50.00 of 240.00: the warning may not be hidden
    with pytest.raises(MalformedMessage, match="shortfall"):
        decode_message("confirmation_request", _cbor(fields))
    fields["balance_fen"], fields["shortfall_fen"] = 30_000, 0
    assert not decode_message("confirmation_request", _cbor(fields)).balance_short  # type: ignore[attr-defined]


def test_refused_top_up_receipt_needs_a_reason() -> None:
    fields = _dump(sample_message("top_up_receipt"))
    fields["status"] = "refused"
    with pytest.raises(MalformedMessage):
        decode_message("top_up_receipt", _cbor(fields))
    fields["refusal_reason"] = "wrong_pin"
    assert decode_message("top_up_receipt", _cbor(fields)).status == "refused"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("message_type", "name", "value"),
    [
        ("rating", "stars", 0),
        ("rating", "stars", 6),
        ("rating", "comment", "x" * 141),
        ("rejection", "reason", "did_not_like"),
        ("rejection", "text", "x" * 281),
        ("customer_registration", "phone", "138-0013-8000"),
        ("customer_registration", "phone", "13800138000\n"),
        ("customer_registration", "id_number", "11010119900307123"),
        ("customer_registration", "postcode", "10000"),
        ("card_binding", "pin", "12345"),
        ("card_binding", "card_number", "62220202001"),
        ("confirmation", "contract_digest", b"\x00" * 31),
        ("phone_check", "nonce", b"\x00" * 15),
        ("refund_agreement", "agrees_to_refund", False),
        ("refund_agreement", "agrees_to_refund", 1),
        ("refund_agreement", "returned_goods_received", False),
        ("shop_registration", "payment_method", "card"),
    ],
)
def test_named_limits_are_enforced(message_type: str, name: str, value: Any) -> None:
    fields = _dump(sample_message(message_type))
    fields[name] = value
    with pytest.raises(MalformedMessage, match=name):
        decode_message(message_type, _cbor(fields))


def test_not_a_message_is_malformed() -> None:
    with pytest.raises(MalformedMessage, match="unknown message type"):
        decode_message("telegram", _cbor({}))
    with pytest.raises(MalformedMessage, match="not CBOR"):
        decode_message("acceptance", b"\xa1")  # a map that never comes
    with pytest.raises(MalformedMessage, match="not CBOR"):
        decode_message("acceptance", b"\xff")  # a lone break marker
    with pytest.raises(MalformedMessage, match="not a CBOR map"):
        decode_message("acceptance", _cbor([CONTRACT_NO]))
    with pytest.raises(MessageTooLarge):
        decode_message("acceptance", b"\x00" * (m.MAX_PAYLOAD_BYTES + 1))


@pytest.mark.parametrize(
    "payload",
    [
        _cbor({"contract_no": CONTRACT_NO}) + b"\x00",  # trailing bytes
        b"\xbf" + _cbor("contract_no")[0:] + _cbor(CONTRACT_NO) + b"\xff",  # indefinite map
        cbor2.dumps({"contract_no": "C1", "stars": 5, "comment": "", "ratee_id": "shop"}),
        b"\xa1" + _cbor("stars") + b"\x18\x05",  # 5 in two bytes, not one
    ],
)
def test_only_deterministic_cbor_is_accepted(payload: bytes) -> None:
    """One message, one encoding: no second signed form of the same message."""
    with pytest.raises(MalformedMessage, match="deterministic"):
        decode_message("rating", payload)


@pytest.mark.parametrize("message_type", ["telegram", "SHIPMENT_REPORT", 5, None, b"rating", ("rating",), ["rating"]])
def test_an_unknown_message_type_of_any_kind_is_malformed(message_type: Any) -> None:
    with pytest.raises(MalformedMessage, match="unknown message type"):
        decode_message(message_type, _cbor({"contract_no": CONTRACT_NO}))


_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats()
    | st.binary(max_size=30)
    | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.integers(-30, 30) | st.text(max_size=4) | st.binary(max_size=3), inner, max_size=4),
    max_leaves=15,
)


@settings(FAST, max_examples=300)
@given(value=_cbor_values)
def test_the_kept_encoder_writes_what_cbor2_dumps_writes(value: Any) -> None:
    assert m.canonical_cbor(value) == cbor2.dumps(value, canonical=True)


def test_the_kept_encoder_fails_like_cbor2_and_recovers() -> None:
    cyclic: list = []
    cyclic.append(cyclic)
    for bad in (cyclic, {1: object()}, [1, {2: [object()]}]):
        with pytest.raises(Exception) as ours:
            m.canonical_cbor(bad)
        with pytest.raises(Exception) as theirs:
            cbor2.dumps(bad, canonical=True)
        assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))
        assert m.canonical_cbor({"b": [1, 2], "a": b"x"}) == cbor2.dumps({"b": [1, 2], "a": b"x"}, canonical=True)


def test_the_kept_encoder_is_one_per_thread() -> None:
    import threading

    failures: list[Any] = []

    def encode_many(offset: int) -> None:
        for i in range(2_000):
            value = {"n": offset + i, "s": "x" * (i % 30), "l": [i, offset]}
            if m.canonical_cbor(value) != cbor2.dumps(value, canonical=True):
                failures.append(value)

    threads = [threading.Thread(target=encode_many, args=(k * 10**6,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


# --- the contract digest -----------------------------------------------------------------------


def test_contract_digest_is_sha256_of_deterministic_cbor() -> None:
    import hashlib

    assert contract_digest(CONTRACT) == hashlib.sha256(_cbor(_dump(CONTRACT))).digest()
    assert len(contract_digest(CONTRACT)) == 32
    rebuilt = Contract.model_validate(cbor2.loads(_cbor(_dump(CONTRACT))))
    assert contract_digest(rebuilt) == contract_digest(CONTRACT)


@FAST
@given(contract=model_strategy(Contract), other=model_strategy(Contract))
def test_contract_digest_tells_contracts_apart(contract: Contract, other: Contract) -> None:
    assert (contract_digest(contract) == contract_digest(other)) == (contract == other)


def test_docs_map_every_message_type() -> None:
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text("utf-8")
    for message_type in MessageType:
        assert f"`{message_type}`" in doc, message_type
    assert "## Envelope format" in doc


# --- the direct encoder and payload reader ------------------------------------------------------


@contextlib.contextmanager
def _without_payload_reader() -> Iterator[None]:
    """Decode every payload the general way: cbor2, then the canonical encoder's check."""
    saved = m._read_payload
    m._read_payload = lambda *args: None  # type: ignore[assignment]
    try:
        yield
    finally:
        m._read_payload = saved


def _outcome(message_type: str, payload: bytes) -> Any:
    try:
        return decode_message(message_type, payload)
    except MalformedMessage as exc:
        return type(exc), str(exc)


def _check_read(message_type: str, payload: bytes) -> None:
    """Whatever the reader accepts is exactly the deterministic encoding of what cbor2
    decodes, and decoding gives the same outcome with the reader and without it."""
    read = _as_cbor2_reads(m._read_payload(payload, m._LAYOUTS[MESSAGE_MODELS[message_type]]))  # type: ignore[index]
    if read is not None:
        decoded = cbor2.loads(payload)
        assert read == decoded and _types(read) == _types(decoded)
        assert m.canonical_cbor(decoded) == payload
    direct = _outcome(message_type, payload)
    with _without_payload_reader():
        assert _outcome(message_type, payload) == direct


def _as_cbor2_reads(value: Any) -> Any:
    """The reader's result with each shared part (a contract it hands out as the model
    itself) as cbor2 reads that part's bytes."""
    if isinstance(value, BaseModel):
        return cbor2.loads(m._encode_model(value))
    if isinstance(value, dict):
        return {key: _as_cbor2_reads(item) for key, item in value.items()}
    return value


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _types(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_types(item) for item in value]
    return type(value)


def test_the_payload_reader_takes_every_payload_sealing_makes() -> None:
    for message_type, message in all_samples().items():
        payload = encode_message(message)
        read = m._read_payload(payload, m._LAYOUTS[type(message)])
        assert _as_cbor2_reads(read) == cbor2.loads(payload), message_type


@pytest.mark.parametrize("message_type", ["confirmation_request", "rating", "top_up_receipt", "refund_agreement"])
def test_the_payload_reader_decides_every_flipped_byte_as_cbor2(message_type: str) -> None:
    payload = encode_message(sample_message(message_type))
    for position in range(len(payload)):
        for flip in (0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80):
            altered = bytearray(payload)
            altered[position] ^= flip
            _check_read(message_type, bytes(altered))
        _check_read(message_type, payload[:position])
        _check_read(message_type, payload[:position] + b"\x00" + payload[position:])


@pytest.mark.parametrize("message_type", ALL_TYPES)
@FAST
@given(data=st.data())
def test_the_payload_reader_decides_altered_payloads_as_cbor2(message_type: MessageType, data: st.DataObject) -> None:
    payload = bytearray(encode_message(data.draw(model_strategy(MESSAGE_MODELS[message_type]))))
    for _ in range(data.draw(st.integers(1, 3))):
        where = data.draw(st.integers(0, len(payload) - 1))
        change = data.draw(st.sampled_from(["flip", "insert", "delete", "longer head"]))
        if change == "flip":
            payload[where] ^= data.draw(st.integers(1, 255))
        elif change == "insert":
            payload[where:where] = bytes([data.draw(st.integers(0, 255))])
        elif change == "delete":
            del payload[where]
        elif payload[where] & 0x1F < 24:  # the same argument, one byte longer: not the shortest form
            payload[where : where + 1] = bytes([payload[where] & 0xE0 | 24, payload[where] & 0x1F])
    _check_read(message_type, bytes(payload))


@pytest.mark.parametrize("message_type", ["rating", "confirmation_request"])
def test_the_payload_reader_refuses_other_encodings_of_the_same_message(message_type: str) -> None:
    message = sample_message(message_type)
    fields = message.model_dump(mode="python")
    unsorted = cbor2.dumps(dict(reversed(list(fields.items()))))
    indefinite = b"\xbf" + b"".join(cbor2.dumps(k) + cbor2.dumps(v, canonical=True) for k, v in sorted(
        fields.items(), key=lambda kv: (len(cbor2.dumps(kv[0])), cbor2.dumps(kv[0])))) + b"\xff"
    for payload in (unsorted, indefinite, encode_message(message) + b"\x00"):
        assert m._read_payload(payload, m._LAYOUTS[type(message)]) is None
        with pytest.raises(MalformedMessage, match="deterministic"):
            decode_message(message_type, payload)


@settings(FAST, max_examples=300)
@given(head=st.integers(0, 255), rest=st.binary(max_size=10))
def test_read_scalar_reads_exactly_the_deterministic_scalars(head: int, rest: bytes) -> None:
    data = bytes([head]) + rest
    try:
        read = m.read_scalar(data, 0)
    except IndexError:  # cut off in the head
        assert len(data) < 2
        return
    if read is not None:
        value, end = read
        assert type(value) in (int, bytes, str, bool, type(None))
        assert cbor2.loads(data[:end]) == value and type(cbor2.loads(data[:end])) is type(value)
        assert cbor2.dumps(value, canonical=True) == data[:end]


@settings(FAST, max_examples=300)
@given(value=st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=300) | st.text(max_size=300))
def test_read_scalar_reads_every_deterministic_scalar(value: Any) -> None:
    encoded = cbor2.dumps(value, canonical=True)
    assert m.read_scalar(encoded + b"\x00", 0) == (value, len(encoded))


def test_messages_off_the_validated_path_encode_as_model_dump_does() -> None:
    """model_copy and model_construct skip validation: such a message is still written
    exactly as cbor2 writes its model_dump (by the general path when a value is odd)."""
    request = sample_message("payment_request")
    odd = [
        request.model_copy(update={"customer_phone": MessageType.RATING}),  # a str subclass
        request.model_copy(update={"customer_phone": 1.5}),  # a float: canonical CBOR shortens it
        request.model_copy(update={"contract": CONTRACT.model_copy(update={"total_fen": 2**70})}),
        request.model_copy(update={"contract": CONTRACT.model_copy(update={"items": list(CONTRACT.items)})}),
        Item.model_construct(name="tea", quantity=1, unit_price_fen=5),  # the default filled in
        Item.model_construct(name="tea", quantity=1),  # a field never set
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns about the unexpected values it serializes
        for message in odd:
            assert m._encode_model(message) == cbor2.dumps(message.model_dump(mode="python"), canonical=True)


def test_models_that_serialize_their_own_way_take_the_general_path() -> None:
    from pydantic import computed_field, field_serializer

    class Renamed(BaseModel):
        a: int

        @field_serializer("a")
        def _double(self, value: int) -> int:
            return value * 2

    class Computed(BaseModel):
        a: int

        @computed_field  # type: ignore[prop-decorator]
        @property
        def b(self) -> int:
            return self.a + 1

    assert m._layout_of(Renamed) is None and m._layout_of(Computed) is None
    assert m._layout_of(Contract) is not None
    assert all(m._layout_of(cls) is not None for cls in MESSAGE_MODELS.values())


# --- one contract object per encoding --------------------------------------------------------


def test_every_reader_of_a_contract_shares_the_senders_object() -> None:
    """The contract rides in three messages and every party keeps it until the transaction
    closes: each decode of those bytes gives the sender's own (frozen) object, not a copy."""
    contract = CONTRACT.model_copy(update={"contract_no": "C20260101-900001"})
    order = m.OrderContract(order_ref="R1", contract=contract)
    request = m.PaymentRequest(contract_no=contract.contract_no, contract=contract, customer_phone="13800138000")
    read_order = decode_message(MessageType.ORDER_CONTRACT, encode_message(order))
    read_request = decode_message(MessageType.PAYMENT_REQUEST, encode_message(request))
    assert read_order == order and read_request == request
    assert read_order.contract is contract and read_request.contract is contract  # type: ignore[attr-defined]


def test_a_contract_read_twice_is_one_object_and_is_released_with_its_readers() -> None:
    import gc
    import weakref

    fields = _contract_fields(contract_no="C20260101-900002")
    fields["contract_no"] = "C20260101-900002"
    payload = _cbor(fields)  # nobody built this contract
    first = decode_message("payment_request", payload)
    second = decode_message("payment_request", payload)
    assert first.contract is second.contract  # type: ignore[attr-defined]
    alive = weakref.ref(first.contract)  # type: ignore[attr-defined]
    del first, second
    gc.collect()
    assert alive() is None, "the shared contract outlived every message holding it"
    third = decode_message("payment_request", payload)
    assert third.contract.contract_no == "C20260101-900002"  # type: ignore[attr-defined]


def test_an_unchecked_contract_is_never_handed_to_a_reader() -> None:
    """A sender may build a contract without validation (model_construct); its readers must
    still refuse it, not receive the sender's object."""
    fields = {**CONTRACT.__dict__, "contract_no": "C20260101-900003", "total_fen": CONTRACT.total_fen + 1}
    forged = Contract.model_construct(**fields)
    order = m.OrderContract.model_construct(order_ref="R1", contract=forged)
    with pytest.raises(MalformedMessage, match="total_fen"):
        decode_message(MessageType.ORDER_CONTRACT, encode_message(order))


def test_a_contract_changed_in_transit_is_read_afresh() -> None:
    contract = CONTRACT.model_copy(update={"contract_no": "C20260101-900004"})
    payload = encode_message(m.OrderContract(order_ref="R1", contract=contract))
    altered = payload.replace(b"C20260101-900004", b"C20260101-900005")
    read = decode_message(MessageType.ORDER_CONTRACT, altered)
    assert read.contract is not contract and read.contract.contract_no == "C20260101-900005"  # type: ignore[attr-defined]
