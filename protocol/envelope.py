"""COSE sign-then-encrypt: the envelope every protocol SMS travels in.

``seal`` CBOR-encodes a message, signs it as a tagged COSE_Sign1 (RFC 9052 §4.2) with the
sender's key, then encrypts that whole Sign1 as a tagged COSE_Encrypt (RFC 9052 §5.1)
under a fresh content key, wrapped for the one recipient (RSA-OAEP-256 per RFC 8230, or
ECDH-ES + A128KW with X25519 per RFC 9053). ``open_envelope`` undoes it and checks, in
order: size and shape, decryption (GCM tag), signature, certificate chain to the
authority, validity at ``now_unix_s``, revocation, and the signed headers against the
certificates and the payload. Each failure raises its own :class:`ProtocolError`.

Layout (see "Envelope format" in docs/protocol.md for the byte budget)::

    96([ << {1: content_alg} >>, {5: iv}, ciphertext_with_tag,
         [[ recipient_protected, recipient_unprotected, wrapped_cek ]] ])
    ciphertext decrypts to
    18([ << {1: sig_alg, 4: kid, "t": type, "s": sender, "r": recipient,
             "c": contract_no (absent if none), "q": seq, "ts": sent_unix_s} >>,
         {} or {33: sender_cert_der}, payload_cbor, signature ])

Every CBOR item is deterministically encoded, and opening re-encodes what it decoded and
refuses anything that differs (trailing bytes, duplicate keys, non-shortest forms), so an
altered byte cannot slip through as an "equivalent" encoding.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa, x25519

from protocol import messages
from protocol.errors import (
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
from protocol.messages import Message, MessageType, decode_message, encode_message
from protocol.pki import (
    MAX_PARTY_ID_CHARS,
    CertInfo,
    Identity,
    TrustStore,
    cert_info,
    load_der_certificate,
)
from protocol.replay import MAX_SEQ
from protocol.suites import (
    ALG_ECDH_ES_A128KW,
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
    ecdh_es_unwrap,
    ecdh_es_wrap,
    get_suite,
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
#: deepest nesting of CBOR arrays/maps accepted in an envelope's structure
_MAX_CBOR_DEPTH = 8
#: longest contract number in a header
MAX_CONTRACT_CHARS = 64

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


@dataclass(frozen=True)
class Check:
    """One step of opening an envelope, for traces and the teaching demo."""

    name: str
    ok: bool
    detail: str

    def __str__(self) -> str:
        return f"{self.name}: {self.detail}" if self.ok else f"{self.name}: FAILED ({self.detail})"


@dataclass(frozen=True)
class SignedHeaders:
    """The facts bound under the sender's signature."""

    message_type: str
    sender_id: str
    recipient_id: str
    contract_no: str | None
    seq: int
    sent_unix_s: int


@dataclass(frozen=True)
class Opened:
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


# --- CBOR helpers ---------------------------------------------------------------------------


def _dumps(obj: Any) -> bytes:
    return cbor2.dumps(obj, canonical=True)


def _bstr(data: bytes) -> bytes:
    """The deterministic CBOR encoding of a byte string (major type 2, shortest length)."""
    n = len(data)
    if n < 24:
        return bytes((0x40 | n,)) + data
    if n < 0x100:
        return bytes((0x58, n)) + data
    if n < 0x10000:
        return b"\x59" + n.to_bytes(2, "big") + data
    return b"\x5a" + n.to_bytes(4, "big") + data


#: deterministic CBOR of the text string "Signature1" and of an empty byte string
_SIGNATURE1_TSTR = b"\x6aSignature1"
_EMPTY_BSTR = b"\x40"


def _sig_structure(protected: bytes, payload: bytes) -> bytes:
    """``_dumps(["Signature1", protected, b"", payload])`` (RFC 9052 §4.4), built directly:
    it is computed twice per SMS and only its byte strings vary."""
    return b"\x84" + _SIGNATURE1_TSTR + _bstr(protected) + _EMPTY_BSTR + _bstr(payload)


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


def _loads_exact(data: bytes, what: str) -> Any:
    """Decode one CBOR item (optionally tagged) and insist ``data`` is exactly its
    deterministic encoding and holds only plain types."""
    try:
        obj = cbor2.loads(data)
        again = _dumps(obj)
    except Exception as exc:  # cbor2 raises several types (CBORDecodeError, ValueError, ...)
        raise MalformedMessage(f"{what} is not valid CBOR: {exc}") from exc
    if again != data:
        raise MalformedMessage(f"{what} is not deterministically encoded (or has trailing bytes)")
    if not _plain(obj.value if isinstance(obj, cbor2.CBORTag) else obj):
        raise MalformedMessage(f"{what} holds values other than integers, strings, arrays and maps")
    return obj


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


# --- sealing ----------------------------------------------------------------------------------

#: the constant protected headers of sealing: COSE_Encrypt's per content algorithm, and the
#: ECDH-ES recipient's
_ENC_PROTECTED: dict[int, bytes] = {alg: _dumps({H_ALG: alg}) for alg in CONTENT_KEY_BYTES}
_R_PROTECTED_ECDH_ES = _dumps({H_ALG: ALG_ECDH_ES_A128KW})



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
    info = cert_info(sender.signing_cert)
    alg = signature_alg_for(sender.signing_key)
    protected_map: dict[Any, Any] = {
        H_ALG: alg,
        H_KID: info.kid,
        H_TYPE: str(headers.message_type),
        H_SENDER: headers.sender_id,
        H_RECIPIENT: headers.recipient_id,
        H_SEQ: headers.seq,
        H_SENT: headers.sent_unix_s,
    }
    if headers.contract_no is not None:
        protected_map[H_CONTRACT] = headers.contract_no
    protected = _dumps(protected_map)
    sig_structure = _sig_structure(protected, payload)
    signature = sign(alg, sender.signing_key, sig_structure)
    unprotected: dict[int, bytes] = {}
    if include_sender_cert:
        unprotected[H_X5CHAIN] = info.der
        if sender.agreement_cert is not sender.signing_cert:
            unprotected[H_X5BAG] = cert_info(sender.agreement_cert).der
    return _dumps(cbor2.CBORTag(TAG_COSE_SIGN1, [protected, unprotected, payload, signature]))


def encrypt_for(
    inner: bytes,
    *,
    recipient_cert: x509.Certificate,
    suite: Suite | str,
    random_bytes: RandomBytes = os.urandom,
) -> bytes:
    """A tagged COSE_Encrypt of ``inner`` (any bytes, normally a Sign1) for one recipient."""
    suite = get_suite(suite) if isinstance(suite, str) else suite
    info = cert_info(recipient_cert)
    cek = random_bytes(suite.content_key_bytes)
    nonce = random_bytes(GCM_NONCE_BYTES)
    if len(cek) != suite.content_key_bytes or len(nonce) != GCM_NONCE_BYTES:
        raise ValueError("random_bytes returned the wrong number of bytes")
    if suite.key_distribution_alg == ALG_RSAES_OAEP_SHA256 and isinstance(info.public_key, rsa.RSAPublicKey):
        recipient = [b"", {H_ALG: ALG_RSAES_OAEP_SHA256}, rsa_oaep_wrap(info.public_key, cek)]
    elif suite.key_distribution_alg == ALG_ECDH_ES_A128KW and isinstance(info.public_key, x25519.X25519PublicKey):
        r_protected = _R_PROTECTED_ECDH_ES
        epk, wrapped = ecdh_es_wrap(info.public_key, cek, r_protected, random_bytes)
        cose_key = {COSE_KEY_KTY: COSE_KTY_OKP, COSE_KEY_OKP_CRV: COSE_CRV_X25519, COSE_KEY_OKP_X: epk}
        recipient = [r_protected, {H_EPHEMERAL_KEY: cose_key}, wrapped]
    else:
        raise UnsupportedAlgorithm(
            f"suite {suite.name} cannot encrypt to a {info.key_kind} certificate ({info.party_id})"
        )
    protected = _ENC_PROTECTED.get(suite.content_alg) or _dumps({H_ALG: suite.content_alg})
    enc_structure = _enc_structure(protected)
    ciphertext = aead_encrypt(cek, nonce, inner, enc_structure)
    return _dumps(cbor2.CBORTag(TAG_COSE_ENCRYPT, [protected, {H_IV: nonce}, ciphertext, [recipient]]))


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
    if signature_alg_for(sender.signing_key) != suite.signature_alg:
        raise UnsupportedAlgorithm(f"sender {sender.party_id}'s key does not sign with suite {suite.name}")
    if not isinstance(seq, int) or not 0 <= seq <= MAX_SEQ:
        raise ValueError(f"seq must be an int in 0..{MAX_SEQ}")
    if not isinstance(sent_unix_s, int) or not 0 <= sent_unix_s <= MAX_UNIX_S:
        raise ValueError(f"sent_unix_s must be an int in 0..{MAX_UNIX_S}")
    headers = SignedHeaders(
        message_type=str(message.message_type),
        sender_id=sender.party_id,
        recipient_id=cert_info(recipient_cert).party_id,
        contract_no=messages.contract_no_of(message),
        seq=seq,
        sent_unix_s=sent_unix_s,
    )
    inner = sign_payload(headers, encode_message(message), sender=sender, include_sender_cert=include_sender_cert)
    envelope = encrypt_for(inner, recipient_cert=recipient_cert, suite=suite, random_bytes=random_bytes)
    if len(envelope) > MAX_ENVELOPE_BYTES:
        raise MessageTooLarge(f"envelope of {len(envelope)} bytes exceeds {MAX_ENVELOPE_BYTES}")
    return envelope


# --- opening ----------------------------------------------------------------------------------


class _Progress:
    """Collects checks; attaches them to the error that stops the opening."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def ok(self, name: str, detail: str) -> None:
        self.checks.append(Check(name, True, detail))

    def fail(self, name: str, exc: ProtocolError) -> ProtocolError:
        self.checks.append(Check(name, False, exc.detail))
        exc.checks = tuple(self.checks)  # type: ignore[attr-defined]
        return exc


def decrypt_envelope(data: bytes, *, recipient: Identity, max_bytes: int = MAX_ENVELOPE_BYTES) -> tuple[bytes, str]:
    """Decrypt a COSE_Encrypt with ``recipient``'s key: returns (inner bytes, a detail line).

    Raises :class:`MalformedMessage`, :class:`MessageTooLarge`, :class:`UnsupportedAlgorithm`
    or :class:`DecryptFailed`.
    """
    if not isinstance(data, (bytes, bytearray)):
        raise MalformedMessage("an envelope is bytes")
    if len(data) > max_bytes:
        raise MessageTooLarge(f"envelope of {len(data)} bytes exceeds {max_bytes}")
    outer = _loads_exact(bytes(data), "envelope")
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
    key = recipient.agreement_key
    if r_protected == {H_ALG: ALG_ECDH_ES_A128KW}:
        _need_keys(r_unprotected, {H_EPHEMERAL_KEY}, {H_EPHEMERAL_KEY}, "COSE_recipient unprotected header")
        epk = r_unprotected[H_EPHEMERAL_KEY]
        if (
            not isinstance(epk, dict)
            or set(epk) != {COSE_KEY_KTY, COSE_KEY_OKP_CRV, COSE_KEY_OKP_X}
            or epk[COSE_KEY_KTY] != COSE_KTY_OKP
            or epk[COSE_KEY_OKP_CRV] != COSE_CRV_X25519
            or not isinstance(epk[COSE_KEY_OKP_X], bytes)
            or len(epk[COSE_KEY_OKP_X]) != 32
        ):
            raise MalformedMessage("ephemeral key is not an X25519 COSE_Key")
        if int.from_bytes(epk[COSE_KEY_OKP_X], "little") >= X25519_P:
            # RFC 7748 receivers ignore the top bit, so two encodings would give one key:
            # accept only the canonical one, so that no altered byte goes unnoticed.
            raise MalformedMessage("ephemeral X25519 key is not canonically encoded")
        if not isinstance(key, x25519.X25519PrivateKey):
            raise DecryptFailed("envelope uses ECDH-ES+A128KW but this recipient has no X25519 key")
        cek = ecdh_es_unwrap(key, epk[COSE_KEY_OKP_X], wrapped, r_protected_b)
        kd_alg = ALG_ECDH_ES_A128KW
    elif r_protected == {} and r_unprotected == {H_ALG: ALG_RSAES_OAEP_SHA256}:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise DecryptFailed("envelope uses RSA-OAEP but this recipient has no RSA key")
        cek = rsa_oaep_unwrap(key, wrapped)
        kd_alg = ALG_RSAES_OAEP_SHA256
    else:
        raise UnsupportedAlgorithm("recipient key-distribution algorithm not accepted")
    if len(cek) != CONTENT_KEY_BYTES[content_alg]:
        raise DecryptFailed("unwrapped content key has the wrong length")
    enc_structure = _enc_structure(protected_b)
    inner = aead_decrypt(cek, nonce, ciphertext, enc_structure)
    return inner, f"tag ok ({ALG_NAMES[kd_alg]}, {ALG_NAMES[content_alg]})"


def _parse_sign1(inner: bytes) -> tuple[bytes, dict, dict, bytes, bytes]:
    obj = _loads_exact(inner, "COSE_Sign1")
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


def _headers_from(protected: dict) -> SignedHeaders:
    def text(label: str, limit: int) -> str:
        value = protected[label]
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise MalformedMessage(f"header {label!r} must be text of 1..{limit} characters")
        return value

    seq = protected[H_SEQ]
    sent = protected[H_SENT]
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise MalformedMessage(f"header 'q' (seq) must be an int in 0..{MAX_SEQ}")
    if type(sent) is not int or not 0 <= sent <= MAX_UNIX_S:
        raise MalformedMessage(f"header 'ts' (sent time) must be an int in 0..{MAX_UNIX_S}")
    return SignedHeaders(
        message_type=text(H_TYPE, 64),
        sender_id=text(H_SENDER, MAX_PARTY_ID_CHARS),
        recipient_id=text(H_RECIPIENT, MAX_PARTY_ID_CHARS),
        contract_no=text(H_CONTRACT, MAX_CONTRACT_CHARS) if H_CONTRACT in protected else None,
        seq=seq,
        sent_unix_s=sent,
    )


def _suite_name(sig_alg: int, sender: CertInfo) -> str:
    """The suite an envelope was sealed in, named from its signature algorithm and key size."""
    for suite in SUITES.values():
        if suite.signature_alg == sig_alg and (
            suite.rsa_bits is None or suite.rsa_bits == getattr(sender.public_key, "key_size", None)
        ):
            return suite.name
    return "other"


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
    progress = _Progress()
    try:
        inner, detail = decrypt_envelope(data, recipient=recipient, max_bytes=max_bytes)
    except ProtocolError as exc:
        raise progress.fail("decrypted", exc) from exc
    progress.ok("decrypted", detail)

    # --- signature
    try:
        protected_b, protected, unprotected, payload, signature = _parse_sign1(inner)
        sig_alg = protected[H_ALG]
        kid_ = protected[H_KID]
        if sig_alg not in (ALG_PS256, ALG_EDDSA):
            raise UnsupportedAlgorithm(f"signature algorithm {sig_alg!r} not accepted")
        if not isinstance(kid_, bytes) or len(kid_) != 32:
            raise MalformedMessage("kid must be 32 bytes (SHA-256 of the certificate)")
        headers = _headers_from(protected)
    except ProtocolError as exc:
        raise progress.fail("signature", exc) from exc
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
        raise progress.fail("chain", exc) from exc
    try:
        expected_alg = {"rsa": ALG_PS256, "ed25519": ALG_EDDSA}.get(sender_info.key_kind)
        if expected_alg != sig_alg:
            raise BadSignature(f"{ALG_NAMES[sig_alg]} does not fit a {sender_info.key_kind} certificate")
        sig_structure = _sig_structure(protected_b, payload)
        if not verify(sig_alg, sender_info.public_key, sig_structure, signature):
            raise BadSignature(f"{ALG_NAMES[sig_alg]} signature of {sender_info.party_id} does not verify")
    except ProtocolError as exc:
        raise progress.fail("signature", exc) from exc
    progress.ok("signature", f"{ALG_NAMES[sig_alg]} ok ({sender_info.party_id})")

    # --- certificate: chain (cached), validity, revocation
    try:
        trust.check_chain(sender_info.cert)
    except ProtocolError as exc:
        raise progress.fail("chain", exc) from exc
    progress.ok("chain", "certificate chain to authority ok" + (" (attached certificate)" if learned else ""))
    try:
        trust.check_validity(sender_info, now_unix_s)
    except CertificateError as exc:
        raise progress.fail("validity", exc) from exc
    progress.ok("validity", f"valid at time {int(now_unix_s)}")
    try:
        trust.check_revocation(sender_info, now_unix_s)
    except CertificateError as exc:
        raise progress.fail("revocation", exc) from exc
    progress.ok("revocation", "not revoked")

    # --- headers against certificates and payload
    try:
        if headers.recipient_id != recipient.party_id:
            raise WrongRecipient(f"addressed to {headers.recipient_id!r}, this is {recipient.party_id!r}")
        if headers.sender_id != sender_info.party_id:
            raise HeaderMismatch(f"sender header {headers.sender_id!r} but certificate of {sender_info.party_id!r}")
        message = decode_message(headers.message_type, payload)
        contract_no = messages.contract_no_of(message)
        if contract_no != headers.contract_no:
            raise HeaderMismatch(f"contract header {headers.contract_no!r} but payload says {contract_no!r}")
        model = type(message)
        if sender_info.role not in model.SENDER_ROLES:  # type: ignore[attr-defined]
            raise HeaderMismatch(f"a {sender_info.role} may not send {headers.message_type}")
        if recipient.role not in model.RECIPIENT_ROLES:  # type: ignore[attr-defined]
            raise HeaderMismatch(f"a {recipient.role} may not receive {headers.message_type}")
    except ProtocolError as exc:
        raise progress.fail("headers", exc) from exc
    progress.ok(
        "headers",
        f"headers match ({headers.message_type} {sender_info.role} {headers.sender_id} -> "
        f"{recipient.role} {headers.recipient_id}, seq {headers.seq})",
    )
    if H_X5BAG in unprotected:
        try:
            agreement_info = _attached_agreement_cert(unprotected[H_X5BAG], sender_info, trust, now_unix_s)
        except ProtocolError as exc:
            raise progress.fail("chain", exc) from exc
        if learn:
            trust.add(agreement_info.cert)
    if learned and learn:
        trust.add(sender_info.cert)
    return Opened(
        message=message,
        message_type=message.message_type,
        sender_id=headers.sender_id,
        recipient_id=headers.recipient_id,
        contract_no=headers.contract_no,
        seq=headers.seq,
        sent_unix_s=headers.sent_unix_s,
        sender_cert=sender_info.cert,
        sender_role=sender_info.role,
        suite=_suite_name(sig_alg, sender_info),
        sender_cert_learned=learned,
        checks=tuple(progress.checks),
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
