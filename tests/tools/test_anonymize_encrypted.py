"""Reversible de-identification: the Encrypted Attributes Sequence and CMS EnvelopedData."""

from __future__ import annotations

import copy
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import pkcs7
from pydicom.dataset import Dataset

from node.tools.anonymize import Deidentifier, Options, ReidentifyError, reidentify
from node.tools.anonymize.encrypted import (
    decode_modified_attributes,
    encode_modified_attributes,
    open_envelope,
    seal_envelope,
)
from tests.tools.conftest import AnonKeys
from tests.tools.test_anonymize_actions import SECRET, make_ct, make_sr

AES128_CBC = bytes.fromhex("0609608648016503040102")  # DER of OID 2.16.840.1.101.3.4.1.2
AES256_CBC = bytes.fromhex("060960864801650304012a")


def same_elements(a: Dataset, b: Dataset) -> list[str]:
    """Keywords (or tags) whose values differ between ``a`` and ``b``."""
    out = []
    for tag in sorted(set(a.keys()) | set(b.keys())):
        if tag.element == 0:
            continue
        if tag not in a or tag not in b or a[tag].value != b[tag].value:
            out.append(a[tag].keyword if tag in a else str(tag))
    return out


def test_round_trip_is_exact(anon_keys: AnonKeys) -> None:
    original = make_ct(referenced="1.2.3.4.5")
    original.BurnedInAnnotation = "NO"
    engine = Deidentifier(Options(), secret=SECRET, recipients=[anon_keys.cert])
    result = engine.deidentify(original)
    out = result.dataset
    assert "PatientBirthDate" in result.modified and "OtherPatientIDsSequence" in result.modified
    item = out.EncryptedAttributesSequence[0]
    assert item.EncryptedContentTransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert AES128_CBC in item.EncryptedContent  # AES-128 by default
    back = reidentify(out, anon_keys.key)
    assert same_elements(original, back) == []
    assert back.file_meta.MediaStorageSOPInstanceUID == original.SOPInstanceUID
    assert "EncryptedAttributesSequence" in out  # not in place: input untouched


def test_aes256_and_sr(anon_keys: AnonKeys) -> None:
    original = make_sr()
    engine = Deidentifier(Options(), secret=SECRET, recipients=[anon_keys.cert], cipher="aes256")
    out = engine.deidentify(original).dataset
    assert AES256_CBC in out.EncryptedAttributesSequence[0].EncryptedContent
    assert same_elements(original, reidentify(out, anon_keys.key)) == []


def test_non_latin_character_set(anon_keys: AnonKeys) -> None:
    original = make_ct()
    original.SpecificCharacterSet = "ISO_IR 192"
    original.PatientName = "山田^太郎=やまだ^たろう"
    original.StudyDescription = "Ωμέγα – CT"
    engine = Deidentifier(Options(), secret=SECRET, recipients=[anon_keys.cert])
    back = reidentify(engine.deidentify(original).dataset, anon_keys.key)
    assert same_elements(original, back) == []
    assert str(back.PatientName) == "山田^太郎=やまだ^たろう"


def test_nested_de_identification(anon_keys: AnonKeys, anon_other_keys: AnonKeys) -> None:
    original = make_ct()
    first = Deidentifier(Options(), secret=SECRET, recipients=[anon_keys.cert])
    second = Deidentifier(Options(), secret=b"second", recipients=[anon_other_keys.cert])
    twice = second.deidentify(first.deidentify(original).dataset).dataset
    once = reidentify(twice, anon_other_keys.key)
    assert once.PatientIdentityRemoved == "YES" and "EncryptedAttributesSequence" in once
    assert same_elements(original, reidentify(once, anon_keys.key)) == []


def test_errors(anon_keys: AnonKeys, anon_other_keys: AnonKeys) -> None:
    with pytest.raises(ReidentifyError, match="no Encrypted Attributes Sequence"):
        reidentify(make_ct(), anon_keys.key)
    engine = Deidentifier(Options(), secret=SECRET, recipients=[anon_keys.cert])
    out = engine.deidentify(make_ct()).dataset
    with pytest.raises(ReidentifyError, match="matches this private key"):
        reidentify(out, anon_other_keys.key)
    broken = copy.deepcopy(out)
    broken.EncryptedAttributesSequence[0].EncryptedContent = b"\x30\x03\x02\x01"
    with pytest.raises(ReidentifyError, match="not readable CMS"):
        reidentify(broken, anon_keys.key)


def test_envelope_matches_cryptography(anon_keys: AnonKeys) -> None:
    """Our CMS is the library's; our decryption agrees with the library's own."""
    item = Dataset()
    item.PatientName = "Doe^John"
    plain = encode_modified_attributes(item)
    der = seal_envelope(plain, [anon_keys.cert])
    assert open_envelope(der + b"\0", anon_keys.key) == plain  # DICOM's even padding byte
    library = pkcs7.pkcs7_decrypt_der(der, anon_keys.cert, anon_keys.key, [])
    assert library == plain
    decoded = decode_modified_attributes(plain, "1.2.840.10008.1.2.1")
    assert decoded.PatientName == "Doe^John"


@pytest.mark.parametrize("cipher", ["-des3", "-aes192", "-aes256"])
def test_openssl_envelopes_with_every_cipher(
    anon_keys: AnonKeys,
    tmp_path: Path,
    require_binary: Callable[[str], str],
    cipher: str,
) -> None:
    """3DES and AES-192 are read (PS3.15 requires it of re-identifiers), and BER
    indefinite lengths (openssl -stream) too."""
    openssl = require_binary("openssl")
    item = Dataset()
    item.PatientID = "PID-12345"
    plain = encode_modified_attributes(item)
    (tmp_path / "plain").write_bytes(plain)
    subprocess.run(
        [
            openssl,
            "cms",
            "-encrypt",
            "-binary",
            "-stream",
            cipher,
            "-outform",
            "DER",
            "-in",
            str(tmp_path / "plain"),
            "-out",
            str(tmp_path / "env"),
            str(anon_keys.cert_path),
        ],
        check=True,
        capture_output=True,
    )
    assert open_envelope((tmp_path / "env").read_bytes(), anon_keys.key) == plain
