"""Fixtures of the tools tests.

Anonymizer (``anon_`` prefix): ``anon_keys`` is an RSA key and its self-signed certificate,
made with ``cryptography`` once per session and written as PEM for the CLI and gdcmanon.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class AnonKeys:
    """A recipient for reversible de-identification: certificate and private key."""

    cert: x509.Certificate
    key: rsa.RSAPrivateKey
    cert_path: Path
    key_path: Path


def make_anon_keys(directory: Path, name: str = "Recipient 1") -> AnonKeys:
    """A fresh RSA-2048 key with a self-signed certificate, written as PEM in ``directory``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return AnonKeys(cert, key, cert_path, key_path)


@pytest.fixture(scope="session")
def anon_keys(tmp_path_factory: pytest.TempPathFactory) -> AnonKeys:
    return make_anon_keys(tmp_path_factory.mktemp("anon-keys"))


@pytest.fixture(scope="session")
def anon_other_keys(tmp_path_factory: pytest.TempPathFactory) -> AnonKeys:
    """A second recipient, for "wrong key" tests."""
    return make_anon_keys(tmp_path_factory.mktemp("anon-other-keys"), "someone else")
