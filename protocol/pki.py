"""The authority (CA), the parties' identities, and the receivers' trust store.

Certificates are real X.509 v3 (RFC 5280), built with ``cryptography`` and accepted by
``openssl verify``. A party certificate's subject names the party:

* ``CN`` (2.5.4.3) -- the party id, e.g. ``cust-000042`` (the id in the envelope headers);
* ``OU`` (2.5.4.11) -- the role: ``customer``, ``merchant``, ``payment_center``, ``bank``;
* ``telephoneNumber`` (2.5.4.20) -- a customer's phone number (E.164, e.g. ``+8613800000042``).

RSA parties have one certificate (keyUsage digitalSignature + keyEncipherment). Compact
(X25519/Ed25519) parties have two, issued together with the same subject: an Ed25519
*signing* certificate (digitalSignature) and an X25519 *agreement* certificate
(keyAgreement) that senders encrypt to. ``kid(cert)`` is SHA-256 of the certificate's DER.

Sans-IO: every time is an ``int`` of Unix seconds passed in by the caller.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.exceptions import UnsupportedAlgorithm as CryptographyUnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mpay.protocol.errors import (
    CertificateExpired,
    CertificateRevoked,
    MalformedMessage,
    UnknownCertificate,
    UnsupportedAlgorithm,
)
from mpay.protocol.suites import MIN_RSA_BITS, PartyKeys, PrivateKey, PublicKey, Suite, get_suite, key_kind

#: every role a party certificate may carry (the authority itself is "authority")
ROLES = frozenset({"customer", "merchant", "payment_center", "bank", "authority"})
#: roles the authority issues party certificates for
PARTY_ROLES = ROLES - {"authority"}
#: longest party id (CN upper bound in RFC 5280 is 64)
MAX_PARTY_ID_CHARS = 64
#: longest phone number (E.164 is at most 15 digits plus "+")
MAX_PHONE_CHARS = 16
#: largest certificate (DER bytes) accepted from the wire (x5chain)
MAX_CERT_BYTES = 4096
#: how many certificates a trust store keeps (a world of many thousand parties fits)
MAX_TRUSTED_CERTS = 1_000_000
#: serial number of the authority's self-signed certificate; parties get 2, 3, ...
AUTHORITY_SERIAL = 1

OID_TELEPHONE_NUMBER = x509.ObjectIdentifier("2.5.4.20")  # telephoneNumber (X.520)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _to_datetime(unix_s: int) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(seconds=int(unix_s))


def _to_unix_s(moment: _dt.datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


def kid(cert: x509.Certificate) -> bytes:
    """The COSE key identifier of a certificate: SHA-256 of its DER encoding (32 bytes)."""
    return cert_info(cert).kid


def _name_attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    attrs = name.get_attributes_for_oid(oid)
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def party_id_of(cert: x509.Certificate) -> str:
    """The party id (subject CN)."""
    return cert_info(cert).party_id


def role_of(cert: x509.Certificate) -> str:
    """The role (subject OU)."""
    return cert_info(cert).role


def phone_of(cert: x509.Certificate) -> str | None:
    """A customer's phone number (subject telephoneNumber), or None."""
    return cert_info(cert).phone


@dataclass(frozen=True, eq=False)
class CertInfo:
    """A certificate parsed once: the fields every envelope check needs, and its public key."""

    cert: x509.Certificate
    der: bytes
    kid: bytes
    serial: int
    party_id: str
    role: str
    phone: str | None
    key_kind: str  # "rsa" | "ed25519" | "x25519"
    public_key: PublicKey
    #: RSA modulus size in bits, None for the other keys
    rsa_bits: int | None
    not_before_unix_s: int
    not_after_unix_s: int
    is_ca: bool


@lru_cache(maxsize=8192)
def cert_info(cert: x509.Certificate) -> CertInfo:
    """Parse ``cert`` once (cached): subject fields, public key, validity, kid."""
    try:
        der = cert.public_bytes(Encoding.DER)
        public_key = cert.public_key()
        kind = key_kind(public_key)
        try:
            basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = bool(basic.ca)
        except x509.ExtensionNotFound:
            is_ca = False
        party_id = _name_attr(cert.subject, NameOID.COMMON_NAME) or ""
        role = _name_attr(cert.subject, NameOID.ORGANIZATIONAL_UNIT_NAME) or ""
        phone = _name_attr(cert.subject, OID_TELEPHONE_NUMBER)
        not_before = _to_unix_s(cert.not_valid_before_utc)
        not_after = _to_unix_s(cert.not_valid_after_utc)
    except UnsupportedAlgorithm:
        raise
    except CryptographyUnsupportedAlgorithm as exc:
        raise UnsupportedAlgorithm(f"certificate with an unsupported algorithm: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"unreadable certificate: {exc}") from exc
    rsa_bits = public_key.key_size if kind == "rsa" else None  # type: ignore[union-attr]
    if rsa_bits is not None and rsa_bits < MIN_RSA_BITS:
        raise UnsupportedAlgorithm(f"RSA key of {rsa_bits} bits is below {MIN_RSA_BITS}")
    return CertInfo(
        cert=cert,
        der=der,
        kid=hashlib.sha256(der).digest(),
        serial=cert.serial_number,
        party_id=party_id,
        role=role,
        phone=phone,
        key_kind=kind,
        public_key=public_key,
        rsa_bits=rsa_bits,
        not_before_unix_s=not_before,
        not_after_unix_s=not_after,
        is_ca=is_ca,
    )


def load_der_certificate(der: bytes) -> x509.Certificate:
    """Parse a DER certificate from the wire; :class:`MalformedMessage` if it is not one."""
    if len(der) > MAX_CERT_BYTES:
        raise MalformedMessage(f"certificate of {len(der)} bytes exceeds {MAX_CERT_BYTES}")
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise MalformedMessage(f"not a DER certificate: {exc}") from exc


def _sign_hash_for(key: PrivateKey) -> hashes.HashAlgorithm | None:
    """X.509 signature hash: SHA-256 for RSA (PKCS#1 v1.5, what openssl expects), none for Ed25519."""
    if isinstance(key, rsa.RSAPrivateKey):
        return hashes.SHA256()
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    raise UnsupportedAlgorithm(f"an authority cannot sign with a {type(key).__name__}")


def _check_party_id(party_id: str) -> None:
    if not isinstance(party_id, str) or not party_id or len(party_id) > MAX_PARTY_ID_CHARS:
        raise ValueError(f"party id must be 1..{MAX_PARTY_ID_CHARS} characters, got {party_id!r}")


class Authority:
    """The certification authority: issues party certificates and revokes them.

    Serial numbers are a counter (1 is the authority itself), so a seeded world issues
    the same serials every run. ``revocations`` is a live read-only view (serial ->
    revocation time) that trust stores may share, so a revocation reaches every receiver
    at once; :meth:`crl` renders the same list as a signed X.509 CRL.
    """

    def __init__(self, private_key: PrivateKey, certificate: x509.Certificate, next_serial: int = 2):
        self.private_key = private_key
        self.certificate = certificate
        self._next_serial = next_serial
        self._revoked: dict[int, int] = {}
        self.revocations: Mapping[int, int] = MappingProxyType(self._revoked)

    @classmethod
    def create(
        cls,
        private_key: PrivateKey,
        *,
        not_before_unix_s: int,
        not_after_unix_s: int,
        name: str = "mpay authority",
    ) -> Authority:
        """A new authority with a self-signed CA certificate (RSA or Ed25519 key)."""
        _check_party_id(name)
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COMMON_NAME, name),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "authority"),
            ]
        )
        public_key = private_key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public_key)
            .serial_number(AUTHORITY_SERIAL)
            .not_valid_before(_to_datetime(not_before_unix_s))
            .not_valid_after(_to_datetime(not_after_unix_s))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .sign(private_key, _sign_hash_for(private_key))
        )
        return cls(private_key, cert)

    @property
    def name(self) -> str:
        return party_id_of(self.certificate)

    def issue(
        self,
        party_id: str,
        role: str,
        public_key: PublicKey,
        not_before_unix_s: int,
        not_after_unix_s: int,
        phone: str | None = None,
    ) -> x509.Certificate:
        """Issue an X.509 v3 certificate binding ``public_key`` to ``party_id`` and ``role``.

        Key usage follows the key: RSA signs and receives wrapped keys, Ed25519 signs,
        X25519 agrees keys.
        """
        _check_party_id(party_id)
        if role not in PARTY_ROLES:
            raise ValueError(f"role must be one of {sorted(PARTY_ROLES)}, got {role!r}")
        if phone is not None and (not phone or len(phone) > MAX_PHONE_CHARS):
            raise ValueError(f"phone must be 1..{MAX_PHONE_CHARS} characters, got {phone!r}")
        if not_after_unix_s <= not_before_unix_s:
            raise ValueError("not_after_unix_s must be after not_before_unix_s")
        kind = key_kind(public_key)
        attrs = [
            x509.NameAttribute(NameOID.COMMON_NAME, party_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
        ]
        if phone is not None:
            attrs.append(x509.NameAttribute(OID_TELEPHONE_NUMBER, phone))
        usage = dict(
            digital_signature=kind in ("rsa", "ed25519"),
            content_commitment=False,
            key_encipherment=kind == "rsa",
            data_encipherment=False,
            key_agreement=kind == "x25519",
            key_cert_sign=False,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        )
        serial = self._next_serial
        self._next_serial += 1
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attrs))
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(_to_datetime(not_before_unix_s))
            .not_valid_after(_to_datetime(not_after_unix_s))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(**usage), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.private_key.public_key()),  # type: ignore[arg-type]
                critical=False,
            )
            .sign(self.private_key, _sign_hash_for(self.private_key))
        )

    def issue_identity(
        self,
        party_id: str,
        role: str,
        suite: Suite | str,
        keys: PartyKeys,
        not_before_unix_s: int,
        not_after_unix_s: int,
        phone: str | None = None,
    ) -> Identity:
        """Issue the certificate(s) a party of ``suite`` needs and bundle them with its keys."""
        suite = get_suite(suite) if isinstance(suite, str) else suite
        if not suite.keys_fit(keys):
            raise ValueError(f"keys do not fit suite {suite.name}")
        signing_cert = self.issue(
            party_id, role, keys.signing.public_key(), not_before_unix_s, not_after_unix_s, phone
        )
        if keys.separate:
            agreement_cert = self.issue(
                party_id, role, keys.agreement.public_key(), not_before_unix_s, not_after_unix_s, phone
            )
        else:
            agreement_cert = signing_cert
        return Identity(
            party_id=party_id,
            role=role,
            suite=suite.name,
            signing_key=keys.signing,
            signing_cert=signing_cert,
            agreement_key=keys.agreement,
            agreement_cert=agreement_cert,
        )

    def revoke(self, cert_or_serial: x509.Certificate | int, at_unix_s: int) -> None:
        """Revoke a certificate from ``at_unix_s`` on (the earliest time wins if repeated)."""
        serial = cert_or_serial if isinstance(cert_or_serial, int) else cert_or_serial.serial_number
        previous = self._revoked.get(serial)
        self._revoked[serial] = int(at_unix_s) if previous is None else min(previous, int(at_unix_s))

    def crl(self, this_update_unix_s: int, next_update_unix_s: int) -> x509.CertificateRevocationList:
        """The revocations in force at ``this_update_unix_s`` as a signed X.509 CRL."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(_to_datetime(this_update_unix_s))
            .next_update(_to_datetime(next_update_unix_s))
        )
        for serial, at_s in sorted(self._revoked.items()):
            if at_s <= this_update_unix_s:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder()
                    .serial_number(serial)
                    .revocation_date(_to_datetime(at_s))
                    .build()
                )
        return builder.sign(self.private_key, _sign_hash_for(self.private_key))


@dataclass(frozen=True, eq=False)
class Identity:
    """A party as it knows itself: id, role, suite, private keys and own certificates.

    ``signing_*`` signs outgoing messages (its kid goes in every envelope);
    ``agreement_*`` opens incoming ones. In RSA suites both are the same key and certificate.
    """

    party_id: str
    role: str
    suite: str
    signing_key: PrivateKey = field(repr=False)
    signing_cert: x509.Certificate = field(repr=False)
    agreement_key: PrivateKey = field(repr=False)
    agreement_cert: x509.Certificate = field(repr=False)

    @property
    def kid(self) -> bytes:
        """kid of the signing certificate."""
        return kid(self.signing_cert)

    @property
    def phone(self) -> str | None:
        return phone_of(self.signing_cert)

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """Every certificate of this identity (one for RSA, two for compact)."""
        if self.agreement_cert is self.signing_cert:
            return (self.signing_cert,)
        return (self.signing_cert, self.agreement_cert)


def _verify_issued_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    """True when ``ca``'s key signed ``cert`` (and the issuer name matches)."""
    ca_key = cert_info(ca).public_key
    try:
        if cert.issuer != ca.subject:
            return False
        if isinstance(ca_key, rsa.RSAPublicKey):
            if cert.signature_hash_algorithm is None:
                return False
            ca_key.verify(
                cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), cert.signature_hash_algorithm
            )
        elif isinstance(ca_key, ed25519.Ed25519PublicKey):
            ca_key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, CryptographyUnsupportedAlgorithm):
        return False
    return True


class TrustStore:
    """What a receiver trusts: the authority's certificate, known party certificates by kid,
    and the revocations it has heard of.

    The authority's signature on a certificate is checked once and remembered by kid;
    validity and revocation are checked on every :meth:`verify`, because time moves.
    """

    def __init__(
        self,
        authority_cert: x509.Certificate,
        revocations: Mapping[int, int] | None = None,
    ):
        info = cert_info(authority_cert)
        if not info.is_ca:
            raise ValueError("the trust anchor must be a CA certificate")
        self.authority_cert = authority_cert
        self._authority = info
        self._shared_revocations = revocations
        self._local_revocations: dict[int, int] = {}
        self._by_kid: dict[bytes, CertInfo] = {}
        self._by_party: dict[str, list[CertInfo]] = {}
        self._chain_ok: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._by_kid)

    def check_chain(self, cert: x509.Certificate | CertInfo) -> CertInfo:
        """Check (once per kid) that the authority issued ``cert``; :class:`UnknownCertificate` if not.

        Given the :class:`CertInfo` that :func:`cert_info` made for it (a trust store's own,
        say), it skips the cache lookup, which hashes the whole certificate."""
        info = cert if type(cert) is CertInfo else cert_info(cert)  # type: ignore[arg-type]
        if info.kid in self._chain_ok:
            return info
        if info.is_ca or not _verify_issued_by(info.cert, self.authority_cert):
            raise UnknownCertificate(
                f"certificate of {info.party_id or '?'} was not issued by {self._authority.party_id}"
            )
        if info.role not in PARTY_ROLES or not info.party_id:
            raise UnknownCertificate(f"certificate without a party id and role ({info.role!r})")
        self._chain_ok.add(info.kid)
        return info

    def add(self, cert: x509.Certificate) -> CertInfo:
        """Trust ``cert`` after checking it chains to the authority; returns its parsed info."""
        info = self.check_chain(cert)
        if info.kid not in self._by_kid:
            if len(self._by_kid) >= MAX_TRUSTED_CERTS:
                raise UnknownCertificate(f"trust store full ({MAX_TRUSTED_CERTS} certificates)")
            self._by_kid[info.kid] = info
            self._by_party.setdefault(info.party_id, []).append(info)
        return info

    def by_kid(self, kid_: bytes) -> CertInfo | None:
        """The trusted certificate with this kid, or None."""
        return self._by_kid.get(kid_)

    def certs_of(self, party_id: str) -> tuple[x509.Certificate, ...]:
        """Every trusted certificate of ``party_id`` (in the order added)."""
        return tuple(i.cert for i in self._by_party.get(party_id, ()))

    def encryption_cert(self, party_id: str) -> x509.Certificate:
        """The certificate to seal envelopes for ``party_id`` (RSA, or the X25519 one).

        The most recently added suitable certificate wins (a re-issued certificate replaces
        the old one). :class:`UnknownCertificate` when there is none.
        """
        for info in reversed(self._by_party.get(party_id, ())):
            if info.key_kind in ("rsa", "x25519"):
                return info.cert
        raise UnknownCertificate(f"no encryption certificate known for {party_id!r}")

    def revoke(self, cert_or_serial: x509.Certificate | int, at_unix_s: int) -> None:
        """Record a revocation heard about locally (e.g. from a CRL)."""
        serial = cert_or_serial if isinstance(cert_or_serial, int) else cert_or_serial.serial_number
        previous = self._local_revocations.get(serial)
        self._local_revocations[serial] = int(at_unix_s) if previous is None else min(previous, int(at_unix_s))

    def apply_crl(self, crl: x509.CertificateRevocationList) -> int:
        """Take every revocation of a CRL signed by the authority; returns how many entries."""
        ca_key = self._authority.public_key
        if crl.issuer != self.authority_cert.subject or not crl.is_signature_valid(ca_key):  # type: ignore[arg-type]
            raise UnknownCertificate("CRL not signed by the authority")
        count = 0
        for entry in crl:
            self.revoke(entry.serial_number, _to_unix_s(entry.revocation_date_utc))
            count += 1
        return count

    def revoked_at(self, serial: int) -> int | None:
        """When ``serial`` was revoked, or None."""
        local = self._local_revocations.get(serial)
        shared = self._shared_revocations.get(serial) if self._shared_revocations is not None else None
        if local is None:
            return shared
        if shared is None:
            return local
        return min(local, shared)

    def check_validity(self, info: CertInfo, now_unix_s: float) -> None:
        """:class:`CertificateExpired` unless ``now_unix_s`` is inside the validity period
        of the certificate and of the authority's own certificate."""
        ca = self._authority
        if not ca.not_before_unix_s <= now_unix_s <= ca.not_after_unix_s:
            raise CertificateExpired(
                f"authority certificate valid {ca.not_before_unix_s}..{ca.not_after_unix_s}, now {int(now_unix_s)}"
            )
        if not info.not_before_unix_s <= now_unix_s <= info.not_after_unix_s:
            raise CertificateExpired(
                f"certificate of {info.party_id} valid {info.not_before_unix_s}..{info.not_after_unix_s}, "
                f"now {int(now_unix_s)}"
            )

    def check_revocation(self, info: CertInfo, now_unix_s: float) -> None:
        """:class:`CertificateRevoked` if the certificate was revoked at or before ``now_unix_s``."""
        revoked_at = self.revoked_at(info.serial)
        if revoked_at is not None and revoked_at <= now_unix_s:
            raise CertificateRevoked(f"certificate of {info.party_id} revoked at {revoked_at}")

    def verify(self, cert: x509.Certificate | CertInfo, now_unix_s: float) -> CertInfo:
        """Chain (cached), validity at ``now_unix_s`` and revocation, in that order.

        Raises :class:`UnknownCertificate`, :class:`CertificateExpired` or
        :class:`CertificateRevoked`; returns the parsed certificate on success.
        """
        info = self.check_chain(cert.cert if isinstance(cert, CertInfo) else cert)
        self.check_validity(info, now_unix_s)
        self.check_revocation(info, now_unix_s)
        return info


__all__ = [
    "Authority",
    "CertInfo",
    "Identity",
    "PARTY_ROLES",
    "ROLES",
    "TrustStore",
    "cert_info",
    "kid",
    "load_der_certificate",
    "party_id_of",
    "phone_of",
    "role_of",
]
