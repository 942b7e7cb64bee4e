"""Sign-then-encrypt envelopes: round trips, and every way an envelope is refused."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import cbor2
import pytest
from conftest import CERT_NOT_AFTER, CERT_NOT_BEFORE, DAY_S, T0, World
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mpay.keys.vectors import pick_roles
from mpay.protocol import envelope, messages, suites
from mpay.protocol.envelope import (
    MAX_ENVELOPE_BYTES,
    SignedHeaders,
    decrypt_envelope,
    encrypt_for,
    open_envelope,
    seal,
    sign_payload,
)
from mpay.protocol.errors import (
    BadSignature,
    CertificateExpired,
    CertificateRevoked,
    DecryptFailed,
    HeaderMismatch,
    MalformedMessage,
    MessageTooLarge,
    ProtocolError,
    UnknownCertificate,
    UnsupportedAlgorithm,
    WrongRecipient,
)
from mpay.protocol.messages import MessageType, contract_no_of, encode_message
from mpay.protocol.pki import Authority, TrustStore
from mpay.protocol.samples import sample_message
from mpay.protocol import suites
from mpay.protocol.suites import get_suite

PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
PARTY_OF_ROLE = {"customer": "alice", "merchant": "shop", "payment_center": "mpc", "bank": "bank"}


def _pair(world: World, message_type: MessageType):
    sender_role, recipient_role = pick_roles(message_type)
    return world[PARTY_OF_ROLE[sender_role]], world[PARTY_OF_ROLE[recipient_role]]


def _confirmation_envelope(world: World, **kwargs) -> bytes:
    args = dict(
        sender=world["alice"], recipient_cert=world["mpc"].agreement_cert, seq=7, sent_unix_s=T0
    )
    args.update(kwargs)
    return seal(sample_message(MessageType.CONFIRMATION), **args)


@pytest.mark.parametrize("message_type", list(MessageType))
def test_every_message_type_round_trips_in_both_suites(world: World, message_type: MessageType) -> None:
    sender, recipient = _pair(world, message_type)
    message = sample_message(message_type)
    envelope = seal(message, sender=sender, recipient_cert=recipient.agreement_cert, seq=3, sent_unix_s=T0)
    assert envelope[:2] == b"\xd8\x60"  # CBOR tag 96: COSE_Encrypt
    opened = open_envelope(envelope, recipient=recipient, trust=world.trust(), now_unix_s=T0 + 30)
    assert opened.message == message
    assert opened.message_type == message_type
    assert (opened.sender_id, opened.recipient_id) == (sender.party_id, recipient.party_id)
    assert opened.contract_no == contract_no_of(message)
    assert (opened.seq, opened.sent_unix_s) == (3, T0)
    assert opened.sender_cert == sender.signing_cert
    assert opened.suite == world.suite
    assert not opened.sender_cert_learned


def test_opening_lists_each_check_in_order(world: World) -> None:
    opened = open_envelope(
        _confirmation_envelope(world), recipient=world["mpc"], trust=world.trust(), now_unix_s=T0
    )
    assert [c.name for c in opened.checks] == [
        "decrypted",
        "signature",
        "chain",
        "validity",
        "revocation",
        "headers",
    ]
    assert all(c.ok for c in opened.checks)
    expected_alg = get_suite(world.suite).signature_alg_name
    assert str(opened.checks[1]) == f"signature: {expected_alg} ok (alice)"
    assert str(opened.checks[0]).startswith("decrypted: tag ok")


def test_the_compact_suite_makes_much_smaller_envelopes(rsa_world: World, compact_world: World) -> None:
    rsa = _confirmation_envelope(rsa_world)
    compact = _confirmation_envelope(compact_world)
    assert len(compact) < len(rsa) / 2
    assert len(rsa) < MAX_ENVELOPE_BYTES


def test_an_envelope_for_someone_else_does_not_decrypt(world: World) -> None:
    envelope = _confirmation_envelope(world)
    with pytest.raises(DecryptFailed) as info:
        open_envelope(envelope, recipient=world["bob"], trust=world.trust(), now_unix_s=T0)
    assert [(c.name, c.ok) for c in info.value.checks] == [("decrypted", False)]


def test_a_forwarded_signed_message_is_refused_as_wrong_recipient(world: World) -> None:
    """Surreptitious forwarding: the merchant decrypts the customer's signed purchase and
    re-encrypts the same Sign1 for the payment center. The signed recipient header exposes it."""
    shop, mpc = world["shop"], world["mpc"]
    purchase = seal(
        sample_message(MessageType.PURCHASE_REQUEST),
        sender=world["alice"],
        recipient_cert=shop.agreement_cert,
        seq=1,
        sent_unix_s=T0,
    )
    inner, _ = decrypt_envelope(purchase, recipient=shop)
    forwarded = encrypt_for(inner, recipient_cert=mpc.agreement_cert, suite=world.suite)
    with pytest.raises(WrongRecipient):
        open_envelope(forwarded, recipient=mpc, trust=world.trust(), now_unix_s=T0)


def test_an_altered_signature_is_refused(world: World) -> None:
    mpc = world["mpc"]
    inner, _ = decrypt_envelope(_confirmation_envelope(world), recipient=mpc)
    sign1 = cbor2.loads(inner)
    signature = bytearray(sign1.value[3])
    signature[5] ^= 0x01
    sign1.value[3] = bytes(signature)
    tampered = encrypt_for(cbor2.dumps(sign1, canonical=True), recipient_cert=mpc.agreement_cert, suite=world.suite)
    with pytest.raises(BadSignature) as info:
        open_envelope(tampered, recipient=mpc, trust=world.trust(), now_unix_s=T0)
    assert [c.name for c in info.value.checks] == ["decrypted", "signature"]


def _lying_envelope(world: World, sender_id: str, recipient_id: str, message_type: MessageType,
                    contract_no: str | None, payload_type: MessageType, recipient: str = "mpc",
                    signer: str = "alice") -> bytes:
    headers = SignedHeaders(
        message_type=message_type.value,
        sender_id=sender_id,
        recipient_id=recipient_id,
        contract_no=contract_no,
        seq=1,
        sent_unix_s=T0,
    )
    inner = sign_payload(headers, encode_message(sample_message(payload_type)), sender=world[signer])
    return encrypt_for(inner, recipient_cert=world[recipient].agreement_cert, suite=world.suite)


def test_a_sender_header_that_is_not_the_certificate_is_refused(world: World) -> None:
    contract = contract_no_of(sample_message(MessageType.CONFIRMATION))
    envelope = _lying_envelope(world, "bob", "mpc", MessageType.CONFIRMATION, contract, MessageType.CONFIRMATION)
    with pytest.raises(HeaderMismatch, match="certificate of 'alice'"):
        open_envelope(envelope, recipient=world["mpc"], trust=world.trust(), now_unix_s=T0)


def test_a_contract_header_that_is_not_the_payload_is_refused(world: World) -> None:
    envelope = _lying_envelope(world, "alice", "mpc", MessageType.CONFIRMATION, "C-OTHER", MessageType.CONFIRMATION)
    with pytest.raises(HeaderMismatch, match="contract"):
        open_envelope(envelope, recipient=world["mpc"], trust=world.trust(), now_unix_s=T0)


def test_a_type_header_that_does_not_fit_the_payload_is_refused(world: World) -> None:
    contract = contract_no_of(sample_message(MessageType.CONFIRMATION))
    envelope = _lying_envelope(world, "alice", "mpc", MessageType.ACCEPTANCE, contract, MessageType.CONFIRMATION)
    with pytest.raises(ProtocolError):
        open_envelope(envelope, recipient=world["mpc"], trust=world.trust(), now_unix_s=T0)


def test_a_role_that_may_not_send_the_type_is_refused(world: World) -> None:
    """A merchant cannot confirm a contract on the customer's behalf."""
    contract = contract_no_of(sample_message(MessageType.CONFIRMATION))
    envelope = _lying_envelope(
        world, "shop", "mpc", MessageType.CONFIRMATION, contract, MessageType.CONFIRMATION, signer="shop"
    )
    with pytest.raises(HeaderMismatch, match="merchant may not send confirmation"):
        open_envelope(envelope, recipient=world["mpc"], trust=world.trust(), now_unix_s=T0)


def test_a_role_that_may_not_receive_the_type_is_refused(world: World) -> None:
    """The confirmation goes only to the payment center, never to the merchant."""
    envelope = seal(
        sample_message(MessageType.CONFIRMATION),
        sender=world["alice"],
        recipient_cert=world["shop"].agreement_cert,
        seq=1,
        sent_unix_s=T0,
    )
    with pytest.raises(HeaderMismatch, match="merchant may not receive"):
        open_envelope(envelope, recipient=world["shop"], trust=world.trust(), now_unix_s=T0)


def test_an_unknown_sender_is_refused_unless_it_attaches_its_certificate(world: World) -> None:
    trust = world.trust(exclude=("alice",))
    with pytest.raises(UnknownCertificate):
        open_envelope(_confirmation_envelope(world), recipient=world["mpc"], trust=trust, now_unix_s=T0)
    first_contact = _confirmation_envelope(world, include_sender_cert=True)
    opened = open_envelope(first_contact, recipient=world["mpc"], trust=trust, now_unix_s=T0)
    assert opened.sender_cert_learned
    assert trust.by_kid(world["alice"].kid) is not None
    # learned: the next envelope without the certificate opens too
    open_envelope(_confirmation_envelope(world), recipient=world["mpc"], trust=trust, now_unix_s=T0)


def test_an_attached_certificate_from_another_authority_is_refused(world: World, key_cache) -> None:
    suite = get_suite(world.suite)
    rogue = Authority.create(
        suite.generate_authority_key(), not_before_unix_s=T0 - DAY_S, not_after_unix_s=T0 + DAY_S, name="rogue"
    )
    fake_alice = rogue.issue_identity(
        "alice", "customer", suite, key_cache.keys(suite, 0), CERT_NOT_BEFORE, CERT_NOT_AFTER
    )
    envelope = _confirmation_envelope(world, sender=fake_alice, include_sender_cert=True)
    trust = world.trust(exclude=("alice",))
    with pytest.raises(UnknownCertificate):
        open_envelope(envelope, recipient=world["mpc"], trust=trust, now_unix_s=T0)
    assert trust.by_kid(fake_alice.kid) is None


def test_garbage_trailing_bytes_and_oversize_are_malformed(world: World) -> None:
    envelope = _confirmation_envelope(world)
    trust = world.trust()
    for data in (b"", b"hello", envelope + b"\x00", envelope[:-1], cbor2.dumps([1, 2, 3])):
        with pytest.raises(MalformedMessage):
            open_envelope(data, recipient=world["mpc"], trust=trust, now_unix_s=T0)
    with pytest.raises(MessageTooLarge):
        open_envelope(b"\x00" * (MAX_ENVELOPE_BYTES + 1), recipient=world["mpc"], trust=trust, now_unix_s=T0)


def test_equal_but_differently_typed_labels_are_refused(world: World) -> None:
    """Python says 5.0 == 5 == True-ish; CBOR does not. A float label for the IV must not pass."""
    outer = cbor2.loads(_confirmation_envelope(world))
    outer.value[1] = {5.0: outer.value[1][5]}
    with pytest.raises(MalformedMessage):
        open_envelope(cbor2.dumps(outer, canonical=True), recipient=world["mpc"], trust=world.trust(), now_unix_s=T0)


def test_sealing_across_suites_is_refused(rsa_world: World, compact_world: World) -> None:
    with pytest.raises(UnsupportedAlgorithm):
        _confirmation_envelope(rsa_world, recipient_cert=compact_world["mpc"].agreement_cert)
    with pytest.raises(UnsupportedAlgorithm):
        _confirmation_envelope(rsa_world, suite="compact")


def test_envelopes_differ_every_time_even_for_the_same_message(world: World) -> None:
    assert _confirmation_envelope(world) != _confirmation_envelope(world)


# --- properties -----------------------------------------------------------------------------


@settings(PROPERTY, max_examples=200)
@given(data=st.data())
def test_any_single_byte_change_is_refused(world: World, data: st.DataObject) -> None:
    envelope = _cached_envelope(world)
    position = data.draw(st.integers(0, len(envelope) - 1), label="position")
    flip = data.draw(st.integers(1, 255), label="xor")
    altered = bytearray(envelope)
    altered[position] ^= flip
    with pytest.raises(ProtocolError):
        open_envelope(bytes(altered), recipient=world["mpc"], trust=_cached_trust(world), now_unix_s=T0)


def test_every_byte_flipped_in_every_bit_position_is_refused(world: World) -> None:
    """Exhaustive companion of the property above (a few thousand opens, about a second).

    It found that flipping the top bit of the X25519 ephemeral key's last byte went unnoticed
    (RFC 7748 masks that bit), which is why non-canonical ephemeral keys are refused."""
    envelope = _cached_envelope(world)
    trust = _cached_trust(world)
    accepted = []
    for position in range(len(envelope)):
        for flip in (0x01, 0x80):
            altered = bytearray(envelope)
            altered[position] ^= flip
            try:
                open_envelope(bytes(altered), recipient=world["mpc"], trust=trust, now_unix_s=T0)
            except ProtocolError:
                continue
            accepted.append((position, flip))
    assert accepted == []


_CACHE: dict[tuple[str, str], object] = {}


def _cached_envelope(world: World) -> bytes:
    key = (world.suite, "envelope")
    if key not in _CACHE:
        _CACHE[key] = _confirmation_envelope(world, include_sender_cert=True)
    return _CACHE[key]  # type: ignore[return-value]


def _cached_trust(world: World):
    key = (world.suite, "trust")
    if key not in _CACHE:
        _CACHE[key] = world.trust()
    return _CACHE[key]


@PROPERTY
@given(
    message_type=st.sampled_from(list(MessageType)),
    seq=st.integers(0, 2**63 - 1),
    sent=st.integers(0, 2**33),
)
def test_round_trip_keeps_message_and_headers(world: World, message_type: MessageType, seq: int, sent: int) -> None:
    sender, recipient = _pair(world, message_type)
    message = sample_message(message_type)
    envelope = seal(message, sender=sender, recipient_cert=recipient.agreement_cert, seq=seq, sent_unix_s=sent)
    opened = open_envelope(envelope, recipient=recipient, trust=_cached_trust(world), now_unix_s=T0)
    assert (opened.message, opened.seq, opened.sent_unix_s) == (message, seq, sent)


@PROPERTY
@given(
    addressee=st.sampled_from(["alice", "shop", "mpc", "bank", "bob", "mall"]),
    opener=st.sampled_from(["alice", "shop", "mpc", "bank", "bob", "mall"]),
)
def test_an_envelope_sealed_for_a_cannot_be_opened_by_b(world: World, addressee: str, opener: str) -> None:
    if addressee == opener:
        return
    envelope = seal(
        sample_message(MessageType.RATING),
        sender=world["alice"],
        recipient_cert=world[addressee].agreement_cert,
        seq=1,
        sent_unix_s=T0,
    )
    with pytest.raises(ProtocolError):
        open_envelope(envelope, recipient=world[opener], trust=_cached_trust(world), now_unix_s=T0)


@PROPERTY
@given(revoked_ago_s=st.integers(0, 300 * DAY_S), opened_after_s=st.integers(0, 300 * DAY_S))
def test_an_envelope_opened_after_revocation_is_refused(world: World, revoked_ago_s: int, opened_after_s: int) -> None:
    envelope = _cached_envelope(world)
    trust = world.trust()
    revoked_at = T0 + opened_after_s - revoked_ago_s
    trust.revoke(world["alice"].signing_cert, revoked_at)
    now = T0 + opened_after_s
    with pytest.raises(CertificateRevoked):
        open_envelope(envelope, recipient=world["mpc"], trust=trust, now_unix_s=now)


@PROPERTY
@given(revoked_in_s=st.integers(1, 300 * DAY_S))
def test_a_revocation_in_the_future_does_not_refuse_yet(world: World, revoked_in_s: int) -> None:
    trust = world.trust()
    trust.revoke(world["alice"].signing_cert, T0 + revoked_in_s)
    open_envelope(_cached_envelope(world), recipient=world["mpc"], trust=trust, now_unix_s=T0)


@PROPERTY
@given(
    now=st.one_of(
        st.integers(CERT_NOT_AFTER + 1, CERT_NOT_AFTER + 3650 * DAY_S),
        st.integers(0, CERT_NOT_BEFORE - 1),
    )
)
def test_an_envelope_opened_outside_the_sender_certificate_validity_is_refused(world: World, now: int) -> None:
    with pytest.raises(CertificateExpired):
        open_envelope(_cached_envelope(world), recipient=world["mpc"], trust=_cached_trust(world), now_unix_s=now)


def test_the_authority_revoking_reaches_a_trust_store_sharing_its_list(key_cache) -> None:
    """A trust store built on the authority's live revocation view sees revocations at once."""
    suite = get_suite("compact")
    authority = Authority.create(
        suite.generate_authority_key(), not_before_unix_s=T0 - DAY_S, not_after_unix_s=T0 + DAY_S
    )
    alice = authority.issue_identity("alice", "customer", suite, key_cache.keys(suite, 0), T0 - 60, T0 + 3600)
    mpc = authority.issue_identity("mpc", "payment_center", suite, key_cache.keys(suite, 2), T0 - 60, T0 + 3600)
    trust = TrustStore(authority.certificate, authority.revocations)
    for cert in alice.certificates + mpc.certificates:
        trust.add(cert)
    envelope = seal(
        sample_message(MessageType.CONFIRMATION), sender=alice, recipient_cert=mpc.agreement_cert, seq=1, sent_unix_s=T0
    )
    open_envelope(envelope, recipient=mpc, trust=trust, now_unix_s=T0)
    authority.revoke(alice.signing_cert, T0)
    with pytest.raises(CertificateRevoked):
        open_envelope(envelope, recipient=mpc, trust=trust, now_unix_s=T0)


_cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64) + 1, 2**64 - 1) | st.binary(max_size=40) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.integers(-40, 40) | st.text(max_size=3), inner, max_size=5),
    max_leaves=20,
)


@settings(PROPERTY, max_examples=int(__import__('os').environ.get('H2N','150')))
@given(
    body=st.lists(_cbor_values, min_size=0, max_size=5),
    tag=st.sampled_from([96, 18, 16]),
    raw=st.binary(max_size=200),
)
def test_arbitrary_input_is_refused_with_a_protocol_error(world: World, body: list, tag: int, raw: bytes) -> None:
    """Any CBOR shape, any bytes: a ProtocolError, never a bare exception."""
    for data in (cbor2.dumps(cbor2.CBORTag(tag, body)), raw):
        with pytest.raises(ProtocolError):
            open_envelope(data, recipient=world["mpc"], trust=_cached_trust(world), now_unix_s=T0)


def _paths(value, prefix=()):
    """Every position inside a decoded CBOR structure (list indexes and map keys)."""
    yield prefix
    if isinstance(value, cbor2.CBORTag):
        yield from _paths(value.value, prefix + ("tag",))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, prefix + (i,))
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, prefix + (key,))


def _replace(value, path, new):
    if not path:
        return new
    head, rest = path[0], path[1:]
    if head == "tag":
        return cbor2.CBORTag(value.tag, _replace(value.value, rest, new))
    if isinstance(value, list):
        return [(_replace(v, rest, new) if i == head else v) for i, v in enumerate(value)]
    return {k: (_replace(v, rest, new) if k == head else v) for k, v in value.items()}


@settings(PROPERTY, max_examples=int(__import__('os').environ.get('H2N','150')))
@given(data=st.data(), replacement=_cbor_values, inner_side=st.booleans())
def test_any_field_replaced_by_any_cbor_value_is_refused(world: World, data: st.DataObject, replacement, inner_side: bool) -> None:
    """Structure-aware fuzzing of both the COSE_Encrypt and (re-encrypted) the inner COSE_Sign1."""
    mpc = world["mpc"]
    envelope = _cached_envelope(world)
    if inner_side:
        inner, _ = decrypt_envelope(envelope, recipient=mpc)
        target = cbor2.loads(inner)
        # also reach into the protected header map
        protected = cbor2.loads(target.value[0])
        if data.draw(st.booleans(), label="into protected header"):
            path = data.draw(st.sampled_from(list(_paths(protected))[1:]), label="path")
            target = _replace(target, ("tag", 0), cbor2.dumps(_replace(protected, path, replacement), canonical=True))
        else:
            # the Sign1 unprotected header (x5chain) is not under the signature by design:
            # dropping it leaves a valid envelope, so it is fuzzed only through its value
            paths = [p for p in _paths(target) if p[:2] != ("tag", 1) or p == ("tag", 1, 33)]
            path = data.draw(st.sampled_from(paths), label="path")
            target = _replace(target, path, replacement)
        altered_inner = cbor2.dumps(target, canonical=True)
        if altered_inner == inner:  # replaced by an equal value
            return
        altered = encrypt_for(altered_inner, recipient_cert=mpc.agreement_cert, suite=world.suite)
    else:
        outer = cbor2.loads(envelope)
        path = data.draw(st.sampled_from(list(_paths(outer))), label="path")
        altered = cbor2.dumps(_replace(outer, path, replacement), canonical=True)
    if altered == envelope:
        return
    with pytest.raises(ProtocolError):
        open_envelope(altered, recipient=mpc, trust=_cached_trust(world), now_unix_s=T0, learn=False)


# --- the direct builders and readers --------------------------------------------------------


def _dumps(obj) -> bytes:
    return cbor2.dumps(obj, canonical=True)


_ints = st.one_of(st.integers(-(2**64) - 2, 2**64 + 2), st.sampled_from([0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, -24, -25, -256, -257, -(2**64), 2**64 - 1]))
_texts = st.text(max_size=300)


@settings(PROPERTY, max_examples=300)
@given(
    alg=_ints, kid=st.binary(max_size=300), contract_no=st.none() | _texts, seq=_ints, recipient_id=_texts,
    sender_id=_texts, message_type=_texts, sent=_ints,
)
def test_the_direct_protected_header_is_what_cbor2_writes(
    alg: int, kid: bytes, contract_no: str | None, seq: int, recipient_id: str, sender_id: str, message_type: str,
    sent: int,
) -> None:
    expected = {1: alg, 4: kid, "q": seq, "r": recipient_id, "s": sender_id, "t": message_type, "ts": sent}
    if contract_no is not None:
        expected["c"] = contract_no
    built = envelope._sign1_protected_item(alg, kid, contract_no, seq, recipient_id, sender_id, message_type, sent)
    if built is None:  # only integers beyond 64 bits (cbor2 writes a bignum) are left to cbor2
        assert any(not -(2**64) <= n < 2**64 for n in (alg, seq, sent))
    else:
        assert built == _dumps(expected)
        assert envelope._read_sign1_protected(built) == expected


@settings(PROPERTY, max_examples=100)
@given(
    protected=st.binary(max_size=300), payload=st.binary(max_size=70_000), signature=st.binary(max_size=600),
    x5chain=st.none() | st.binary(max_size=2_000), x5bag=st.none() | st.binary(max_size=300),
    nonce=st.binary(min_size=12, max_size=12), ephemeral=st.binary(min_size=32, max_size=32),
)
def test_the_direct_cose_structures_are_what_cbor2_writes(
    protected: bytes, payload: bytes, signature: bytes, x5chain: bytes | None, x5bag: bytes | None, nonce: bytes,
    ephemeral: bytes,
) -> None:
    unprotected = {key: value for key, value in ((33, x5chain), (32, x5bag)) if value is not None}
    item = envelope._sign1_unprotected(x5chain, x5bag)
    if x5chain is None and x5bag is not None:
        assert item is None  # sealing never attaches the bag alone
    else:
        assert item == _dumps(unprotected)
        sign1 = envelope._sign1_bytes(protected, item, payload, signature)
        assert sign1 == _dumps(cbor2.CBORTag(18, [protected, unprotected, payload, signature]))
    assert envelope._sig_structure(protected, payload) == _dumps(["Signature1", protected, b"", payload])
    rsa_recipient = [b"", {1: -41}, signature]
    ecdh_recipient = [_dumps({1: -25}), {-1: {1: 1, -1: 4, -2: ephemeral}}, b""]
    for recipient, item in (
        (rsa_recipient, envelope._RSA_RECIPIENT_PREFIX + envelope._bstr(signature)),
        (ecdh_recipient, envelope._ECDH_ES_RECIPIENT_PREFIX + ephemeral + envelope._ECDH_ES_RECIPIENT_SUFFIX),
    ):
        assert item == _dumps(recipient)
        assert envelope._encrypt_bytes(protected, nonce, payload, item) == _dumps(
            cbor2.CBORTag(96, [protected, {5: nonce}, payload, [recipient]])
        )


@contextlib.contextmanager
def _general_path_only() -> Iterator[None]:
    """Open without the direct readers: every envelope and payload takes cbor2 and the
    field-by-field checks."""
    saved = envelope._read_encrypt, envelope._read_sign1, messages._read_payload
    envelope._read_encrypt = lambda *args: None  # type: ignore[assignment]
    envelope._read_sign1 = lambda *args: None  # type: ignore[assignment]
    messages._read_payload = lambda *args: None  # type: ignore[assignment]
    try:
        yield
    finally:
        envelope._read_encrypt, envelope._read_sign1, messages._read_payload = saved


def _outcome(world: World, data: bytes) -> tuple:
    """What opening ``data`` gives: the opened facts and checks, or the error and its checks."""
    try:
        opened = open_envelope(data, recipient=world["mpc"], trust=_cached_trust(world), now_unix_s=T0, learn=False)
    except ProtocolError as exc:
        return (type(exc), exc.detail, getattr(exc, "checks", None))
    return (opened.message, opened.seq, opened.sender_id, opened.suite, opened.checks)


@settings(PROPERTY, max_examples=int(__import__("os").environ.get("H2N", "150")))
@given(data=st.data(), replacement=_cbor_values | st.floats(), inner_side=st.booleans(), flips=st.integers(0, 3))
def test_the_direct_readers_decide_exactly_as_the_general_path(
    world: World, data: st.DataObject, replacement, inner_side: bool, flips: int
) -> None:
    """Same result, same error, same message, same checks, whichever path reads the envelope."""
    mpc = world["mpc"]
    original = _cached_envelope(world)
    if flips:
        altered = bytearray(original)
        for _ in range(flips):
            altered[data.draw(st.integers(0, len(altered) - 1))] ^= data.draw(st.integers(1, 255))
        candidate = bytes(altered)
    elif inner_side:
        inner, _ = decrypt_envelope(original, recipient=mpc)
        target = cbor2.loads(inner)
        path = data.draw(st.sampled_from(list(_paths(target))), label="path")
        candidate = encrypt_for(_dumps(_replace(target, path, replacement)), recipient_cert=mpc.agreement_cert,
                                suite=world.suite)
    else:
        outer = cbor2.loads(original)
        path = data.draw(st.sampled_from(list(_paths(outer))), label="path")
        candidate = _dumps(_replace(outer, path, replacement))
    direct = _outcome(world, candidate)
    with _general_path_only():
        general = _outcome(world, candidate)
    assert direct == general


def test_the_direct_readers_decide_every_flipped_byte_as_the_general_path(world: World) -> None:
    original = _cached_envelope(world)
    for position in range(len(original)):
        for flip in (0x01, 0x80):
            altered = bytearray(original)
            altered[position] ^= flip
            direct = _outcome(world, bytes(altered))
            with _general_path_only():
                assert _outcome(world, bytes(altered)) == direct, (position, flip)


def test_the_direct_readers_take_the_envelopes_sealing_makes(world: World) -> None:
    """The fast path is the path: every envelope sealed opens without the general decoder."""
    for include_sender_cert in (False, True):
        data = _confirmation_envelope(world, include_sender_cert=include_sender_cert)
        assert envelope._read_encrypt(data) is not None
        inner, _ = decrypt_envelope(data, recipient=world["mpc"])
        assert envelope._read_sign1(inner) is not None


# --- the compact suite: direct ECDH-ES + HKDF-256 ---------------------------------------------


def _compact_recipient(compact_world: World) -> tuple[cbor2.CBORTag, list]:
    outer = cbor2.loads(_confirmation_envelope(compact_world))
    return outer, outer.value[3][0]


def test_compact_agrees_its_content_key_directly(compact_world: World) -> None:
    outer, (r_protected, r_unprotected, ciphertext) = _compact_recipient(compact_world)
    assert cbor2.loads(outer.value[0]) == {1: 1}  # A128GCM
    assert cbor2.loads(r_protected) == {1: -25}  # ECDH-ES + HKDF-256
    assert set(r_unprotected) == {-1} and len(r_unprotected[-1][-2]) == 32
    assert ciphertext == b""  # nothing wrapped: the content key is derived
    opened = open_envelope(_dumps(outer), recipient=compact_world["mpc"], trust=compact_world.trust(), now_unix_s=T0)
    assert str(opened.checks[0]) == "decrypted: tag ok (ECDH-ES+HKDF-256, A128GCM)"


def test_compact_content_keys_differ_every_time(compact_world: World) -> None:
    """A fresh ephemeral key per message: a fresh content key per message."""
    keys = set()
    for _ in range(3):
        _outer, (r_protected, r_unprotected, _ct) = _compact_recipient(compact_world)
        keys.add(
            suites.ecdh_es_rederive(compact_world["mpc"].agreement_key, r_unprotected[-1][-2], 1, r_protected)
        )
    assert len(keys) == 3


@pytest.mark.parametrize(
    "change, error, words",
    [
        ("a128kw", UnsupportedAlgorithm, "ECDH-ES+A128KW (-29) is not accepted"),
        ("wrapped", MalformedMessage, "recipient's ciphertext must be empty"),
        ("a256gcm", UnsupportedAlgorithm, "accepted with A128GCM only"),
    ],
)
def test_compact_refuses_anything_but_direct_agreement(compact_world: World, change: str, error, words: str) -> None:
    outer, recipient = _compact_recipient(compact_world)
    if change == "a128kw":  # the former key distribution, with a 24-byte wrapped key
        recipient[0] = _dumps({1: -29})
        recipient[2] = bytes(24)
    elif change == "wrapped":
        recipient[2] = bytes(24)
    else:
        outer.value[0] = _dumps({1: 3})
    with pytest.raises(error, match=re.escape(words)) as info:
        open_envelope(_dumps(outer), recipient=compact_world["mpc"], trust=compact_world.trust(), now_unix_s=T0)
    assert [c.name for c in info.value.checks] == ["decrypted"]


# --- key checks by class --------------------------------------------------------------------


def test_sign_and_verify_take_only_the_key_half_that_fits(world: World) -> None:
    """The key-kind answers cached per class keep private and public halves apart."""
    party = world["alice"]
    alg = suites.signature_alg_for(party.signing_key)
    public = party.signing_key.public_key()
    signature = suites.sign(alg, party.signing_key, b"data")
    assert suites.verify(alg, public, b"data", signature)
    assert not suites.verify(alg, party.signing_key, b"data", signature)  # type: ignore[arg-type]
    assert not suites.verify(alg, public, b"other", signature)
    with pytest.raises(UnsupportedAlgorithm):
        suites.sign(alg, public, b"data")  # type: ignore[arg-type]
    other_alg = suites.ALG_EDDSA if alg == suites.ALG_PS256 else suites.ALG_PS256
    with pytest.raises(UnsupportedAlgorithm):
        suites.sign(other_alg, party.signing_key, b"data")
    assert not suites.verify(other_alg, public, b"data", signature)
    assert suites.private_key_kind(party.signing_key) == suites.key_kind(public)
    assert suites.private_key_kind(public) is None and suites.private_key_kind(b"key") is None
    with pytest.raises(UnsupportedAlgorithm):
        suites.key_kind(b"key")  # type: ignore[arg-type]
