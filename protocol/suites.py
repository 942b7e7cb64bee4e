"""Cipher suites: which COSE algorithms protect an SMS, and how their keys are made.

A suite fixes the signature algorithm (inner COSE_Sign1), the key-distribution algorithm
(the COSE_Encrypt recipient) and the content cipher (AES-GCM). The primitives behind each
algorithm identifier live here too, so :mod:`protocol.envelope` only arranges COSE
structures. All functions are pure computation: key generation draws from the OS, the
caller passes every other random byte in.

=========  =================  ================================  ===========  ======================
suite      signature          key distribution                  content      party keys
=========  =================  ================================  ===========  ======================
rsa2048    PS256 (-37)        RSAES-OAEP w/ SHA-256 (-41)       A256GCM (3)  one RSA-2048 key
rsa3072    PS256 (-37)        RSAES-OAEP w/ SHA-256 (-41)       A256GCM (3)  one RSA-3072 key
compact    EdDSA (-8)         ECDH-ES + HKDF-256 (-25), X25519  A128GCM (1)  Ed25519 + X25519 keys
=========  =================  ================================  ===========  ======================

The compact suite agrees the content key itself (direct key agreement, RFC 9053 §6.3.1): an
ephemeral X25519 key per message, so every message still has a fresh content key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Union

import cbor2
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mpay.protocol.errors import DecryptFailed, UnsupportedAlgorithm

PrivateKey = Union[rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey, x25519.X25519PrivateKey]
PublicKey = Union[rsa.RSAPublicKey, ed25519.Ed25519PublicKey, x25519.X25519PublicKey]
RandomBytes = Callable[[int], bytes]

# --- COSE algorithm identifiers (IANA "COSE Algorithms") ----------------------------------
ALG_A128GCM = 1
ALG_A256GCM = 3
ALG_A128KW = -3
ALG_EDDSA = -8
ALG_ECDH_ES_HKDF_256 = -25
#: ECDH-ES + A128KW, the compact suite's key distribution before -25 (a wrapped random key): refused
ALG_ECDH_ES_A128KW = -29
ALG_PS256 = -37
ALG_RSAES_OAEP_SHA256 = -41

ALG_NAMES: dict[int, str] = {
    ALG_A128GCM: "A128GCM",
    ALG_A256GCM: "A256GCM",
    ALG_A128KW: "A128KW",
    ALG_EDDSA: "EdDSA",
    ALG_ECDH_ES_HKDF_256: "ECDH-ES+HKDF-256",
    ALG_ECDH_ES_A128KW: "ECDH-ES+A128KW",
    ALG_PS256: "PS256",
    ALG_RSAES_OAEP_SHA256: "RSA-OAEP-256",
}

#: content-encryption algorithm -> key length in bytes
CONTENT_KEY_BYTES: dict[int, int] = {ALG_A128GCM: 16, ALG_A256GCM: 32}
#: AES-GCM nonce (COSE "IV") length in bytes, RFC 9053 §4.1
GCM_NONCE_BYTES = 12
#: AES-GCM tag length in bytes (COSE uses the full 128-bit tag)
GCM_TAG_BYTES = 16
#: smallest RSA modulus any certificate may carry (bits)
MIN_RSA_BITS = 2048
#: public exponent of every RSA key we generate
RSA_PUBLIC_EXPONENT = 65537

SIGNATURE_ALGS = frozenset({ALG_PS256, ALG_EDDSA})
KEY_DISTRIBUTION_ALGS = frozenset({ALG_RSAES_OAEP_SHA256, ALG_ECDH_ES_HKDF_256})

# COSE_Key labels and values used for the ECDH-ES ephemeral key (RFC 9052 §7, RFC 9053 §7.2)
COSE_KEY_KTY = 1
COSE_KEY_OKP_CRV = -1
COSE_KEY_OKP_X = -2
COSE_KTY_OKP = 1
COSE_CRV_X25519 = 4


@dataclass(frozen=True)
class PartyKeys:
    """A party's private keys. RSA suites use one key for both jobs (``agreement is signing``)."""

    signing: PrivateKey
    agreement: PrivateKey

    @property
    def separate(self) -> bool:
        """True when the agreement key is a key of its own (the compact suite)."""
        return self.agreement is not self.signing


@dataclass(frozen=True)
class Suite:
    """One cipher suite: algorithm identifiers, key shapes, key generation."""

    name: str
    signature_alg: int
    key_distribution_alg: int
    content_alg: int
    #: RSA modulus size for RSA suites, ``None`` for the elliptic-curve suite
    rsa_bits: int | None
    description: str

    @property
    def signature_alg_name(self) -> str:
        return ALG_NAMES[self.signature_alg]

    @property
    def key_distribution_alg_name(self) -> str:
        return ALG_NAMES[self.key_distribution_alg]

    @property
    def content_alg_name(self) -> str:
        return ALG_NAMES[self.content_alg]

    @property
    def content_key_bytes(self) -> int:
        return CONTENT_KEY_BYTES[self.content_alg]

    @property
    def separate_agreement_key(self) -> bool:
        """True when a party needs a second key (and certificate) for key agreement."""
        return self.rsa_bits is None

    def generate_keys(self) -> PartyKeys:
        """Fresh private keys for one party (RSA: slow; use mpay.keys.keycache outside tests)."""
        if self.rsa_bits is not None:
            key = rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=self.rsa_bits)
            return PartyKeys(signing=key, agreement=key)
        return PartyKeys(
            signing=ed25519.Ed25519PrivateKey.generate(),
            agreement=x25519.X25519PrivateKey.generate(),
        )

    def generate_authority_key(self) -> PrivateKey:
        """A key for an authority serving this suite (RSA for RSA suites, Ed25519 for compact)."""
        if self.rsa_bits is not None:
            return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=self.rsa_bits)
        return ed25519.Ed25519PrivateKey.generate()

    def keys_fit(self, keys: PartyKeys) -> bool:
        """True when ``keys`` have the shapes this suite needs."""
        if self.rsa_bits is not None:
            return (
                isinstance(keys.signing, rsa.RSAPrivateKey)
                and keys.signing.key_size == self.rsa_bits
                and keys.agreement is keys.signing
            )
        return isinstance(keys.signing, ed25519.Ed25519PrivateKey) and isinstance(
            keys.agreement, x25519.X25519PrivateKey
        )


SUITES: dict[str, Suite] = {
    "rsa2048": Suite(
        name="rsa2048",
        signature_alg=ALG_PS256,
        key_distribution_alg=ALG_RSAES_OAEP_SHA256,
        content_alg=ALG_A256GCM,
        rsa_bits=2048,
        description="RSA-2048: PS256 signatures, RSA-OAEP-256 key transport, AES-256-GCM (default)",
    ),
    "rsa3072": Suite(
        name="rsa3072",
        signature_alg=ALG_PS256,
        key_distribution_alg=ALG_RSAES_OAEP_SHA256,
        content_alg=ALG_A256GCM,
        rsa_bits=3072,
        description="RSA-3072: PS256 signatures, RSA-OAEP-256 key transport, AES-256-GCM",
    ),
    "compact": Suite(
        name="compact",
        signature_alg=ALG_EDDSA,
        key_distribution_alg=ALG_ECDH_ES_HKDF_256,
        content_alg=ALG_A128GCM,
        rsa_bits=None,
        description="X25519/Ed25519: EdDSA signatures, ECDH-ES+HKDF-256 (direct), AES-128-GCM (smallest SMS)",
    ),
}
DEFAULT_SUITE = "rsa2048"


def get_suite(name: str) -> Suite:
    """The suite called ``name``; :class:`UnsupportedAlgorithm` for any other name."""
    try:
        return SUITES[name]
    except (KeyError, TypeError):
        raise UnsupportedAlgorithm(
            f"unknown cipher suite {name!r}; choose one of {', '.join(SUITES)}"
        ) from None


#: the key ABCs: the kind of key each is, and whether it is the private half
_KEY_CLASSES: tuple[tuple[type, str, bool], ...] = (
    (rsa.RSAPrivateKey, "rsa", True),
    (rsa.RSAPublicKey, "rsa", False),
    (ed25519.Ed25519PrivateKey, "ed25519", True),
    (ed25519.Ed25519PublicKey, "ed25519", False),
    (x25519.X25519PrivateKey, "x25519", True),
    (x25519.X25519PublicKey, "x25519", False),
)
#: key class -> (kind, is it private), filled as key classes are met: ``isinstance`` against
#: the key ABCs costs about a tenth of a microsecond each, and every SMS asks several times
_KIND_OF_CLASS: dict[type, tuple[str, bool]] = {}


def _kind_of(key: object) -> tuple[str, bool] | None:
    """(kind, is it private) for a key, None for anything else; cached per class."""
    found = _KIND_OF_CLASS.get(type(key))
    if found is None:
        found = next(((kind, private) for abc, kind, private in _KEY_CLASSES if isinstance(key, abc)), None)
        if found is not None:
            _KIND_OF_CLASS[type(key)] = found
    return found


def key_kind(key: PrivateKey | PublicKey) -> str:
    """``"rsa"``, ``"ed25519"`` or ``"x25519"`` for a private or public key."""
    found = _kind_of(key)
    if found is None:
        raise UnsupportedAlgorithm(f"unsupported key type {type(key).__name__}")
    return found[0]


def private_key_kind(key: object) -> str | None:
    """``"rsa"``, ``"ed25519"`` or ``"x25519"`` for a private key, None for anything else."""
    found = _kind_of(key)
    return found[0] if found is not None and found[1] else None


def _public_key_kind(key: object) -> str | None:
    found = _kind_of(key)
    return found[0] if found is not None and not found[1] else None


# --- signatures ---------------------------------------------------------------------------

_SHA256 = hashes.SHA256()
_PSS = padding.PSS(mgf=padding.MGF1(_SHA256), salt_length=32)  # RFC 8230 §2: salt = hash size


def signature_alg_for(key: PrivateKey | PublicKey) -> int:
    """The COSE signature algorithm a key signs with."""
    kind = key_kind(key)
    if kind == "rsa":
        return ALG_PS256
    if kind == "ed25519":
        return ALG_EDDSA
    raise UnsupportedAlgorithm("an X25519 key cannot sign")


def sign(alg: int, key: PrivateKey, data: bytes) -> bytes:
    """Sign ``data`` (a COSE Sig_structure) with ``alg``."""
    kind = private_key_kind(key)
    if alg == ALG_PS256 and kind == "rsa":
        return key.sign(data, _PSS, _SHA256)  # type: ignore[call-arg, union-attr]
    if alg == ALG_EDDSA and kind == "ed25519":
        return key.sign(data)  # type: ignore[call-arg, union-attr]
    raise UnsupportedAlgorithm(f"cannot sign with alg {alg} and a {type(key).__name__}")


def verify(alg: int, key: PublicKey, data: bytes, signature: bytes) -> bool:
    """True when ``signature`` over ``data`` verifies; False on any mismatch (never raises)."""
    kind = _public_key_kind(key)
    try:
        if alg == ALG_PS256 and kind == "rsa":
            key.verify(signature, data, _PSS, _SHA256)  # type: ignore[call-arg, union-attr]
            return True
        if alg == ALG_EDDSA and kind == "ed25519":
            key.verify(signature, data)  # type: ignore[call-arg, union-attr]
            return True
    except (InvalidSignature, ValueError):
        return False
    return False


# --- key distribution ---------------------------------------------------------------------

_OAEP = padding.OAEP(mgf=padding.MGF1(_SHA256), algorithm=_SHA256, label=None)


def rsa_oaep_wrap(public_key: rsa.RSAPublicKey, cek: bytes) -> bytes:
    """RSAES-OAEP w/ SHA-256 (COSE -41) encryption of the content key."""
    return public_key.encrypt(cek, _OAEP)


def rsa_oaep_unwrap(private_key: rsa.RSAPrivateKey, wrapped: bytes) -> bytes:
    """Inverse of :func:`rsa_oaep_wrap`; :class:`DecryptFailed` when it was not for this key."""
    try:
        return private_key.decrypt(wrapped, _OAEP)
    except ValueError as exc:
        raise DecryptFailed("RSA-OAEP unwrap failed: not sealed for this key, or altered") from exc


def cose_kdf_context(alg: int, key_bits: int, recipient_protected: bytes) -> bytes:
    """COSE_KDF_Context (RFC 9053 §5.2) with empty PartyU/PartyV identities."""
    return cbor2.dumps(
        [alg, [None, None, None], [None, None, None], [key_bits, recipient_protected]]
    )


#: (content algorithm, recipient protected header) -> its COSE_KDF_Context; the compact
#: suite has one, so this stays tiny (and is bounded)
_KDF_CONTEXTS: dict[tuple[int, bytes], bytes] = {}
_KDF_CONTEXTS_MAX = 16


def _content_key_from_secret(shared_secret: bytes, content_alg: int, recipient_protected: bytes) -> bytes:
    """HKDF-SHA-256 (no salt) over the X25519 secret, for ``content_alg`` itself: direct
    key agreement puts the content algorithm and its key length in the context (RFC 9053
    §5.2, §6.3.1), and the recipient's protected header."""
    key_bytes = CONTENT_KEY_BYTES[content_alg]
    info = _KDF_CONTEXTS.get((content_alg, recipient_protected))
    if info is None:
        info = cose_kdf_context(content_alg, key_bytes * 8, recipient_protected)
        if len(_KDF_CONTEXTS) < _KDF_CONTEXTS_MAX:
            _KDF_CONTEXTS[(content_alg, recipient_protected)] = info
    return HKDF(algorithm=_SHA256, length=key_bytes, salt=None, info=info).derive(shared_secret)


def ecdh_es_derive(
    recipient_public: x25519.X25519PublicKey,
    content_alg: int,
    recipient_protected: bytes,
    random_bytes: RandomBytes,
) -> tuple[bytes, bytes]:
    """ECDH-ES + HKDF-256 (COSE -25), sender's side: returns (ephemeral public key bytes,
    content key). The ephemeral key is fresh, so is the content key: one per message."""
    ephemeral = x25519.X25519PrivateKey.from_private_bytes(random_bytes(32))
    shared = ephemeral.exchange(recipient_public)
    content_key = _content_key_from_secret(shared, content_alg, recipient_protected)
    return ephemeral.public_key().public_bytes_raw(), content_key


def ecdh_es_rederive(
    private_key: x25519.X25519PrivateKey,
    ephemeral_public: bytes,
    content_alg: int,
    recipient_protected: bytes,
) -> bytes:
    """The recipient's side of :func:`ecdh_es_derive`: the same content key from its static
    key and the ephemeral public key; :class:`DecryptFailed` when the exchange fails."""
    try:
        peer = x25519.X25519PublicKey.from_public_bytes(ephemeral_public)
        shared = private_key.exchange(peer)
    except ValueError as exc:  # e.g. a low-order point: the shared secret would be all zero
        raise DecryptFailed("ECDH-ES key agreement failed: not sealed for this key, or altered") from exc
    return _content_key_from_secret(shared, content_alg, recipient_protected)


# --- content encryption -------------------------------------------------------------------


def aead_encrypt(cek: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-GCM encryption; the result is ciphertext followed by the 16-byte tag."""
    return AESGCM(cek).encrypt(nonce, plaintext, aad)


def aead_decrypt(cek: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """AES-GCM decryption; :class:`DecryptFailed` when the tag does not verify."""
    try:
        return AESGCM(cek).decrypt(nonce, ciphertext, aad)
    except (InvalidTag, ValueError) as exc:
        raise DecryptFailed("AES-GCM tag check failed: altered or wrong key") from exc


__all__ = [
    "ALG_A128GCM",
    "ALG_A128KW",
    "ALG_A256GCM",
    "ALG_ECDH_ES_A128KW",
    "ALG_ECDH_ES_HKDF_256",
    "ALG_EDDSA",
    "ALG_NAMES",
    "ALG_PS256",
    "ALG_RSAES_OAEP_SHA256",
    "DEFAULT_SUITE",
    "PartyKeys",
    "PrivateKey",
    "PublicKey",
    "SUITES",
    "Suite",
    "get_suite",
    "key_kind",
    "private_key_kind",
    "sign",
    "verify",
]
