"""Interoperability vectors: certificates, keys and one sealed envelope per message type and suite.

``mpay vectors OUTDIR`` writes::

    OUTDIR/index.json                      what everything is (format below)
    OUTDIR/ca.pem                          the authority's certificate
    OUTDIR/<suite>/<party>.cert.pem        a party's (signing) certificate
    OUTDIR/<suite>/<party>.key.pem         its private key (PKCS#8, unencrypted test key)
    OUTDIR/<suite>/<party>.x25519.*.pem    compact suite only: key-agreement certificate and key
    OUTDIR/<suite>/<message_type>.cose     one tagged COSE_Encrypt per message type

``index.json``: ``{"format", "authority": {id, cert}, "suites": {name: algorithms},
"parties": [{id, role, suite, phone, cert, key, agreement_cert, agreement_key}],
"envelopes": [{file, type, suite, sender, recipient, seq, sent_unix_s, contract_no,
sender_cert_included, bytes, sms_parts, payload}]}``; ``payload`` is the message as JSON.
Other implementations open each envelope with the recipient's key and verify the inner
COSE_Sign1 with the sender's certificate (tests/test_vectors.py does it with pycose).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from mpay.keys.keycache import KeyCache
from mpay.protocol import samples
from mpay.protocol.envelope import seal, sms_parts
from mpay.protocol.messages import MESSAGE_MODELS, MessageType, contract_no_of
from mpay.protocol.pki import Authority, Identity
from mpay.protocol.replay import SequenceCounter
from mpay.protocol.samples import sample_message
from mpay.protocol.suites import SUITES, PrivateKey, get_suite

FORMAT = "mpay-vectors/1"
#: validity of the vector certificates: 2025-01-01 .. 2036-01-01 (authority until 2045-01-01),
#: so ``openssl verify`` accepts them today without -attime
NOT_BEFORE_UNIX_S = 1_735_689_600
PARTY_NOT_AFTER_UNIX_S = 2_082_758_400
AUTHORITY_NOT_AFTER_UNIX_S = 2_366_841_600
#: send time written into every vector envelope (2026-01-01T00:00:00Z)
SENT_UNIX_S = 1_767_225_600
#: the suite whose authority key signs every vector certificate
AUTHORITY_SUITE = "rsa2048"

#: role -> (party id, key-pool index, phone); ids match protocol.samples so payloads agree
PARTIES: dict[str, tuple[str, int, str | None]] = {
    "customer": (samples.CUSTOMER_ID, 0, "+86" + samples.CUSTOMER_PHONE),
    "merchant": (samples.MERCHANT_ID, 1, None),
    "payment_center": (samples.PAYMENT_CENTER_ID, 2, None),
    "bank": (samples.BANK_ID, 3, None),
}
#: preference when a message type allows several sender or recipient roles
ROLE_ORDER = ("customer", "merchant", "payment_center", "bank")
#: first-contact registrations carry the sender's certificate (x5chain)
FIRST_CONTACT_TYPES = frozenset(
    {
        MessageType.SHOP_REGISTRATION,
        MessageType.CUSTOMER_REGISTRATION,
        MessageType.CARD_BINDING,
        MessageType.MERCHANT_REGISTRATION,
    }
)


def pick_roles(message_type: MessageType) -> tuple[str, str]:
    """The (sender role, recipient role) used for a message type's vector."""
    model = MESSAGE_MODELS[message_type]
    sender = next(r for r in ROLE_ORDER if r in model.SENDER_ROLES)  # type: ignore[attr-defined]
    recipient = next(r for r in ROLE_ORDER if r in model.RECIPIENT_ROLES and r != sender)  # type: ignore[attr-defined]
    return sender, recipient


def _pem_key(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_vectors(
    outdir: Path | str,
    *,
    cache: KeyCache | None = None,
    suites: tuple[str, ...] = tuple(SUITES),
) -> dict[str, Any]:
    """Write the vectors into ``outdir`` and return the index (also written as index.json)."""
    out = Path(outdir)
    cache = cache or KeyCache()
    for name in suites:
        get_suite(name)
    authority = Authority.create(
        cache.authority_key(AUTHORITY_SUITE),
        not_before_unix_s=NOT_BEFORE_UNIX_S,
        not_after_unix_s=AUTHORITY_NOT_AFTER_UNIX_S,
        name="mpay vectors authority",
    )
    pem = serialization.Encoding.PEM
    _write(out / "ca.pem", authority.certificate.public_bytes(pem))
    index: dict[str, Any] = {
        "format": FORMAT,
        "authority": {"id": authority.name, "cert": "ca.pem"},
        "suites": {},
        "parties": [],
        "envelopes": [],
    }
    for suite_name in suites:
        suite = get_suite(suite_name)
        index["suites"][suite_name] = {
            "signature_alg": suite.signature_alg,
            "key_distribution_alg": suite.key_distribution_alg,
            "content_alg": suite.content_alg,
            "description": suite.description,
        }
        identities: dict[str, Identity] = {}
        for role, (party_id, pool_index, phone) in PARTIES.items():
            ident = authority.issue_identity(
                party_id,
                role,
                suite,
                cache.keys(suite, pool_index),
                NOT_BEFORE_UNIX_S,
                PARTY_NOT_AFTER_UNIX_S,
                phone=phone if role == "customer" else None,
            )
            identities[role] = ident
            base = f"{suite_name}/{party_id}"
            _write(out / f"{base}.cert.pem", ident.signing_cert.public_bytes(pem))
            _write(out / f"{base}.key.pem", _pem_key(ident.signing_key))
            entry = {
                "id": party_id,
                "role": role,
                "suite": suite_name,
                "phone": ident.phone,
                "cert": f"{base}.cert.pem",
                "key": f"{base}.key.pem",
                "agreement_cert": f"{base}.cert.pem",
                "agreement_key": f"{base}.key.pem",
            }
            if suite.separate_agreement_key:
                _write(out / f"{base}.x25519.cert.pem", ident.agreement_cert.public_bytes(pem))
                _write(out / f"{base}.x25519.key.pem", _pem_key(ident.agreement_key))
                entry["agreement_cert"] = f"{base}.x25519.cert.pem"
                entry["agreement_key"] = f"{base}.x25519.key.pem"
            index["parties"].append(entry)
        counters = {role: SequenceCounter() for role in PARTIES}
        for message_type in MessageType:
            sender_role, recipient_role = pick_roles(message_type)
            sender, recipient = identities[sender_role], identities[recipient_role]
            message = sample_message(message_type)
            seq = counters[sender_role].next()
            first_contact = message_type in FIRST_CONTACT_TYPES
            envelope = seal(
                message,
                sender=sender,
                recipient_cert=recipient.agreement_cert,
                seq=seq,
                sent_unix_s=SENT_UNIX_S,
                include_sender_cert=first_contact,
            )
            file = f"{suite_name}/{message_type.value}.cose"
            _write(out / file, envelope)
            index["envelopes"].append(
                {
                    "file": file,
                    "type": message_type.value,
                    "suite": suite_name,
                    "sender": sender.party_id,
                    "recipient": recipient.party_id,
                    "seq": seq,
                    "sent_unix_s": SENT_UNIX_S,
                    "contract_no": contract_no_of(message),
                    "sender_cert_included": first_contact,
                    "bytes": len(envelope),
                    "sms_parts": sms_parts(len(envelope)),
                    "payload": message.model_dump(mode="json"),
                }
            )
    _write(out / "index.json", (json.dumps(index, indent=2, sort_keys=True) + "\n").encode())
    return index


__all__ = ["FORMAT", "PARTIES", "SENT_UNIX_S", "pick_roles", "write_vectors"]
