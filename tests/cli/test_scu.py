"""``node-ctl echo|store|find|move|get`` against DCMTK ``dcmqrscp`` and ``storescp``.

Commands run in-process through ``node.cli.main.main`` (the real parser, real sockets);
the peers are real DCMTK processes from ``tests/cli/conftest.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pydicom
import pytest

from node.cli.main import main
from node.tools.info import pixel_md5
from tests.cli.conftest import QR_AET, DcmQrScp, StoreScp

pytestmark = pytest.mark.interop

GE_SERIES = "dcm_qa_ge/In/01_Ax_DWI_TENSOR_R2"  # patient "dicom": 14 images, one series
DEV_STUDY = "1.3.12.2.1107.5.2.19.45160.30000018091720502193200000007"  # 4 series, 8 images
GE_STUDY = "1.2.840.113619.6.44.278690555559257603308263179064563144783"
J2K = "cornerstone-wado/testImages/CT1_J2KR"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def qr_args(qr: DcmQrScp) -> list[str]:
    return [qr.host, str(qr.port), "-aec", qr.aet]


def _dead_port() -> int:
    from tests.cli.conftest import _port

    return _port()


# --------------------------------------------------------------------------- echo


def test_echo_text_and_json(qrscp: DcmQrScp, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "echo", *qr_args(qrscp))
    assert code == 0, err
    assert out.strip() == f"C-ECHO {QR_AET}@127.0.0.1:{qrscp.port}: Success (0x0000)"
    code, out, _ = run(capsys, "echo", *qr_args(qrscp), "--json")
    assert code == 0
    assert json.loads(out) == {
        "peer": f"{QR_AET}@127.0.0.1:{qrscp.port}",
        "status": 0,
        "category": "Success",
    }


def test_echo_failures_are_one_clear_line(
    qrscp: DcmQrScp, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _dead_port()
    code, out, err = run(capsys, "echo", "127.0.0.1", str(port))
    assert code == 1 and out == ""
    assert err.strip().splitlines() == [
        f"node-ctl echo: error: cannot connect to 127.0.0.1:{port}: [Errno 111] Connection refused"
    ]
    code, _, err = run(capsys, "echo", qrscp.host, str(qrscp.port), "-aec", "NOSUCHAE")
    assert code == 1
    assert len(err.strip().splitlines()) == 1
    assert "association rejected" in err and "Called AE title not recognised" in err
    assert "check the called AE title, now 'NOSUCHAE'" in err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "move", "127.0.0.1", "104", "-k", "PatientID=X")
    assert code == 2
    assert "--port-scp N -o DIR" in err and "-aem AE" in err
    code, _, err = run(capsys, "find", "127.0.0.1", "-k", "NoSuchKeyword=1")
    assert code == 2 and "unknown attribute keyword" in err
    code, _, err = run(capsys, "find", "127.0.0.1", "--patient", "-S")
    assert code == 2 and "--patient cannot be used with --studyroot" in err


# --------------------------------------------------------------------------- store


def test_store_a_series_over_one_association(
    storescp_factory: Callable[..., StoreScp],
    corpus_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = storescp_factory()
    code, out, err = run(
        capsys, "store", scp.host, str(scp.port), "-aec", scp.aet,
        str(corpus_dir / GE_SERIES), "--json",
    )  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert (report["sent"], report["failed"], report["associations"]) == (14, 0, 1)
    received = scp.files()
    assert len(received) == 14
    sent_uids = {o["sop_instance_uid"] for o in report["outcomes"]}
    assert {pydicom.dcmread(p).SOPInstanceUID for p in received} == sent_uids


def test_store_private_sop_class_and_progress(
    storescp_factory: Callable[..., StoreScp],
    corpus_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    ds = pydicom.dcmread(corpus_dir / "cornerstone-wado/testImages/CTImage.dcm")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.9.7777.1"
    ds.save_as(folder / "sub" / "private.dcm")
    shutil.copy(corpus_dir / J2K, folder / "ct1.dcm")
    (folder / "README.txt").write_text("not DICOM")
    scp = storescp_factory()
    code, out, err = run(
        capsys, "store", scp.host, str(scp.port), "-aec", scp.aet, "-r", str(folder),
        "--progress",
    )  # fmt: skip
    assert code == 0, err
    assert "2 sent, 0 failed, 1 skipped" in out
    assert f"skipped: {folder / 'README.txt'}" in err
    assert "[##############################] 3/3 instances" in err
    classes = {str(pydicom.dcmread(p).SOPClassUID) for p in scp.files()}
    assert classes == {"1.2.826.0.1.3680043.9.7777.1", "1.2.840.10008.5.1.4.1.1.2"}


def test_store_decompresses_with_a_warning_when_only_uncompressed_is_accepted(
    storescp_factory: Callable[..., StoreScp],
    corpus_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = storescp_factory(extra_args=[])  # storescp's default: uncompressed only
    source = corpus_dir / J2K
    code, out, err = run(capsys, "store", scp.host, str(scp.port), str(source))
    assert code == 0, err
    assert "1 sent" in out
    assert "decompressed from JPEG 2000 Image Compression (Lossless Only)" in err
    (received,) = scp.files()
    ds = pydicom.dcmread(received)
    assert not ds.file_meta.TransferSyntaxUID.is_compressed
    assert ds.SOPInstanceUID == pydicom.dcmread(source).SOPInstanceUID
    assert pixel_md5(ds) == pixel_md5(pydicom.dcmread(source))  # lossless: same pixels


def test_store_reports_refused_files_and_exits_1(
    dcmqrscp_factory: Callable[..., DcmQrScp],
    corpus_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    qr = dcmqrscp_factory(aet="SMALLQR")
    ds = pydicom.dcmread(corpus_dir / "cornerstone-wado/testImages/CTImage.dcm")
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.826.0.1.3680043.9.7777.2"
    ds.save_as(tmp_path / "private.dcm")
    code, out, _ = run(
        capsys, "store", *qr_args(qr), str(tmp_path / "private.dcm"),
        str(corpus_dir / "cornerstone-wado/testImages/CTImage.dcm"),
    )  # fmt: skip
    assert code == 1
    assert "1 sent, 1 failed" in out
    assert f"FAILED: {tmp_path / 'private.dcm'}: SOP class" in out


# --------------------------------------------------------------------------- find


def _rows(out: str) -> list[str]:
    return out.strip().splitlines()[1:]


def test_find_key_forms_and_levels(qrscp: DcmQrScp, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "find", *qr_args(qrscp), "-k", "0010,0020=DEV", "-k", "10,10")
    assert code == 0, err
    header, *rows = out.strip().splitlines()
    assert header.split() == ["PatientName", "PatientID", "StudyInstanceUID"]
    assert len(rows) == 1 and " DEV " in rows[0]
    assert "1 match(es)" in err

    code, out, _ = run(capsys, "find", *qr_args(qrscp), "-k", "PatientName", "-k", "PatientID=d*")
    assert code == 0 and len(_rows(out)) == 1 and "dicom" in out

    # Below the study level a hierarchical query names the study (dcmqrscp ignores the
    # other keys of the levels above).
    study = f"StudyInstanceUID={DEV_STUDY}"
    code, out, _ = run(capsys, "find", *qr_args(qrscp), "--series", "-k", study)
    assert code == 0 and len(_rows(out)) == 4
    code, out, _ = run(capsys, "find", *qr_args(qrscp), "--image", "-k", study)
    assert code == 0 and len(_rows(out)) == 8
    code, out, _ = run(
        capsys, "find", *qr_args(qrscp), "-P", "--series", "-k", "PatientID=DEV", "-k", study
    )
    assert code == 0 and len(_rows(out)) == 4
    code, out, _ = run(capsys, "find", *qr_args(qrscp), "-P", "--patient", "-k", 'PatientName="*"')
    assert code == 0 and len(_rows(out)) == 2
    code, out, err = run(capsys, "find", *qr_args(qrscp), "-k", "PatientID=NOBODY")
    assert code == 0 and _rows(out) == [] and "0 match(es)" in err


def test_find_json_and_query_files(
    qrscp: DcmQrScp,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    require_binary: Callable[[str], str],
) -> None:
    query = tmp_path / "q.dcm"
    code, out, _ = run(
        capsys, "find", *qr_args(qrscp), "--series", "-k", f"StudyInstanceUID={DEV_STUDY}",
        "-k", "SeriesDescription", "--store-query", str(query), "--json",
    )  # fmt: skip
    assert code == 0
    matches = json.loads(out)
    assert len(matches) == 4
    assert all(m["0020000D"]["Value"] == [DEV_STUDY] for m in matches)
    # The stored query is a findscu query file: ours and DCMTK's findscu both use it.
    code, out, _ = run(capsys, "find", *qr_args(qrscp), str(query), "--json")
    assert code == 0 and len(json.loads(out)) == 4
    findscu = subprocess.run(
        [require_binary("findscu"), "-S", "-aec", qrscp.aet, qrscp.host, str(qrscp.port),
         str(query)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert findscu.returncode == 0
    assert findscu.stderr.count("Find Response:") == 4 or findscu.stdout.count("DEV") == 4
    # -k overrides a key of the query file, as findscu does
    code, out, _ = run(
        capsys, "find", *qr_args(qrscp), str(query), "-k", f"StudyInstanceUID={GE_STUDY}"
    )
    assert code == 0 and len(_rows(out)) == 1


def test_find_with_a_query_made_by_undump(
    qrscp: DcmQrScp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "q.txt"
    text.write_text(f"(0008,0052) CS [IMAGE]\n(0020,000d) UI [{GE_STUDY}]\n(0008,0018) UI\n")
    assert main(["undump", str(text), str(tmp_path / "q.dcm")]) == 0
    code, out, _ = run(capsys, "find", *qr_args(qrscp), str(tmp_path / "q.dcm"))
    assert code == 0 and len(_rows(out)) == 14


# --------------------------------------------------------------------------- move / get


def test_move_into_the_built_in_scp(
    qrscp: DcmQrScp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = qrscp.destinations["NODECTL"]
    code, out, err = run(
        capsys, "move", *qr_args(qrscp), "-k", "PatientID=dicom", "--port-scp", str(port),
        "--bind-scp", "127.0.0.1", "-o", str(tmp_path / "in"), "--progress",
    )  # fmt: skip
    assert code == 0, err
    assert "14 completed, 0 failed" in out and "14 file(s) written" in out
    assert "14/14 instances" in err
    files = sorted((tmp_path / "in").iterdir())
    assert len(files) == 14
    assert all(p.name == f"{pydicom.dcmread(p).SOPInstanceUID}.dcm" for p in files)


def test_move_to_a_third_node(
    qrscp: DcmQrScp,
    storescp_factory: Callable[..., StoreScp],
    capsys: pytest.CaptureFixture[str],
) -> None:
    scp = storescp_factory(port=qrscp.destinations["STORESCP"], aet="STORESCP")
    code, out, err = run(
        capsys, "move", *qr_args(qrscp), "-k", f"StudyInstanceUID={DEV_STUDY}", "-aem", "STORESCP",
        "--json",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert (result["completed"], result["failed"], result["received"]) == (8, 0, [])
    assert len(scp.files()) == 8


def test_move_refused_with_a801_explains_what_the_remote_needs(
    qrscp: DcmQrScp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _dead_port()
    code, out, err = run(
        capsys, "move", *qr_args(qrscp), "-aet", "UNKNOWNAE", "-k", "PatientID=DEV",
        "--port-scp", str(port), "--bind-scp", "127.0.0.1", "-o", str(tmp_path),
    )  # fmt: skip
    assert code == 1 and out == ""
    (line,) = err.strip().splitlines()
    assert "0xA801" in line
    assert f"must know the AE title 'UNKNOWNAE' with its host and port {port}" in line


def test_get_into_a_directory(
    qrscp: DcmQrScp, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "get", *qr_args(qrscp), "-k", "PatientID=DEV", "-o", str(tmp_path / "got")
    )
    assert code == 0, err
    assert "8 completed, 0 failed" in out
    files = list((tmp_path / "got").iterdir())
    assert len(files) == 8
    assert {pydicom.dcmread(p).PatientID for p in files} == {"DEV"}


# --------------------------------------------------------------------------- TLS


@pytest.fixture
def tls_files(tmp_path: Path) -> tuple[Path, Path]:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = tmp_path / "key.pem", tmp_path / "cert.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def test_tls_echo_and_store(
    storescp_factory: Callable[..., StoreScp],
    tls_files: tuple[Path, Path],
    corpus_dir: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key, cert = tls_files
    scp = storescp_factory(extra_args=["+xa", "+tls", str(key), str(cert), "-ic"])
    tls = ["--tls", "--tls-ca", str(cert)]
    code, out, err = run(capsys, "echo", scp.host, str(scp.port), *tls)
    assert code == 0, err
    assert "Success" in out
    code, out, err = run(capsys, "store", scp.host, str(scp.port), *tls, str(corpus_dir / J2K))
    assert code == 0, err
    assert len(scp.files()) == 1
    # Without trusting the certificate the handshake fails, and says so in one line.
    code, _, err = run(capsys, "echo", scp.host, str(scp.port), "--tls")
    assert code == 1
    (line,) = err.strip().splitlines()
    assert "cannot connect" in line and "(TLS)" in line and "CERTIFICATE_VERIFY_FAILED" in line
