"""``mpay vectors``: an independent COSE implementation (pycose) opens every envelope, and
openssl accepts every certificate. Also the key cache and ``mpay keys``.

pycose 1.1.0 handles RSA-OAEP-256, A256GCM/A128GCM, PS256 and EdDSA as they are. Its ECDH
code only knows EC2 curves: ``_EcdhHkdf._ecdh`` reads the key's ``y``, and direct key
agreement (``DirectKeyAgreement.compute_cek``) admits only ``EC2Key`` objects. So for X25519
the test supplies the raw exchange (3 lines, below) and lets that key-type check admit OKP
keys too; pycose itself builds the COSE_KDF_Context (AlgorithmID A128GCM, 128 bits, the
recipient's protected header), runs HKDF-SHA-256 for the content key and decrypts.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import x25519
from pycose import algorithms as pycose_algorithms
from pycose.keys import CoseKey
from pycose.keys.ec2 import EC2Key
from pycose.keys.okp import OKPKey
from pycose.messages import recipient as pycose_recipient
from pycose.messages import CoseMessage, EncMessage, Sign1Message

from mpay.cli.main import main
from mpay.keys.keycache import KeyCache
from mpay.protocol.messages import MessageType, decode_message
from mpay.protocol.pki import party_id_of, phone_of, role_of
from mpay.protocol.suites import SUITES

PEM = serialization.Encoding.PEM


@pytest.fixture(scope="session")
def vectors(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vectors")
    assert main(["vectors", str(out)]) == 0
    return out, json.loads((out / "index.json").read_text())


@pytest.fixture
def pycose_x25519(monkeypatch: pytest.MonkeyPatch) -> None:
    """Teach pycose's ECDH step X25519 (it only implements EC2 curves), and let its direct
    key agreement accept the OKP keys that carry X25519."""
    original = pycose_algorithms._EcdhHkdf._ecdh.__func__

    def _ecdh(cls, curve, private_key, public_key):  # type: ignore[no-untyped-def]
        if isinstance(public_key, OKPKey):
            peer = x25519.X25519PublicKey.from_public_bytes(public_key.x)
            return x25519.X25519PrivateKey.from_private_bytes(private_key.d).exchange(peer)
        return original(cls, curve, private_key, public_key)

    monkeypatch.setattr(pycose_algorithms._EcdhHkdf, "_ecdh", classmethod(_ecdh))
    # compute_cek checks both keys with isinstance(key, EC2Key); the module name is all it uses
    monkeypatch.setattr(pycose_recipient, "EC2Key", (EC2Key, OKPKey))


def test_the_index_lists_every_party_and_one_envelope_per_type_and_suite(vectors) -> None:
    out, index = vectors
    assert index["format"] == "mpay-vectors/1"
    assert (out / index["authority"]["cert"]).is_file()
    assert {(p["role"], p["suite"]) for p in index["parties"]} == {
        (role, suite) for role in ("customer", "merchant", "payment_center", "bank") for suite in SUITES
    }
    for party in index["parties"]:
        for key in ("cert", "key", "agreement_cert", "agreement_key"):
            assert (out / party[key]).is_file()
    assert {(e["type"], e["suite"]) for e in index["envelopes"]} == {
        (t.value, s) for t in MessageType for s in SUITES
    }
    for env in index["envelopes"]:
        data = (out / env["file"]).read_bytes()
        assert data[:2] == b"\xd8\x60" and len(data) == env["bytes"]


@pytest.mark.parametrize("suite", list(SUITES))
def test_pycose_opens_every_envelope_and_verifies_the_inner_signature(vectors, suite: str, pycose_x25519) -> None:
    out, index = vectors
    parties = {(p["id"], p["suite"]): p for p in index["parties"]}
    envelopes = [e for e in index["envelopes"] if e["suite"] == suite]
    assert len(envelopes) == len(MessageType)
    for env in envelopes:
        recipient = parties[(env["recipient"], suite)]
        sender = parties[(env["sender"], suite)]
        encrypted = CoseMessage.decode((out / env["file"]).read_bytes())
        assert isinstance(encrypted, EncMessage)
        [rcpt] = encrypted.recipients
        if suite == "compact":  # ECDH-ES + HKDF-256: the content key is agreed, nothing wrapped
            assert isinstance(rcpt, pycose_recipient.DirectKeyAgreement) and rcpt.payload == b""
        rcpt.key = CoseKey.from_pem_private_key((out / recipient["agreement_key"]).read_text())
        inner = encrypted.decrypt(rcpt)

        signed = CoseMessage.decode(inner)
        assert isinstance(signed, Sign1Message)
        sender_cert = x509.load_pem_x509_certificate((out / sender["cert"]).read_bytes())
        public_pem = sender_cert.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        signed.key = CoseKey.from_pem_public_key(public_pem.decode())
        assert signed.verify_signature(), env["file"]

        message = decode_message(env["type"], signed.payload)
        assert message.model_dump(mode="json") == env["payload"], env["file"]
        protected = {getattr(k, "identifier", k): v for k, v in signed.phdr.items()}
        assert (protected["t"], protected["s"], protected["r"], protected["q"]) == (
            env["type"], env["sender"], env["recipient"], env["seq"]
        )


def test_a_tampered_vector_fails_in_pycose_too(vectors) -> None:
    out, index = vectors
    env = next(e for e in index["envelopes"] if e["suite"] == "rsa2048")
    recipient = next(p for p in index["parties"] if p["id"] == env["recipient"] and p["suite"] == "rsa2048")
    data = bytearray((out / env["file"]).read_bytes())
    data[-30] ^= 0x01  # inside the wrapped key
    encrypted = CoseMessage.decode(bytes(data))
    [rcpt] = encrypted.recipients
    rcpt.key = CoseKey.from_pem_private_key((out / recipient["agreement_key"]).read_text())
    with pytest.raises(Exception):
        encrypted.decrypt(rcpt)


def test_openssl_verify_accepts_every_certificate(vectors) -> None:
    out, index = vectors
    ca = out / index["authority"]["cert"]
    certs = sorted({p["cert"] for p in index["parties"]} | {p["agreement_cert"] for p in index["parties"]})
    assert len(certs) == 4 * (len(SUITES) + 1)  # compact parties have two certificates
    result = subprocess.run(
        ["openssl", "verify", "-CAfile", str(ca), *[str(out / c) for c in certs]], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": OK") == len(certs)


def test_party_certificates_carry_what_the_index_says(vectors) -> None:
    out, index = vectors
    for party in index["parties"]:
        cert = x509.load_pem_x509_certificate((out / party["cert"]).read_bytes())
        assert (party_id_of(cert), role_of(cert), phone_of(cert)) == (party["id"], party["role"], party["phone"])
        key = serialization.load_pem_private_key((out / party["key"]).read_bytes(), None)
        assert key.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo) == (
            cert.public_key().public_bytes(PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


def test_mpay_vectors_refuses_a_file_as_outdir(tmp_path: Path, capsys) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    assert main(["vectors", str(target)]) == 2
    assert "not a directory" in capsys.readouterr().err


# --- key cache ---------------------------------------------------------------------------------


def test_the_key_cache_persists_keys_across_instances(tmp_path: Path) -> None:
    first = KeyCache(tmp_path).keys("compact", 3)
    second = KeyCache(tmp_path).keys("compact", 3)
    raw = serialization.Encoding.Raw
    assert first.signing.public_key().public_bytes(raw, serialization.PublicFormat.Raw) == (
        second.signing.public_key().public_bytes(raw, serialization.PublicFormat.Raw)
    )
    assert sorted(p.name for p in (tmp_path / "compact").iterdir()) == ["000003.pem", "000003.x25519.pem"]
    other = KeyCache(tmp_path).keys("compact", 4)
    assert other.signing.public_key() != first.signing.public_key()


def test_the_key_cache_reads_mpay_key_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MPAY_KEY_CACHE", str(tmp_path / "env-cache"))
    assert KeyCache().path == tmp_path / "env-cache"


def test_a_corrupt_cached_key_gets_a_clear_message(tmp_path: Path) -> None:
    from mpay.keys.keycache import KeyCacheError

    (tmp_path / "compact").mkdir()
    (tmp_path / "compact" / "000000.pem").write_text("not a key")
    with pytest.raises(KeyCacheError, match="mpay keys --clear"):
        KeyCache(tmp_path).keys("compact", 0)


def test_mpay_keys_info_generate_and_clear(tmp_path: Path, capsys) -> None:
    path = str(tmp_path / "cache")
    assert main(["keys", "--path", path, "--generate", "3", "--suite", "compact"]) == 0
    assert main(["keys", "--path", path, "--info"]) == 0
    out = capsys.readouterr().out
    assert f"location: {path}" in out and "compact: 6 key files" in out
    assert main(["keys", "--path", path, "--clear"]) == 0
    assert "removed 6 cached keys" in capsys.readouterr().out
    assert KeyCache(path).info().total_keys == 0
    assert main(["keys", "--path", path, "--generate", "2", "--suite", "des"]) == 2
