"""Interoperability with gdcmanon, both ways, on a sample of the corpus.

The sample covers every transfer syntax family gdcmanon reads (implicit, explicit, big
endian, deflated, JPEG baseline/lossless, JPEG-LS, JPEG 2000, RLE), four character sets
(Latin-1, UTF-8, ISO 2022 Japanese, Cyrillic) and structured objects (enhanced MR, RT
structure set, segmentation).  Files that already carry Patient Identity Removed are left
out: gdcmanon -e refuses them and gdcmanon -d removes that attribute unconditionally.
"""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from node.tools.anonymize import Deidentifier, Options, process_tree, reidentify
from tests.tools.conftest import AnonKeys

pytestmark = pytest.mark.interop

SAMPLE = [
    "cornerstone-wado/testImages/CT0012.fragmented_no_bot_jpeg_baseline.51.dcm",
    "cornerstone-wado/testImages/CT1_J2KR",
    "cornerstone-wado/testImages/CTImage.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm",
    "cornerstone-wado/testImages/CTImage.dcm_RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm",
    "dcm_qa_enh/In/Philips/IM_0027_fMAP.dcm",
    "dicompyler-core/tests/testdata/example_data/rtss.dcm",
    "highdicom/data/test_files/seg_image_ct_binary_single_frame.dcm",
    "pydicom-data/data_store/data/SC_rgb.dcm",
    "pydicom-wheel/pydicom/data/charset_files/chrH32.dcm",
    "pydicom-wheel/pydicom/data/charset_files/chrRuss.dcm",
]

#: What our de-identifier adds that gdcmanon -d does not know to remove: De-identification
#: Method Code Sequence and Longitudinal Temporal Information Modified.
GDCMANON_LEAVES = {"extra (0012,0064)", "extra (0028,0303)"}


def differences(original: Dataset, restored: Dataset) -> list[str]:
    """Attributes whose value is not restored (group lengths aside)."""
    out = []
    for tag in sorted(set(original.keys()) | set(restored.keys())):
        if tag.element == 0:
            continue
        if tag not in restored:
            out.append(f"missing {tag}")
        elif tag not in original:
            out.append(f"extra {tag}")
        elif original[tag].value != restored[tag].value:
            out.append(f"differs {tag} {original[tag].keyword}")
    return out


@pytest.fixture(scope="module")
def sample_dir(corpus_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample, copied flat (f00.dcm...) so gdcmanon can take the directory."""
    directory = tmp_path_factory.mktemp("gdcmanon-sample")
    for index, name in enumerate(SAMPLE):
        shutil.copyfile(corpus_dir / name, directory / f"f{index:02d}.dcm")
    return directory


def _read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def test_ours_re_identified_by_gdcmanon(
    sample_dir: Path,
    tmp_path: Path,
    anon_keys: AnonKeys,
    require_binary: Callable[[str], str],
) -> None:
    gdcmanon = require_binary("gdcmanon")
    engine = Deidentifier(Options(), secret=b"interop", recipients=[anon_keys.cert])
    ours = tmp_path / "ours"
    summary = process_tree(sample_dir, ours, lambda ds: engine.deidentify(ds, in_place=True).notes)
    assert summary.done == len(SAMPLE)
    restored = tmp_path / "restored"
    subprocess.run(
        [gdcmanon, "-d", "-k", str(anon_keys.key_path), "-i", str(ours), "-o", str(restored)],
        check=True,
        capture_output=True,
    )
    for source in sorted(sample_dir.iterdir()):
        original, back = _read(source), _read(restored / source.name)
        left = set(differences(original, back))
        assert left == GDCMANON_LEAVES, source.name
        assert back.SOPInstanceUID == original.SOPInstanceUID


def test_gdcmanon_re_identified_by_ours(
    sample_dir: Path,
    tmp_path: Path,
    anon_keys: AnonKeys,
    require_binary: Callable[[str], str],
) -> None:
    gdcmanon = require_binary("gdcmanon")
    theirs = tmp_path / "theirs"
    subprocess.run(  # gdcmanon's default cipher: AES-256
        [gdcmanon, "-e", "-c", str(anon_keys.cert_path), "-i", str(sample_dir), "-o", str(theirs)],
        check=True,
        capture_output=True,
    )
    for source in sorted(sample_dir.iterdir()):
        original = _read(source)
        protected = _read(theirs / source.name)
        assert protected.PatientIdentityRemoved == "YES"
        assert protected.SOPInstanceUID != original.SOPInstanceUID
        assert differences(original, reidentify(protected, anon_keys.key)) == [], source.name


@pytest.mark.parametrize("cipher", ["--des3", "--aes192", "--aes128"])
def test_gdcmanon_other_ciphers(
    sample_dir: Path,
    tmp_path: Path,
    anon_keys: AnonKeys,
    require_binary: Callable[[str], str],
    cipher: str,
) -> None:
    gdcmanon = require_binary("gdcmanon")
    source = sample_dir / "f02.dcm"
    protected = tmp_path / "protected.dcm"
    subprocess.run(
        [
            gdcmanon,
            "-e",
            cipher,
            "-c",
            str(anon_keys.cert_path),
            "-i",
            str(source),
            "-o",
            str(protected),
        ],
        check=True,
        capture_output=True,
    )
    assert differences(_read(source), reidentify(_read(protected), anon_keys.key)) == []
