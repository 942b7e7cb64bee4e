"""The authority's certificates (checked by openssl too), the trust store, and the suites."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest
from conftest import CERT_NOT_AFTER, CERT_NOT_BEFORE, DAY_S, T0, World
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa, x25519

import mpay.protocol.pki as pki
from mpay.protocol.errors import CertificateExpired, CertificateRevoked, UnknownCertificate, UnsupportedAlgorithm
from mpay.protocol.pki import Authority, TrustStore, kid, party_id_of, phone_of, role_of
from mpay.protocol.suites import SUITES, get_suite

PEM = serialization.Encoding.PEM


def _openssl_verify(tmp_path: Path, ca: x509.Certificate, cert: x509.Certificate, at_unix_s: int) -> subprocess.CompletedProcess:
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(PEM))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(PEM))
    return subprocess.run(
        ["openssl", "verify", "-attime", str(at_unix_s), "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "cert.pem")],
        capture_output=True,
        text=True,
    )


def test_a_customer_certificate_names_the_party_role_and_phone(rsa_world: World) -> None:
    cert = rsa_world["alice"].signing_cert
    assert cert.version == x509.Version.v3
    assert (party_id_of(cert), role_of(cert), phone_of(cert)) == ("alice", "customer", "+8613800138000")
    assert kid(cert) == hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    assert cert.issuer == rsa_world.authority.certificate.subject
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment
    assert phone_of(rsa_world["mpc"].signing_cert) is None
    assert role_of(rsa_world["mpc"].signing_cert) == "payment_center"


def test_parsed_certificates_carry_the_rsa_key_size(rsa_world: World, compact_world: World) -> None:
    assert pki.cert_info(rsa_world["alice"].signing_cert).rsa_bits == 2048
    assert pki.cert_info(compact_world["alice"].signing_cert).rsa_bits is None
    assert pki.cert_info(compact_world["alice"].agreement_cert).rsa_bits is None


def test_a_compact_party_has_a_signing_and_an_agreement_certificate(compact_world: World) -> None:
    alice = compact_world["alice"]
    assert isinstance(alice.signing_cert.public_key(), ed25519.Ed25519PublicKey)
    assert isinstance(alice.agreement_cert.public_key(), x25519.X25519PublicKey)
    assert alice.agreement_cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_agreement
    assert party_id_of(alice.agreement_cert) == "alice"
    assert compact_world.trust().encryption_cert("alice") == alice.agreement_cert


@pytest.mark.parametrize("suite", ["rsa2048", "compact"])
def test_openssl_accepts_every_certificate_of_the_authority(worlds, suite: str, tmp_path: Path) -> None:
    world = worlds[suite]
    for ident in world.parties.values():
        for cert in ident.certificates:
            result = _openssl_verify(tmp_path, world.authority.certificate, cert, T0 + 60)
            assert result.returncode == 0, result.stdout + result.stderr


def test_openssl_refuses_a_certificate_of_another_authority(rsa_world: World, compact_world: World, tmp_path: Path) -> None:
    result = _openssl_verify(tmp_path, rsa_world.authority.certificate, compact_world["alice"].signing_cert, T0 + 60)
    assert result.returncode != 0


def test_openssl_refuses_an_expired_certificate(rsa_world: World, tmp_path: Path) -> None:
    result = _openssl_verify(tmp_path, rsa_world.authority.certificate, rsa_world["alice"].signing_cert, CERT_NOT_AFTER + DAY_S)
    assert result.returncode != 0


def test_trust_store_checks_chain_validity_and_revocation(rsa_world: World) -> None:
    trust = rsa_world.trust()
    cert = rsa_world["alice"].signing_cert
    assert trust.verify(cert, T0).party_id == "alice"
    with pytest.raises(CertificateExpired):
        trust.verify(cert, CERT_NOT_BEFORE - 1)
    with pytest.raises(CertificateExpired):
        trust.verify(cert, CERT_NOT_AFTER + 1)
    trust.revoke(cert, T0 + 100)
    trust.verify(cert, T0 + 99)
    with pytest.raises(CertificateRevoked):
        trust.verify(cert, T0 + 100)


def test_nothing_is_valid_once_the_authority_itself_expired(key_cache) -> None:
    suite = get_suite("compact")
    authority = Authority.create(suite.generate_authority_key(), not_before_unix_s=T0, not_after_unix_s=T0 + DAY_S)
    alice = authority.issue_identity("alice", "customer", suite, suite.generate_keys(), T0, T0 + 30 * DAY_S)
    trust = TrustStore(authority.certificate)
    trust.verify(alice.signing_cert, T0 + 60)
    with pytest.raises(CertificateExpired, match="authority"):
        trust.verify(alice.signing_cert, T0 + 2 * DAY_S)


def test_trust_store_refuses_certificates_of_another_authority(rsa_world: World, compact_world: World) -> None:
    trust = rsa_world.trust()
    with pytest.raises(UnknownCertificate):
        trust.add(compact_world["alice"].signing_cert)
    with pytest.raises(UnknownCertificate):
        trust.verify(compact_world["alice"].signing_cert, T0)
    with pytest.raises(UnknownCertificate):
        trust.add(rsa_world.authority.certificate)  # the CA is an anchor, not a party
    assert trust.by_kid(compact_world["alice"].kid) is None
    # the same answers for the parsed certificate as for the certificate
    with pytest.raises(UnknownCertificate):
        trust.check_chain(pki.cert_info(compact_world["alice"].signing_cert))
    with pytest.raises(UnknownCertificate):
        trust.check_chain(pki.cert_info(rsa_world.authority.certificate))
    info = pki.cert_info(rsa_world["alice"].signing_cert)
    assert trust.check_chain(info) is info is trust.check_chain(rsa_world["alice"].signing_cert)


def test_the_authority_signature_is_checked_once_per_certificate(rsa_world: World, monkeypatch) -> None:
    calls = []
    real = pki._verify_issued_by
    monkeypatch.setattr(pki, "_verify_issued_by", lambda c, ca: calls.append(c) or real(c, ca))
    trust = TrustStore(rsa_world.authority.certificate)
    cert = rsa_world["bob"].signing_cert
    for _ in range(5):
        trust.verify(cert, T0)
    assert len(calls) == 1
    trust.revoke(cert, T0)  # but revocation is still checked every time
    with pytest.raises(CertificateRevoked):
        trust.verify(cert, T0)


def test_a_crl_from_the_authority_revokes_in_a_trust_store(key_cache, tmp_path: Path) -> None:
    suite = get_suite("rsa2048")
    authority = Authority.create(key_cache.authority_key(suite), not_before_unix_s=T0 - DAY_S, not_after_unix_s=T0 + 30 * DAY_S)
    bob = authority.issue_identity("bob", "customer", suite, key_cache.keys(suite, 4), T0 - 60, T0 + DAY_S, phone="+8613900139000")
    authority.revoke(bob.signing_cert, T0 + 10)
    crl = authority.crl(T0 + 20, T0 + DAY_S)
    assert [entry.serial_number for entry in crl] == [bob.signing_cert.serial_number]
    trust = TrustStore(authority.certificate)
    assert trust.apply_crl(crl) == 1
    trust.verify(bob.signing_cert, T0 + 9)
    with pytest.raises(CertificateRevoked):
        trust.verify(bob.signing_cert, T0 + 10)
    # openssl checks the CRL's signature independently
    (tmp_path / "ca.pem").write_bytes(authority.certificate.public_bytes(PEM))
    (tmp_path / "crl.pem").write_bytes(crl.public_bytes(PEM))
    result = subprocess.run(
        ["openssl", "crl", "-in", str(tmp_path / "crl.pem"), "-CAfile", str(tmp_path / "ca.pem"), "-noout"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and "verify OK" in result.stderr + result.stdout


def test_a_crl_signed_by_someone_else_is_refused(rsa_world: World) -> None:
    rogue = Authority.create(get_suite("compact").generate_authority_key(), not_before_unix_s=T0, not_after_unix_s=T0 + DAY_S)
    with pytest.raises(UnknownCertificate):
        rsa_world.trust().apply_crl(rogue.crl(T0, T0 + DAY_S))


def test_serial_numbers_count_up_and_the_issuer_checks_its_input(key_cache) -> None:
    suite = get_suite("compact")
    authority = Authority.create(suite.generate_authority_key(), not_before_unix_s=T0, not_after_unix_s=T0 + DAY_S)
    keys = suite.generate_keys()
    first = authority.issue("p1", "merchant", keys.signing.public_key(), T0, T0 + 60)
    second = authority.issue("p2", "bank", keys.signing.public_key(), T0, T0 + 60)
    assert (authority.certificate.serial_number, first.serial_number, second.serial_number) == (1, 2, 3)
    with pytest.raises(ValueError, match="role"):
        authority.issue("p3", "wizard", keys.signing.public_key(), T0, T0 + 60)
    with pytest.raises(ValueError, match="not_after"):
        authority.issue("p3", "bank", keys.signing.public_key(), T0, T0)
    with pytest.raises(ValueError, match="party id"):
        authority.issue("x" * 65, "bank", keys.signing.public_key(), T0, T0 + 60)


def test_suites_are_named_and_unknown_ones_refused() -> None:
    assert set(SUITES) == {"rsa2048", "rsa3072", "compact"}
    assert (get_suite("rsa2048").signature_alg, get_suite("rsa2048").key_distribution_alg) == (-37, -41)
    assert (get_suite("compact").signature_alg, get_suite("compact").key_distribution_alg) == (-8, -25)
    assert get_suite("rsa3072").rsa_bits == 3072
    with pytest.raises(UnsupportedAlgorithm):
        get_suite("des")


def test_the_key_cache_hands_out_keys_of_the_right_shape(key_cache) -> None:
    for name in SUITES:
        keys = key_cache.keys(name, 0)
        assert get_suite(name).keys_fit(keys)
    assert isinstance(key_cache.key("rsa3072", 0), rsa.RSAPrivateKey)
    assert key_cache.key("rsa3072", 0).key_size == 3072
