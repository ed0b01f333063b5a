"""DICOM TLS with DCMTK's echoscu/storescu (+tls): BCP 195 profile, optional mutual TLS."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.interop.conftest import PEER_ENV
from tests.services.helpers import make_ct

pytestmark = pytest.mark.interop


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _write(path: Path, key: rsa.RSAPrivateKey, cert: x509.Certificate) -> tuple[Path, Path]:
    key_path, cert_path = path.with_suffix(".key"), path.with_suffix(".crt")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _cert(subject: str, key, issuer_name, issuer_key, ca: bool) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca_cert = _cert("Test CA", ca_key, ca_name, ca_key, ca=True)
    _, ca_path = _write(folder / "ca", ca_key, ca_cert)
    server_key, client_key = _key(), _key()
    server = _write(
        folder / "server", server_key, _cert("localhost", server_key, ca_name, ca_key, ca=False)
    )
    client = _write(
        folder / "client", client_key, _cert("client", client_key, ca_name, ca_key, ca=False)
    )
    return {
        "ca": ca_path,
        "server_key": server[0],
        "server_crt": server[1],
        "client_key": client[0],
        "client_crt": client[1],
    }


def _echo(binary: str, port: int, *tls: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [binary, *tls, "-aec", "NODE", "127.0.0.1", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
        env=PEER_ENV,
    )


def test_tls_echo_and_store_with_dcmtk(
    start_node, pki, require_binary: Callable[[str], str], tmp_path: Path
) -> None:
    node = start_node(
        tls_certificate=pki["server_crt"],
        tls_private_key=pki["server_key"],
        tls_ca_certificate=pki["ca"],
    )
    echoscu = require_binary("echoscu")
    tls = ["+tls", str(pki["client_key"]), str(pki["client_crt"]), "+cf", str(pki["ca"])]
    ok = _echo(echoscu, node.port, *tls)
    assert ok.returncode == 0, ok.stderr
    plain = _echo(echoscu, node.port)
    assert plain.returncode != 0
    ds = make_ct()
    ds.save_as(tmp_path / "ct.dcm", enforce_file_format=True)
    stored = subprocess.run(
        [
            require_binary("storescu"),
            *tls,
            "-aec",
            "NODE",
            "127.0.0.1",
            str(node.port),
            str(tmp_path / "ct.dcm"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=PEER_ENV,
    )
    assert stored.returncode == 0, stored.stderr
    assert node.index.counts("NODE")["instances"] == 1


def test_mutual_tls_refuses_a_client_without_certificate(
    start_node, pki, require_binary: Callable[[str], str]
) -> None:
    node = start_node(
        tls_certificate=pki["server_crt"],
        tls_private_key=pki["server_key"],
        tls_ca_certificate=pki["ca"],
        tls_require_peer_certificate=True,
    )
    echoscu = require_binary("echoscu")
    anonymous = _echo(echoscu, node.port, "+tla", "+cf", str(pki["ca"]))
    assert anonymous.returncode != 0
    mutual = _echo(
        echoscu,
        node.port,
        "+tls",
        str(pki["client_key"]),
        str(pki["client_crt"]),
        "+cf",
        str(pki["ca"]),
    )
    assert mutual.returncode == 0, mutual.stderr
