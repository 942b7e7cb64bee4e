"""COSE sign-then-encrypt: the envelope every protocol SMS travels in.

``seal`` CBOR-encodes a message, signs it as a tagged COSE_Sign1 (RFC 9052 §4.2) with the
sender's key, then encrypts that whole Sign1 as a tagged COSE_Encrypt (RFC 9052 §5.1)
under a fresh content key for the one recipient: a random key wrapped with RSA-OAEP-256
(RFC 8230), or, in the compact suite, a key agreed directly with ECDH-ES + HKDF-256 over
X25519 and an ephemeral key (RFC 9053 §6.3.1). ``open_envelope`` undoes it and checks, in
order: size and shape, decryption (GCM tag), signature, certificate chain to the
authority, validity at ``now_unix_s``, revocation, and the signed headers against the
certificates and the payload. Each failure raises its own :class:`ProtocolError`.

Layout (see "Envelope format" in docs/protocol.md for the byte budget)::

    96([ << {1: content_alg} >>, {5: iv}, ciphertext_with_tag,
         [[ recipient_protected, recipient_unprotected, wrapped_cek or h'' ]] ])
    ciphertext decrypts to
    18([ << {1: sig_alg, 4: kid, "t": type, "s": sender, "r": recipient,
             "c": contract_no (absent if none), "q": seq, "ts": sent_unix_s} >>,
         {} or {33: sender_cert_der}, payload_cbor, signature ])

Every CBOR item is deterministically encoded, and opening refuses anything that is not
(trailing bytes, duplicate keys, non-shortest forms), so an altered byte cannot slip
through as an "equivalent" encoding. Both directions handle the fixed-shape COSE arrays
by their parts (a tag, an array head, byte strings and a few small maps) instead of
running the general CBOR encoder and decoder: sealing concatenates them, opening reads
them back, accepting only the bytes sealing writes (every head in its shortest form).
Anything not in the shape sealing makes goes through the general checks (decode with
cbor2, re-encode and compare), which name the flaw.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any, NamedTuple

import cbor2
from cryptography import x509

from mpay.protocol import messages
from mpay.protocol.errors import (
    BadSignature,
    CertificateError,
    DecryptFailed,
    HeaderMismatch,
    MalformedMessage,
    MessageTooLarge,
    ProtocolError,
    UnknownCertificate,
    UnsupportedAlgorithm,
    WrongRecipient,
)
from mpay.protocol.messages import Message, MessageType, decode_message, encode_message, read_scalar
from mpay.protocol.pki import (
    MAX_PARTY_ID_CHARS,
    CertInfo,
    Identity,
    TrustStore,
    cert_info,
    load_der_certificate,
)
from mpay.protocol.replay import MAX_SEQ
from mpay.protocol.suites import (
    ALG_A128GCM,
    ALG_ECDH_ES_A128KW,
    ALG_ECDH_ES_HKDF_256,
    ALG_EDDSA,
    ALG_NAMES,
    ALG_PS256,
    ALG_RSAES_OAEP_SHA256,
    COSE_CRV_X25519,
    COSE_KEY_KTY,
    COSE_KEY_OKP_CRV,
    COSE_KEY_OKP_X,
    COSE_KTY_OKP,
    CONTENT_KEY_BYTES,
    GCM_NONCE_BYTES,
    SUITES,
    RandomBytes,
    Suite,
    aead_decrypt,
    aead_encrypt,
    ecdh_es_derive,
    ecdh_es_rederive,
    get_suite,
    private_key_kind,
    rsa_oaep_unwrap,
    rsa_oaep_wrap,
    sign,
    signature_alg_for,
    verify,
)

# --- limits ---------------------------------------------------------------------------------
#: octets of one part of a concatenated binary SMS (140 minus the 6-octet user-data header)
SMS_PART_OCTETS = 134
#: most parts of one concatenated SMS
MAX_SMS_PARTS = 255
#: largest envelope accepted or produced: 255 parts x 134 octets = 34,170 bytes
MAX_ENVELOPE_BYTES = MAX_SMS_PARTS * SMS_PART_OCTETS
#: latest send time accepted (9999-12-31T23:59:59Z)
MAX_UNIX_S = 253_402_300_799
#: the X25519 field prime; a canonical public key (u-coordinate) is below it
X25519_P = 2**255 - 19
#: length of an X25519 public key (RFC 7748)
X25519_KEY_BYTES = 32
#: deepest nesting of CBOR arrays/maps accepted in an envelope's structure
_MAX_CBOR_DEPTH = 8
#: longest contract number in a header
MAX_CONTRACT_CHARS = 64
#: longest message type in a header
MAX_TYPE_CHARS = 64

# --- COSE labels ----------------------------------------------------------------------------
TAG_COSE_ENCRYPT = 96
TAG_COSE_SIGN1 = 18
H_ALG = 1
H_KID = 4
H_IV = 5
H_EPHEMERAL_KEY = -1
H_X5CHAIN = 33
#: x5bag (RFC 9360): the compact suite's X25519 certificate travels beside the signing one
H_X5BAG = 32
#: private header labels (short text labels, RFC 9052 §3.1 allows tstr labels)
H_TYPE = "t"
H_SENDER = "s"
H_RECIPIENT = "r"
H_CONTRACT = "c"
H_SEQ = "q"
H_SENT = "ts"

_SIGN1_PROTECTED_REQUIRED = frozenset({H_ALG, H_KID, H_TYPE, H_SENDER, H_RECIPIENT, H_SEQ, H_SENT})
_SIGN1_PROTECTED_ALLOWED = _SIGN1_PROTECTED_REQUIRED | {H_CONTRACT}


# The per-message records are NamedTuples: immutable like a frozen dataclass, and built in a
# fraction of its time (a frozen dataclass sets each field through object.__setattr__).


class Check(NamedTuple):
    """One step of opening an envelope, for traces and the teaching demo."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.ok else f"{self.name}: FAILED ({self.detail})"


class SignedHeaders(NamedTuple):
    """The facts bound under the sender's signature."""

    message_type: str
    sender_id: str
    recipient_id: str
    contract_no: str | None
    seq: int
    sent_unix_s: int


class Opened(NamedTuple):
    """A verified envelope: the message and everything that was checked."""

    message: Message
    message_type: MessageType
    sender_id: str
    recipient_id: str
    contract_no: str | None
    seq: int
    sent_unix_s: int
    sender_cert: x509.Certificate
    sender_role: str
    suite: str
    #: True when the sender's certificate came in the envelope (x5chain) and was not known before
    sender_cert_learned: bool
    checks: tuple[Check, ...]


# --- CBOR: the general path -----------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


_PLAIN_SCALARS = (int, bytes, str)


def _plain(obj: Any, depth: int = 0) -> bool:
    """True when ``obj`` holds only ints (not bools), byte and text strings, arrays and maps.

    Python treats ``1 == 1.0 == True``, so a float or bool label could otherwise pose as an
    integer one; envelopes never contain floats, bools, null or nested tags.
    """
    if depth > _MAX_CBOR_DEPTH:
        return False
    kind = type(obj)
    if kind in _PLAIN_SCALARS:
        return True
    if kind is list:
        for item in obj:
            if type(item) not in _PLAIN_SCALARS and not _plain(item, depth + 1):
                return False
        return True
    if kind is dict:
        for key, value in obj.items():
            if type(key) not in _PLAIN_SCALARS and not _plain(key, depth + 1):
                return False
            if type(value) not in _PLAIN_SCALARS and not _plain(value, depth + 1):
                return False
        return True
    return False


def _decode(data: bytes, what: str) -> Any:
    """One CBOR item (optionally tagged); :class:`MalformedMessage` if ``data`` is not CBOR."""
    try:
        return cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types (CBORDecodeError, ValueError, ...)
        raise MalformedMessage(f"{what} is not valid CBOR: {exc}") from exc


def _require_exact(obj: Any, data: bytes, what: str) -> None:
    """The general check: ``data`` is exactly the deterministic encoding of ``obj`` (decoded
    from it), and ``obj`` holds only plain types."""
    try:
        again = _dumps(obj)
    except Exception as exc:  # an object cbor2 decoded but cannot encode again
        raise MalformedMessage(f"{what} is not valid CBOR: {exc}") from exc
    if again != data:
        raise MalformedMessage(f"{what} is not deterministically encoded (or has trailing bytes)")
    if not _plain(obj.value if isinstance(obj, cbor2.CBORTag) else obj):
        raise MalformedMessage(f"{what} holds values other than integers, strings, arrays and maps")


def _loads_exact(data: bytes, what: str) -> Any:
    """Decode one CBOR item (optionally tagged) and insist ``data`` is exactly its
    deterministic encoding and holds only plain types."""
    obj = _decode(data, what)
    _require_exact(obj, data, what)
    return obj


# --- CBOR: the fixed shapes, built directly -------------------------------------------------
# Each builder returns exactly what cbor2.dumps(..., canonical=True) returns for the same
# value (tests/test_envelope.py compares them); cbor2 spends 3-6 µs setting up each call.


def _head(major: int, n: int) -> bytes:
    """The head of a CBOR item: major type (pre-shifted: 0x00, 0x20, ... 0xa0) and the
    shortest form of its argument ``n`` (0 <= n < 2**64)."""
    if n < 24:
        return bytes((major | n,))
    if n < 0x100:
        return bytes((major | 24, n))
    if n < 0x10000:
        return bytes((major | 25,)) + n.to_bytes(2, "big")
    if n < 0x100000000:
        return bytes((major | 26,)) + n.to_bytes(4, "big")
    return bytes((major | 27,)) + n.to_bytes(8, "big")


def _bstr_head(n: int) -> bytes:
    """The head of a byte string of ``n`` bytes (major type 2, shortest length)."""
    if n < 24:
        return bytes((0x40 | n,))
    if n < 0x100:
        return bytes((0x58, n))
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big")
    return b"\x5a" + n.to_bytes(4, "big")


def _bstr(data: bytes) -> bytes:
    """The deterministic CBOR encoding of a byte string (major type 2, shortest length)."""
    n = len(data)
    if n < 24:
        return bytes((0x40 | n,)) + data
    if n < 0x100:
        return bytes((0x58, n)) + data
    return _bstr_head(n) + data


_UINT64_LIMIT = 1 << 64


#: encodings of the integers that fit the initial byte or one more (algorithms, small counters)
_SMALL_INT_ITEMS = {n: cbor2.dumps(n) for n in range(-256, 256)}


def _int_item(n: int) -> bytes | None:
    """An integer's deterministic encoding, or None beyond 64 bits (cbor2 writes a bignum)."""
    small = _SMALL_INT_ITEMS.get(n)
    if small is not None:
        return small
    if n >= 0:
        return _head(0x00, n) if n < _UINT64_LIMIT else None
    n = -1 - n
    return _head(0x20, n) if n < _UINT64_LIMIT else None


def _text_item(text: str) -> bytes:
    """A text string's deterministic encoding (UnicodeEncodeError for a lone surrogate)."""
    raw = text.encode("utf-8")
    n = len(raw)
    return (bytes((0x60 | n,)) if n < 24 else _head(0x60, n)) + raw


#: the Sign1 protected labels in the order deterministic encoding sorts them (checked below)
_SIGN1_LABEL_ORDER = (H_ALG, H_KID, H_CONTRACT, H_SEQ, H_RECIPIENT, H_SENDER, H_TYPE, H_SENT)
assert tuple(cbor2.loads(_dumps(dict.fromkeys(_SIGN1_LABEL_ORDER, 0)))) == _SIGN1_LABEL_ORDER
assert frozenset(_SIGN1_LABEL_ORDER) == _SIGN1_PROTECTED_ALLOWED
_L_ALG, _L_KID, _L_CONTRACT, _L_SEQ, _L_RECIPIENT, _L_SENDER, _L_TYPE, _L_SENT = map(_dumps, _SIGN1_LABEL_ORDER)


def _sign1_protected_item(
    alg: Any, kid: Any, contract_no: Any, seq: Any, recipient_id: Any, sender_id: Any, message_type: Any, sent: Any
) -> bytes | None:
    """``_dumps`` of the Sign1 protected header with these values, built directly; None when
    a value is not of the type sealing gives it (then cbor2 has the say)."""
    if (
        type(alg) is not int
        or type(kid) is not bytes
        or type(seq) is not int
        or type(sent) is not int
        or type(recipient_id) is not str
        or type(sender_id) is not str
        or type(message_type) is not str
        or (contract_no is not None and type(contract_no) is not str)
    ):
        return None
    alg_item, seq_item, sent_item = _int_item(alg), _int_item(seq), _int_item(sent)
    if alg_item is None or seq_item is None or sent_item is None:
        return None
    try:
        return b"".join((
            b"\xa7" if contract_no is None else b"\xa8",
            _L_ALG, alg_item,
            _L_KID, _bstr(kid),
            b"" if contract_no is None else _L_CONTRACT + _text_item(contract_no),
            _L_SEQ, seq_item,
            _L_RECIPIENT, _text_item(recipient_id),
            _L_SENDER, _text_item(sender_id),
            _L_TYPE, _text_item(message_type),
            _L_SENT, sent_item,
        ))
    except UnicodeEncodeError:  # a lone surrogate: let cbor2 say what it says about it
        return None


#: the Sig_structure up to its protected header: ["Signature1", (RFC 9052 §4.4); an empty byte string
_SIG_STRUCTURE_HEAD = b"\x84\x6aSignature1"
_EMPTY_BSTR = b"\x40"
assert _dumps(["Signature1", b"", b"", b""]) == _SIG_STRUCTURE_HEAD + _EMPTY_BSTR * 3
#: heads of the two tagged arrays: 18([ (4 items) and 96([ (4 items)
_SIGN1_HEAD = _dumps(cbor2.CBORTag(TAG_COSE_SIGN1, [0, 0, 0, 0]))[:-4]
_ENCRYPT_HEAD = _dumps(cbor2.CBORTag(TAG_COSE_ENCRYPT, [0, 0, 0, 0]))[:-4]
#: {5: (12-byte IV follows)}, [ (one recipient follows)
_IV_MAP_HEAD = _dumps({H_IV: b"\0" * GCM_NONCE_BYTES})[: -GCM_NONCE_BYTES]
_ONE_RECIPIENT = b"\x81"
#: an RSA-OAEP recipient up to its wrapped key: [h'', {1: -41}, (wrapped key follows)
_RSA_RECIPIENT_PREFIX = _dumps([b"", {H_ALG: ALG_RSAES_OAEP_SHA256}, b""])[:-1]
_RSA_R_UNPROTECTED = {H_ALG: ALG_RSAES_OAEP_SHA256}
#: the ECDH-ES recipient's protected header, and its parts around the ephemeral key:
#: [<< {1: -25} >>, {-1: {1: 1, -1: 4, -2: (32-byte key follows)}}, h'' ]
_R_PROTECTED_ECDH_ES = _dumps({H_ALG: ALG_ECDH_ES_HKDF_256})
_ECDH_ES_RECIPIENT_PREFIX, _ECDH_ES_RECIPIENT_SUFFIX = _dumps(
    [_R_PROTECTED_ECDH_ES,
     {H_EPHEMERAL_KEY: {COSE_KEY_KTY: COSE_KTY_OKP, COSE_KEY_OKP_CRV: COSE_CRV_X25519,
                        COSE_KEY_OKP_X: b"\xee" * X25519_KEY_BYTES}},
     b""]
).split(b"\xee" * X25519_KEY_BYTES)
#: Sign1 unprotected headers: {} / {33: (certificate follows)} / {32: (bag), 33: (certificate)}
_NO_HEADERS = b"\xa0"
_X5CHAIN_ONLY_HEAD = b"\xa1" + _dumps(H_X5CHAIN)
_X5BAG_AND_CHAIN_HEAD = b"\xa2" + _dumps(H_X5BAG)
_X5CHAIN_LABEL = _dumps(H_X5CHAIN)


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``_dumps(["Signature1", protected, b"", payload])`` (RFC 9052 §4.4), built directly:
    it is computed twice per SMS and only its byte strings vary."""
    return b"".join(
        (_SIG_STRUCTURE_HEAD, _bstr_head(len(protected)), protected, _EMPTY_BSTR, _bstr_head(len(payload)), payload)
    )


def _sign1_unprotected(x5chain: bytes | None, x5bag: bytes | None) -> bytes | None:
    """The Sign1 unprotected header with the sender's certificate(s) attached or not; None
    for a combination sealing never makes."""
    if x5chain is None:
        return _NO_HEADERS if x5bag is None else None
    if x5bag is None:
        return _X5CHAIN_ONLY_HEAD + _bstr(x5chain)
    return _X5BAG_AND_CHAIN_HEAD + _bstr(x5bag) + _X5CHAIN_LABEL + _bstr(x5chain)


def _sign1_bytes(protected: bytes, unprotected: bytes, payload: bytes, signature: bytes) -> bytes:
    """``_dumps(CBORTag(18, [protected, unprotected, payload, signature]))`` with the
    unprotected header already encoded."""
    return b"".join((
        _SIGN1_HEAD, _bstr_head(len(protected)), protected, unprotected, _bstr_head(len(payload)), payload,
        _bstr_head(len(signature)), signature,
    ))


def _encrypt_bytes(protected: bytes, nonce: bytes, ciphertext: bytes, recipient: bytes) -> bytes:
    """``_dumps(CBORTag(96, [protected, {5: nonce}, ciphertext, [recipient]]))`` with the
    recipient already encoded (and a 12-byte nonce)."""
    return b"".join((
        _ENCRYPT_HEAD, _bstr_head(len(protected)), protected, _IV_MAP_HEAD, nonce, _bstr_head(len(ciphertext)),
        ciphertext, _ONE_RECIPIENT, recipient,
    ))


# --- CBOR: the fixed shapes, read directly ---------------------------------------------------
# Each reader (below, with opening) takes exactly the bytes the builders above make and returns
# their parts, or None for anything else (then cbor2 decodes it and the general checks name the
# flaw). A head is accepted only in its shortest form, as the builders write it, so a reader
# accepts a byte string exactly when decoding it and building it again gives the same bytes.


def _read_bytes(data: bytes, pos: int) -> tuple[bytes, int] | None:
    """The byte string at ``pos`` and the position after it, or None (as :func:`read_scalar`;
    the short heads of signatures, keys and headers are read here)."""
    head = data[pos]
    if 0x40 <= head < 0x58:
        start, end = pos + 1, pos + 1 + head - 0x40
    elif head == 0x58 and data[pos + 1] >= 24:
        start, end = pos + 2, pos + 2 + data[pos + 1]
    else:
        read = read_scalar(data, pos)
        return read if read is not None and type(read[0]) is bytes else None  # type: ignore[return-value]
    return (data[start:end], end) if end <= len(data) else None


#: a few short, constant encodings (COSE_Encrypt and recipient protected headers, the
#: Enc_structure over them) are decoded/encoded once; bounded, as everything is
_SMALL_CACHE_MAX = 64
_SMALL_HEADER_BYTES = 8
_small_headers: dict[bytes, dict] = {}
_enc_structures: dict[bytes, bytes] = {}


def _enc_structure(protected: bytes) -> bytes:
    """``_dumps(["Encrypt", protected, b""])`` (RFC 9052 §5.3), cached for short headers."""
    cached = _enc_structures.get(protected)
    if cached is None:
        cached = _dumps(["Encrypt", protected, b""])
        if len(protected) <= _SMALL_HEADER_BYTES and len(_enc_structures) < _SMALL_CACHE_MAX:
            _enc_structures[protected] = cached
    return cached


def _header_map(protected: Any, what: str) -> dict:
    if not isinstance(protected, bytes):
        raise MalformedMessage(f"{what} protected header is not a byte string")
    if protected == b"":
        return {}
    cached = _small_headers.get(protected)
    if cached is not None:
        return dict(cached)
    decoded = _loads_exact(protected, f"{what} protected header")
    if not isinstance(decoded, dict) or not decoded:
        raise MalformedMessage(f"{what} protected header is not a non-empty map")
    if len(protected) <= _SMALL_HEADER_BYTES and len(_small_headers) < _SMALL_CACHE_MAX:
        _small_headers[protected] = dict(decoded)
    return decoded


def _need_keys(m: dict, allowed: frozenset | set, required: frozenset | set, what: str) -> None:
    keys = set(m)
    if not required <= keys or not keys <= allowed:
        raise MalformedMessage(f"{what} has labels {sorted(map(str, keys))}, expected {sorted(map(str, required))}")


#: certificate objects met before -> their CertInfo, by identity: ``cert_info``'s own cache
#: hashes the whole certificate first (about 1.3 µs), and a party seals with the same
#: certificate objects every time. An entry keeps its certificate alive, so an id is never
#: reused while it is here; bounded, as everything is.
_INFO_BY_ID: dict[int, tuple[x509.Certificate, CertInfo]] = {}
_INFO_BY_ID_MAX = 4096


def _cert_info(cert: x509.Certificate) -> CertInfo:
    entry = _INFO_BY_ID.get(id(cert))
    if entry is not None and entry[0] is cert:
        return entry[1]
    info = cert_info(cert)
    if len(_INFO_BY_ID) >= _INFO_BY_ID_MAX:
        _INFO_BY_ID.clear()
    _INFO_BY_ID[id(cert)] = (cert, info)
    return info


# --- sealing ----------------------------------------------------------------------------------

#: the constant protected headers of sealing, per content algorithm
_ENC_PROTECTED: dict[int, bytes] = {alg: _dumps({H_ALG: alg}) for alg in CONTENT_KEY_BYTES}


def _sign1_protected(alg: int, kid: bytes, headers: SignedHeaders) -> bytes:
    """The Sign1 protected header: the signed facts, deterministically encoded."""
    message_type, sender_id, recipient_id, contract_no, seq, sent_unix_s = headers
    message_type = str(message_type)
    built = _sign1_protected_item(alg, kid, contract_no, seq, recipient_id, sender_id, message_type, sent_unix_s)
    if built is not None:
        return built
    # headers of unusual types (sign_payload is public): cbor2 encodes them, or refuses
    protected_map: dict[Any, Any] = {
        H_ALG: alg,
        H_KID: kid,
        H_TYPE: message_type,
        H_SENDER: sender_id,
        H_RECIPIENT: recipient_id,
        H_SEQ: seq,
        H_SENT: sent_unix_s,
    }
    if contract_no is not None:
        protected_map[H_CONTRACT] = contract_no
    return _dumps(protected_map)


def _sign(alg: int, headers: SignedHeaders, payload: bytes, sender: Identity, include_sender_cert: bool) -> bytes:
    info = _cert_info(sender.signing_cert)
    protected = _sign1_protected(alg, info.kid, headers)
    signature = sign(alg, sender.signing_key, _sig_structure(protected, payload))
    if not include_sender_cert:
        unprotected = _NO_HEADERS
    elif sender.agreement_cert is sender.signing_cert:
        unprotected = _X5CHAIN_ONLY_HEAD + _bstr(info.der)
    else:
        bag = _cert_info(sender.agreement_cert).der
        unprotected = _X5BAG_AND_CHAIN_HEAD + _bstr(bag) + _X5CHAIN_LABEL + _bstr(info.der)
    return _sign1_bytes(protected, unprotected, payload, signature)


def sign_payload(
    headers: SignedHeaders,
    payload: bytes,
    *,
    sender: Identity,
    include_sender_cert: bool = False,
) -> bytes:
    """A tagged COSE_Sign1 over ``payload`` with ``headers`` in its protected header.

    Low-level: :func:`seal` derives the headers from the message. Exposed for adversary
    scenarios (a legitimate party lying in its headers) and tests.
    """
    return _sign(signature_alg_for(sender.signing_key), headers, payload, sender, include_sender_cert)


def _encrypt(inner: bytes, recipient: CertInfo, suite: Suite, random_bytes: RandomBytes) -> bytes:
    if suite.key_distribution_alg == ALG_RSAES_OAEP_SHA256 and recipient.key_kind == "rsa":
        cek = random_bytes(suite.content_key_bytes)
        nonce = random_bytes(GCM_NONCE_BYTES)
        if len(cek) != suite.content_key_bytes or len(nonce) != GCM_NONCE_BYTES:
            raise ValueError("random_bytes returned the wrong number of bytes")
        wrapped = rsa_oaep_wrap(recipient.public_key, cek)  # type: ignore[arg-type]
        recipient_item = _RSA_RECIPIENT_PREFIX + _bstr(wrapped)
    elif suite.key_distribution_alg == ALG_ECDH_ES_HKDF_256 and recipient.key_kind == "x25519":
        nonce = random_bytes(GCM_NONCE_BYTES)
        if len(nonce) != GCM_NONCE_BYTES:
            raise ValueError("random_bytes returned the wrong number of bytes")
        epk, cek = ecdh_es_derive(
            recipient.public_key, suite.content_alg, _R_PROTECTED_ECDH_ES, random_bytes  # type: ignore[arg-type]
        )
        recipient_item = _ECDH_ES_RECIPIENT_PREFIX + epk + _ECDH_ES_RECIPIENT_SUFFIX
    else:
        raise UnsupportedAlgorithm(
            f"suite {suite.name} cannot encrypt to a {recipient.key_kind} certificate ({recipient.party_id})"
        )
    protected = _ENC_PROTECTED.get(suite.content_alg) or _dumps({H_ALG: suite.content_alg})
    ciphertext = aead_encrypt(cek, nonce, inner, _enc_structure(protected))
    return _encrypt_bytes(protected, nonce, ciphertext, recipient_item)


def encrypt_for(
    inner: bytes,
    *,
    recipient_cert: x509.Certificate,
    suite: Suite | str,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """A tagged COSE_Encrypt of ``inner`` (any bytes, normally a Sign1) for one recipient."""
    suite = get_suite(suite) if isinstance(suite, str) else suite
    return _encrypt(inner, _cert_info(recipient_cert), suite, random_bytes)


def seal(
    message: Message,
    *,
    sender: Identity,
    recipient_cert: x509.Certificate,
    seq: int,
    sent_unix_s: int,
    suite: Suite | str | None = None,
    random_bytes: RandomBytes = os.urandom,
    include_sender_cert: bool = False,
) -> bytes:
    """Sign ``message`` as ``sender`` and encrypt it for the owner of ``recipient_cert``.

    ``recipient_cert`` is the recipient's encryption certificate (RSA, or its X25519
    certificate in the compact suite); the recipient id in the headers is its CN.
    ``include_sender_cert`` adds the sender's certificate (x5chain) so a first-contact
    receiver can learn it. Returns the tagged COSE_Encrypt bytes.
    """
    suite = get_suite(sender.suite if suite is None else suite) if not isinstance(suite, Suite) else suite
    alg = signature_alg_for(sender.signing_key)
    if alg != suite.signature_alg:
        raise UnsupportedAlgorithm(f"sender {sender.party_id}'s key does not sign with suite {suite.name}")
    if not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be an int in 0..{MAX_SEQ}")
    if not isinstance(sent_unix_s, int) or not 0 <= sent_unix_s <= MAX_UNIX_S:
        raise ValueError(f"sent_unix_s must be an int in 0..{MAX_UNIX_S}")
    recipient = _cert_info(recipient_cert)
    headers = SignedHeaders(
        str(message.message_type), sender.party_id, recipient.party_id, messages.contract_no_of(message), seq, sent_unix_s
    )
    inner = _sign(alg, headers, encode_message(message), sender, include_sender_cert)
    envelope = _encrypt(inner, recipient, suite, random_bytes)
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise MessageTooLarge(f"envelope of {len(envelope)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return envelope


# --- opening: the COSE_Encrypt --------------------------------------------------------------

class _EncryptParts(NamedTuple):
    """A COSE_Encrypt that passed every structural check."""

    protected: bytes
    content_alg: int
    nonce: bytes
    ciphertext: bytes
    key_distribution_alg: int
    recipient_protected: bytes
    #: the sender's ephemeral X25519 key (ECDH-ES), else None
    ephemeral_key: bytes | None
    #: the RSA-OAEP wrapped content key (empty for ECDH-ES)
    wrapped: bytes


#: how each envelope sealing makes begins, up to its IV (``96([<< {1: alg} >>, {5: ``) ->
#: (that protected header, alg); all of one length
_ENCRYPT_PREFIXES: dict[bytes, tuple[bytes, int]] = {
    _ENCRYPT_HEAD + _bstr(protected) + _IV_MAP_HEAD: (protected, alg) for alg, protected in _ENC_PROTECTED.items()
}
_ENCRYPT_PREFIX_BYTES = len(next(iter(_ENCRYPT_PREFIXES)))
assert all(len(prefix) == _ENCRYPT_PREFIX_BYTES for prefix in _ENCRYPT_PREFIXES)
#: the one recipient of each kind up to its variable part: [h'', {1: -41}, (wrapped key) and
#: [<< {1: -25} >>, {-1: {1: 1, -1: 4, -2: (32-byte ephemeral key)}}, h'' ]
_RSA_RECIPIENT_HEAD = _ONE_RECIPIENT + _RSA_RECIPIENT_PREFIX
_ECDH_ES_RECIPIENT_HEAD = _ONE_RECIPIENT + _ECDH_ES_RECIPIENT_PREFIX


def _read_encrypt(data: bytes) -> _EncryptParts | None:
    """The parts of an envelope in exactly the shape sealing makes (:func:`_encrypt_bytes`),
    all checks passed; None for anything else (then the general checks run and name the flaw)."""
    try:
        known = _ENCRYPT_PREFIXES.get(data[:_ENCRYPT_PREFIX_BYTES])
        if known is None:
            return None
        protected, content_alg = known
        pos = _ENCRYPT_PREFIX_BYTES
        nonce = data[pos : pos + GCM_NONCE_BYTES]
        read = _read_bytes(data, pos + GCM_NONCE_BYTES)
        if read is None:
            return None
        ciphertext, pos = read
        if data.startswith(_RSA_RECIPIENT_HEAD, pos):
            read = _read_bytes(data, pos + len(_RSA_RECIPIENT_HEAD))
            if read is None or read[1] != len(data):
                return None
            return _EncryptParts(
                protected, content_alg, nonce, ciphertext, ALG_RSAES_OAEP_SHA256, b"", None, read[0]
            )
        if data.startswith(_ECDH_ES_RECIPIENT_HEAD, pos) and content_alg == ALG_A128GCM:
            pos += len(_ECDH_ES_RECIPIENT_HEAD)
            ephemeral_key = data[pos : pos + X25519_KEY_BYTES]
            pos += X25519_KEY_BYTES
            if (
                not data.startswith(_ECDH_ES_RECIPIENT_SUFFIX, pos)
                or pos + len(_ECDH_ES_RECIPIENT_SUFFIX) != len(data)
                or int.from_bytes(ephemeral_key, "little") >= X25519_P
            ):
                return None
            return _EncryptParts(
                protected, content_alg, nonce, ciphertext, ALG_ECDH_ES_HKDF_256, _R_PROTECTED_ECDH_ES,
                ephemeral_key, b"",
            )
        return None
    except IndexError:  # cut off inside a head
        return None


def _checked_encrypt(outer: Any) -> _EncryptParts:
    """Every structural check of a COSE_Encrypt, one by one, each with its own error.
    (Determinism was checked before.)"""
    if not isinstance(outer, cbor2.CBORTag) or outer.tag != TAG_COSE_ENCRYPT:
        raise MalformedMessage("not a tagged COSE_Encrypt (tag 96)")
    body = outer.value
    if not isinstance(body, list) or len(body) != 4:
        raise MalformedMessage("COSE_Encrypt is not an array of 4")
    protected_b, unprotected, ciphertext, recipients = body
    protected = _header_map(protected_b, "COSE_Encrypt")
    _need_keys(protected, {H_ALG}, {H_ALG}, "COSE_Encrypt protected header")
    content_alg = protected[H_ALG]
    if type(content_alg) is not int or content_alg not in CONTENT_KEY_BYTES:
        raise UnsupportedAlgorithm(f"content algorithm {content_alg!r} not accepted")
    if not isinstance(unprotected, dict):
        raise MalformedMessage("COSE_Encrypt unprotected header is not a map")
    _need_keys(unprotected, {H_IV}, {H_IV}, "COSE_Encrypt unprotected header")
    nonce = unprotected[H_IV]
    if not isinstance(nonce, bytes) or len(nonce) != GCM_NONCE_BYTES:
        raise MalformedMessage(f"IV must be {GCM_NONCE_BYTES} bytes")
    if not isinstance(ciphertext, bytes):
        raise MalformedMessage("ciphertext is not a byte string")
    if not isinstance(recipients, list) or len(recipients) != 1:
        raise MalformedMessage("exactly one recipient expected")
    rcpt = recipients[0]
    if not isinstance(rcpt, list) or len(rcpt) != 3:
        raise MalformedMessage("COSE_recipient is not an array of 3")
    r_protected_b, r_unprotected, wrapped = rcpt
    r_protected = _header_map(r_protected_b, "COSE_recipient")
    if not isinstance(r_unprotected, dict) or not isinstance(wrapped, bytes):
        raise MalformedMessage("COSE_recipient fields have wrong types")
    ephemeral_key = None
    if r_protected == {H_ALG: ALG_ECDH_ES_HKDF_256}:
        _need_keys(r_unprotected, {H_EPHEMERAL_KEY}, {H_EPHEMERAL_KEY}, "COSE_recipient unprotected header")
        epk = r_unprotected[H_EPHEMERAL_KEY]
        if (
            not isinstance(epk, dict)
            or set(epk) != {COSE_KEY_KTY, COSE_KEY_OKP_CRV, COSE_KEY_OKP_X}
            or epk[COSE_KEY_KTY] != COSE_KTY_OKP
            or epk[COSE_KEY_OKP_CRV] != COSE_CRV_X25519
            or not isinstance(epk[COSE_KEY_OKP_X], bytes)
            or len(epk[COSE_KEY_OKP_X]) != X25519_KEY_BYTES
        ):
            raise MalformedMessage("ephemeral key is not an X25519 COSE_Key")
        ephemeral_key = epk[COSE_KEY_OKP_X]
        if int.from_bytes(ephemeral_key, "little") >= X25519_P:
            # RFC 7748 receivers ignore the top bit, so two encodings would give one key:
            # accept only the canonical one, so that no altered byte goes unnoticed.
            raise MalformedMessage("ephemeral X25519 key is not canonically encoded")
        if wrapped != b"":
            raise MalformedMessage(
                "ECDH-ES + HKDF-256 agrees the content key directly: the recipient's ciphertext must be empty"
            )
        if content_alg != ALG_A128GCM:
            raise UnsupportedAlgorithm(
                f"ECDH-ES + HKDF-256 is accepted with A128GCM only (the compact suite), not {ALG_NAMES[content_alg]}"
            )
        kd_alg = ALG_ECDH_ES_HKDF_256
    elif r_protected == {} and r_unprotected == _RSA_R_UNPROTECTED:
        kd_alg = ALG_RSAES_OAEP_SHA256
    elif r_protected == {H_ALG: ALG_ECDH_ES_A128KW}:
        raise UnsupportedAlgorithm(
            "ECDH-ES+A128KW (-29) is not accepted: the compact suite agrees its content key "
            "directly with ECDH-ES + HKDF-256 (-25)"
        )
    else:
        raise UnsupportedAlgorithm("recipient key-distribution algorithm not accepted")
    return _EncryptParts(protected_b, content_alg, nonce, ciphertext, kd_alg, r_protected_b, ephemeral_key, wrapped)


#: (key distribution, content algorithm) -> the "decrypted" detail line
_DECRYPTED_DETAILS: dict[tuple[int, int], str] = {}


def _decrypted_detail(kd_alg: int, content_alg: int) -> str:
    detail = _DECRYPTED_DETAILS.get((kd_alg, content_alg))
    if detail is None:  # at most one per accepted pair of algorithms
        detail = _DECRYPTED_DETAILS[(kd_alg, content_alg)] = (
            f"tag ok ({ALG_NAMES[kd_alg]}, {ALG_NAMES[content_alg]})"
        )
    return detail


def decrypt_envelope(data: bytes, *, recipient: Identity, max_bytes: int = MAX_ENVELOPE_BYTES) -> tuple[bytes, str]:
    """Decrypt a COSE_Encrypt with ``recipient``'s key: returns (inner bytes, a detail line).

    Raises :class:`MalformedMessage`, :class:`MessageTooLarge`, :class:`UnsupportedAlgorithm`
    or :class:`DecryptFailed`.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedMessage("an envelope is bytes")
    if len(data) > max_bytes:
        raise MessageTooLarge(f"envelope of {len(data)} bytes exceeds {max_bytes}")
    data = bytes(data)
    parts = _read_encrypt(data)
    if parts is None:
        outer = _decode(data, "envelope")
        _require_exact(outer, data, "envelope")
        parts = _checked_encrypt(outer)
    key = recipient.agreement_key
    if parts.key_distribution_alg == ALG_ECDH_ES_HKDF_256:
        if private_key_kind(key) != "x25519":
            raise DecryptFailed("envelope uses ECDH-ES + HKDF-256 but this recipient has no X25519 key")
        cek = ecdh_es_rederive(key, parts.ephemeral_key, parts.content_alg, parts.recipient_protected)  # type: ignore[arg-type]
    else:
        if private_key_kind(key) != "rsa":
            raise DecryptFailed("envelope uses RSA-OAEP but this recipient has no RSA key")
        cek = rsa_oaep_unwrap(key, parts.wrapped)  # type: ignore[arg-type]
        if len(cek) != CONTENT_KEY_BYTES[parts.content_alg]:
            raise DecryptFailed("unwrapped content key has the wrong length")
    inner = aead_decrypt(cek, parts.nonce, parts.ciphertext, _enc_structure(parts.protected))
    return inner, _decrypted_detail(parts.key_distribution_alg, parts.content_alg)


# --- opening: the COSE_Sign1 ----------------------------------------------------------------


def _read_sign1_protected(protected_b: bytes) -> dict | None:
    """The Sign1 protected header as sealing makes it (:func:`_sign1_protected_item`: only
    the expected labels, every required one, in order, values of the types sealing gives
    them); None for anything else."""
    map_head = protected_b[:1]
    if map_head == b"\xa7":
        labels = _SIGN1_LABELS_WITHOUT_CONTRACT
    elif map_head == b"\xa8":
        labels = _SIGN1_LABELS
    else:
        return None
    headers: dict[Any, Any] = {}
    pos = 1
    try:
        for label, label_item, value_type in labels:
            if not protected_b.startswith(label_item, pos):
                return None
            read = read_scalar(protected_b, pos + len(label_item))
            if read is None or type(read[0]) is not value_type:
                return None
            headers[label], pos = read
    except IndexError:  # cut off after a label
        return None
    return headers if pos == len(protected_b) else None


#: the Sign1 protected labels in order: (label, its encoding, the type of its value)
_SIGN1_LABELS = tuple(
    zip(
        _SIGN1_LABEL_ORDER,
        (_L_ALG, _L_KID, _L_CONTRACT, _L_SEQ, _L_RECIPIENT, _L_SENDER, _L_TYPE, _L_SENT),
        (int, bytes, str, int, str, str, str, int),
    )
)
_SIGN1_LABELS_WITHOUT_CONTRACT = tuple(entry for entry in _SIGN1_LABELS if entry[0] != H_CONTRACT)


def _read_sign1_parts(inner: bytes) -> tuple[bytes, dict, bytes, bytes] | None:
    """(protected header bytes, unprotected header, payload, signature) of a Sign1 in
    exactly the shape sealing makes (:func:`_sign1_bytes`); None for anything else."""
    try:
        if not inner.startswith(_SIGN1_HEAD):
            return None
        read = _read_bytes(inner, len(_SIGN1_HEAD))
        if read is None:
            return None
        protected_b, pos = read
        unprotected: dict[int, bytes] = {}
        if inner.startswith(_NO_HEADERS, pos):
            pos += len(_NO_HEADERS)
        else:
            if inner.startswith(_X5BAG_AND_CHAIN_HEAD, pos):
                read = _read_bytes(inner, pos + len(_X5BAG_AND_CHAIN_HEAD))
                if read is None or not inner.startswith(_X5CHAIN_LABEL, read[1]):
                    return None
                unprotected[H_X5BAG], pos = read[0], read[1] + len(_X5CHAIN_LABEL)
            elif inner.startswith(_X5CHAIN_ONLY_HEAD, pos):
                pos += len(_X5CHAIN_ONLY_HEAD)
            else:
                return None
            read = _read_bytes(inner, pos)
            if read is None:
                return None
            unprotected[H_X5CHAIN], pos = read
        payload = _read_bytes(inner, pos)
        if payload is None:
            return None
        signature = _read_bytes(inner, payload[1])
        if signature is None or signature[1] != len(inner):
            return None
        return protected_b, unprotected, payload[0], signature[0]
    except IndexError:  # cut off inside a head
        return None


def _read_sign1(inner: bytes) -> tuple[bytes, dict, dict, bytes, bytes] | None:
    """:func:`_parse_sign1`'s result for a Sign1 in exactly the shape sealing makes; None
    for anything else."""
    parts = _read_sign1_parts(inner)
    if parts is None:
        return None
    protected_b, unprotected, payload, signature = parts
    protected = _read_sign1_protected(protected_b)
    if protected is None:
        protected = _header_map(protected_b, "COSE_Sign1")
        _need_keys(protected, _SIGN1_PROTECTED_ALLOWED, _SIGN1_PROTECTED_REQUIRED, "COSE_Sign1 protected header")
    return protected_b, protected, unprotected, payload, signature


def _parse_sign1(inner: bytes) -> tuple[bytes, dict, dict, bytes, bytes]:
    known = _read_sign1(inner)
    if known is not None:
        return known
    obj = _decode(inner, "COSE_Sign1")
    _require_exact(obj, inner, "COSE_Sign1")
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != TAG_COSE_SIGN1:
        raise MalformedMessage("inner object is not a tagged COSE_Sign1 (tag 18)")
    body = obj.value
    if not isinstance(body, list) or len(body) != 4:
        raise MalformedMessage("COSE_Sign1 is not an array of 4")
    protected_b, unprotected, payload, signature = body
    protected = _header_map(protected_b, "COSE_Sign1")
    _need_keys(protected, _SIGN1_PROTECTED_ALLOWED, _SIGN1_PROTECTED_REQUIRED, "COSE_Sign1 protected header")
    if not isinstance(unprotected, dict) or not set(unprotected) <= {H_X5CHAIN, H_X5BAG}:
        raise MalformedMessage("COSE_Sign1 unprotected header may only carry x5chain (33) and x5bag (32)")
    if not isinstance(payload, bytes) or not isinstance(signature, bytes):
        raise MalformedMessage("COSE_Sign1 payload and signature must be byte strings")
    return protected_b, protected, unprotected, payload, signature


def _text_header(protected: dict, label: str, limit: int) -> str:
    value = protected[label]
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise MalformedMessage(f"header {label!r} must be text of 1..{limit} characters")
    return value


def _headers_from(protected: dict) -> SignedHeaders:
    seq = protected[H_SEQ]
    sent = protected[H_SENT]
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise MalformedMessage(f"header 'q' (seq) must be an int in 0..{MAX_SEQ}")
    if type(sent) is not int or not 0 <= sent <= MAX_UNIX_S:
        raise MalformedMessage(f"header 'ts' (sent time) must be an int in 0..{MAX_UNIX_S}")
    return SignedHeaders(
        message_type=_text_header(protected, H_TYPE, MAX_TYPE_CHARS),
        sender_id=_text_header(protected, H_SENDER, MAX_PARTY_ID_CHARS),
        recipient_id=_text_header(protected, H_RECIPIENT, MAX_PARTY_ID_CHARS),
        contract_no=_text_header(protected, H_CONTRACT, MAX_CONTRACT_CHARS) if H_CONTRACT in protected else None,
        seq=seq,
        sent_unix_s=sent,
    )


#: (signature algorithm, RSA key size or None) -> suite name; bounded by the algorithms
#: accepted and the key sizes the authority certified
_SUITE_NAMES: dict[tuple[int, int | None], str] = {}
_SUITE_NAMES_MAX = 64


def _suite_name(sig_alg: int, sender: CertInfo) -> str:
    """The suite an envelope was sealed in, named from its signature algorithm and key size."""
    key_size = sender.rsa_bits
    name = _SUITE_NAMES.get((sig_alg, key_size))
    if name is None:
        name = "other"
        for suite in SUITES.values():
            if suite.signature_alg == sig_alg and (suite.rsa_bits is None or suite.rsa_bits == key_size):
                name = suite.name
                break
        if len(_SUITE_NAMES) < _SUITE_NAMES_MAX:
            _SUITE_NAMES[(sig_alg, key_size)] = name
    return name


# --- opening ----------------------------------------------------------------------------------

_SIGNATURE_ALG_OF_KEY = {"rsa": ALG_PS256, "ed25519": ALG_EDDSA}
#: the checks whose detail never varies: one object each (a Check is immutable)
_CHAIN_OK = Check("chain", True, "certificate chain to authority ok")
_CHAIN_OK_ATTACHED = Check("chain", True, "certificate chain to authority ok (attached certificate)")
_NOT_REVOKED = Check("revocation", True, "not revoked")
_DECRYPTED_CHECKS: dict[str, Check] = {}


def _failed(checks: list[Check], name: str, exc: ProtocolError) -> ProtocolError:
    """Record the failed check and attach every check so far to the error that stops the opening."""
    checks.append(Check(name, False, exc.detail))
    exc.checks = tuple(checks)  # type: ignore[attr-defined]
    return exc


def open_envelope(
    data: bytes,
    *,
    recipient: Identity,
    trust: TrustStore,
    now_unix_s: float,
    max_bytes: int = MAX_ENVELOPE_BYTES,
    learn: bool = True,
) -> Opened:
    """Decrypt and verify an envelope addressed to ``recipient``.

    Checks run in order and the first failure raises (with ``exc.checks`` listing what
    passed and what failed): malformed/too large, decrypt (tag), signature, certificate
    chain, validity at ``now_unix_s``, revocation, headers (recipient, sender, type,
    contract, roles). With ``learn`` a sender certificate carried in the envelope is added
    to ``trust`` once everything passed.
    """
    checks: list[Check] = []
    try:
        inner, detail = decrypt_envelope(data, recipient=recipient, max_bytes=max_bytes)
    except ProtocolError as exc:
        raise _failed(checks, "decrypted", exc) from exc
    decrypted = _DECRYPTED_CHECKS.get(detail)
    if decrypted is None:  # one per accepted pair of algorithms
        decrypted = _DECRYPTED_CHECKS[detail] = Check("decrypted", True, detail)
    checks.append(decrypted)

    # --- signature
    try:
        protected_b, protected, unprotected, payload, signature = _parse_sign1(inner)
        sig_alg = protected[H_ALG]
        kid_ = protected[H_KID]
        if sig_alg not in (ALG_PS256, ALG_EDDSA):
            raise UnsupportedAlgorithm(f"signature algorithm {sig_alg!r} not accepted")
        if not isinstance(kid_, bytes) or len(kid_) != 32:
            raise MalformedMessage("kid must be 32 bytes (SHA-256 of the certificate)")
        message_type, sender_id, recipient_id, contract_no, seq, sent_unix_s = _headers_from(protected)
    except ProtocolError as exc:
        raise _failed(checks, "signature", exc) from exc
    learned = False
    sender_info = trust.by_kid(kid_)
    try:
        attached: bytes | None = None
        if H_X5CHAIN in unprotected:
            chain = unprotected[H_X5CHAIN]
            attached = chain[0] if isinstance(chain, list) and len(chain) == 1 else chain
            if not isinstance(attached, bytes):
                raise MalformedMessage("x5chain must be one DER certificate")
            if hashlib.sha256(attached).digest() != kid_:
                raise HeaderMismatch("attached certificate does not match the kid")
        if sender_info is None:
            if attached is None:
                raise UnknownCertificate(f"no certificate known for kid {kid_[:8].hex()}… and none attached")
            sender_info = cert_info(load_der_certificate(attached))
            learned = True
    except ProtocolError as exc:
        raise _failed(checks, "chain", exc) from exc
    try:
        if _SIGNATURE_ALG_OF_KEY.get(sender_info.key_kind) != sig_alg:
            raise BadSignature(f"{ALG_NAMES[sig_alg]} does not fit a {sender_info.key_kind} certificate")
        if not verify(sig_alg, sender_info.public_key, _sig_structure(protected_b, payload), signature):
            raise BadSignature(f"{ALG_NAMES[sig_alg]} signature of {sender_info.party_id} does not verify")
    except ProtocolError as exc:
        raise _failed(checks, "signature", exc) from exc
    checks.append(Check("signature", True, f"{ALG_NAMES[sig_alg]} ok ({sender_info.party_id})"))

    # --- certificate: chain (cached), validity, revocation
    try:
        trust.check_chain(sender_info)
    except ProtocolError as exc:
        raise _failed(checks, "chain", exc) from exc
    checks.append(_CHAIN_OK_ATTACHED if learned else _CHAIN_OK)
    try:
        trust.check_validity(sender_info, now_unix_s)
    except CertificateError as exc:
        raise _failed(checks, "validity", exc) from exc
    checks.append(Check("validity", True, f"valid at time {int(now_unix_s)}"))
    try:
        trust.check_revocation(sender_info, now_unix_s)
    except CertificateError as exc:
        raise _failed(checks, "revocation", exc) from exc
    checks.append(_NOT_REVOKED)

    # --- headers against certificates and payload
    try:
        if recipient_id != recipient.party_id:
            raise WrongRecipient(f"addressed to {recipient_id!r}, this is {recipient.party_id!r}")
        if sender_id != sender_info.party_id:
            raise HeaderMismatch(f"sender header {sender_id!r} but certificate of {sender_info.party_id!r}")
        message = decode_message(message_type, payload)
        payload_contract_no = messages.contract_no_of(message)
        if payload_contract_no != contract_no:
            raise HeaderMismatch(f"contract header {contract_no!r} but payload says {payload_contract_no!r}")
        model = type(message)
        if sender_info.role not in model.SENDER_ROLES:  # type: ignore[attr-defined]
            raise HeaderMismatch(f"a {sender_info.role} may not send {message_type}")
        if recipient.role not in model.RECIPIENT_ROLES:  # type: ignore[attr-defined]
            raise HeaderMismatch(f"a {recipient.role} may not receive {message_type}")
    except ProtocolError as exc:
        raise _failed(checks, "headers", exc) from exc
    checks.append(
        Check(
            "headers",
            True,
            f"headers match ({message_type} {sender_info.role} {sender_id} -> "
            f"{recipient.role} {recipient_id}, seq {seq})",
        )
    )
    if H_X5BAG in unprotected:
        try:
            agreement_info = _attached_agreement_cert(unprotected[H_X5BAG], sender_info, trust, now_unix_s)
        except ProtocolError as exc:
            raise _failed(checks, "chain", exc) from exc
        if learn:
            trust.add(agreement_info.cert)
    if learned and learn:
        trust.add(sender_info.cert)
    return Opened(
        message=message,
        message_type=message.message_type,
        sender_id=sender_id,
        recipient_id=recipient_id,
        contract_no=contract_no,
        seq=seq,
        sent_unix_s=sent_unix_s,
        sender_cert=sender_info.cert,
        sender_role=sender_info.role,
        suite=_suite_name(sig_alg, sender_info),
        sender_cert_learned=learned,
        checks=tuple(checks),
    )


def _attached_agreement_cert(
    attached: Any, sender_info: CertInfo, trust: TrustStore, now_unix_s: float
) -> CertInfo:
    """The sender's X25519 certificate from x5bag: issued by the authority to the same party,
    valid and not revoked, or the envelope is refused."""
    if not isinstance(attached, bytes):
        raise MalformedMessage("x5bag must be one DER certificate")
    info = trust.verify(load_der_certificate(attached), now_unix_s)
    if info.party_id != sender_info.party_id or info.role != sender_info.role:
        raise HeaderMismatch(f"x5bag certificate of {info.party_id!r}, sender is {sender_info.party_id!r}")
    if info.key_kind != "x25519":
        raise MalformedMessage(f"x5bag carries a {info.key_kind} certificate, expected x25519")
    return info


def sms_parts(envelope_bytes: int) -> int:
    """How many concatenated binary SMS parts (134 octets each) carry an envelope of this size."""
    return max(1, -(-envelope_bytes // SMS_PART_OCTETS))


__all__ = [
    "Check",
    "MAX_ENVELOPE_BYTES",
    "Opened",
    "SignedHeaders",
    "decrypt_envelope",
    "encrypt_for",
    "open_envelope",
    "sms_parts",
    "seal",
    "sign_payload",
]
