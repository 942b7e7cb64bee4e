"""One exception tree for every way a protocol message can be refused.

Receivers catch :class:`ProtocolError` and count the rejection by its ``reason``;
nothing below this tree is ever raised as a bare ``Exception``. The ``reason``
strings are stable: they are the keys of ``summary.security.rejected``.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every rejection. ``reason`` is a stable, snake_case label."""

    reason = "protocol_error"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.reason)
        self.detail = detail or self.reason


class MalformedMessage(ProtocolError):
    """Bytes that are not a well-formed envelope, CBOR item or message."""

    reason = "malformed"


class MessageTooLarge(MalformedMessage):
    """An envelope or field over its named limit."""

    reason = "too_large"


class UnsupportedAlgorithm(MalformedMessage):
    """A COSE algorithm or cipher suite this build does not accept."""

    reason = "unsupported_algorithm"


class DecryptFailed(ProtocolError):
    """Key unwrap or AEAD tag check failed: tampered, or not sealed for us."""

    reason = "decrypt_failed"


class BadSignature(ProtocolError):
    """The COSE_Sign1 signature does not verify under the sender's certificate."""

    reason = "bad_signature"


class CertificateError(ProtocolError):
    """Base for certificate problems."""

    reason = "certificate_error"


class UnknownCertificate(CertificateError):
    """No certificate for the ``kid``, or one that does not chain to the authority."""

    reason = "unknown_certificate"


class CertificateExpired(CertificateError):
    """The certificate is outside its validity period at the given time."""

    reason = "certificate_expired"


class CertificateRevoked(CertificateError):
    """The authority has revoked the certificate."""

    reason = "certificate_revoked"


class HeaderMismatch(ProtocolError):
    """Signed headers disagree with the certificate or the payload (sender, type, contract)."""

    reason = "header_mismatch"


class WrongRecipient(ProtocolError):
    """The envelope was addressed to somebody else (redirected)."""

    reason = "wrong_recipient"


class Replay(ProtocolError):
    """A sequence number already seen, or a send time outside the replay window."""

    reason = "replay"


class IllegalTransition(ProtocolError):
    """An event that is not legal in the transaction's current state."""

    reason = "illegal_transition"


class UnknownParty(ProtocolError):
    """A message names a party the receiver does not know."""

    reason = "unknown_party"


class Unauthenticated(ProtocolError):
    """A plain (unsigned) SMS: shown as untrusted, never acted upon."""

    reason = "unauthenticated"


__all__ = [
    "BadSignature",
    "CertificateError",
    "CertificateExpired",
    "CertificateRevoked",
    "DecryptFailed",
    "HeaderMismatch",
    "IllegalTransition",
    "MalformedMessage",
    "MessageTooLarge",
    "ProtocolError",
    "Replay",
    "Unauthenticated",
    "UnknownCertificate",
    "UnknownParty",
    "UnsupportedAlgorithm",
    "WrongRecipient",
]
