"""``node.tools.info``: gdcminfo's facts, md5 of decoded pixels, codestream checks."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset

from node.tools.dump import read_dataset
from node.tools.info import (
    NoPixelData,
    check_compression,
    format_info,
    image_info,
    orientation_label,
    pixel_md5,
)

CT = "cornerstone-wado/testImages/CTImage.dcm"  # 16-bit signed CT, implicit VR
VARIANTS = "cornerstone-wado/testImages/CTImage.dcm_{}.dcm"


def _gdcmconv(gdcmconv: str, args: list[str], src: Path, dst: Path) -> None:
    result = subprocess.run([gdcmconv, *args, str(src), str(dst)], capture_output=True)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


@pytest.mark.interop
def test_md5sum_survives_lossless_jpegls_and_not_a_lossy_conversion(
    corpus_dir: Path, tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    gdcmconv = require_binary("gdcmconv")
    source = corpus_dir / CT
    lossless, lossy = tmp_path / "ls.dcm", tmp_path / "lossy.dcm"
    _gdcmconv(gdcmconv, ["--jpegls"], source, lossless)
    _gdcmconv(gdcmconv, ["--j2k", "--lossy", "-q", "30"], source, lossy)

    original = pixel_md5(read_dataset(source))
    assert pixel_md5(read_dataset(lossless)) == original
    assert pixel_md5(read_dataset(lossy)) != original
    assert check_compression(read_dataset(lossless)).lossless
    assert not check_compression(read_dataset(lossy)).lossless


@pytest.mark.interop
def test_md5sum_matches_gdcminfo(corpus_dir: Path, require_binary: Callable[[str], str]) -> None:
    gdcminfo = require_binary("gdcminfo")
    for name in (CT, VARIANTS.format("JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80")):
        out = subprocess.run(
            [gdcminfo, "--md5sum", str(corpus_dir / name)], capture_output=True, text=True
        ).stdout
        theirs = next(x.split()[-1] for x in out.splitlines() if x.startswith("md5sum:"))
        assert pixel_md5(read_dataset(corpus_dir / name)) == theirs


def test_md5sum_is_the_same_for_every_lossless_variant_of_one_image(corpus_dir: Path) -> None:
    names = [
        "LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1",
        "BigEndianExplicitTransferSyntax_1.2.840.10008.1.2.2",
        "DeflatedExplicitVRLittleEndianTransferSyntax_1.2.840.10008.1.2.1.99",
        "RLELosslessTransferSyntax_1.2.840.10008.1.2.5",
        "JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70",
    ]
    reference = pixel_md5(read_dataset(corpus_dir / CT))
    for name in names:
        assert pixel_md5(read_dataset(corpus_dir / VARIANTS.format(name))) == reference, name


@pytest.mark.parametrize(
    ("variant", "codec", "lossless"),
    [
        ("JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50", "JPEG", False),
        ("JPEGProcess14SV1TransferSyntax_1.2.840.10008.1.2.4.70", "JPEG", True),
        ("JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80", "JPEG-LS", True),
        ("JPEGLSLossyTransferSyntax_1.2.840.10008.1.2.4.81", "JPEG-LS", False),
        ("RLELosslessTransferSyntax_1.2.840.10008.1.2.5", "RLE", True),
        ("LittleEndianExplicitTransferSyntax_1.2.840.10008.1.2.1", "none", True),
    ],
)
def test_check_compression_reads_the_stream(
    corpus_dir: Path, variant: str, codec: str, lossless: bool
) -> None:
    result = check_compression(read_dataset(corpus_dir / VARIANTS.format(variant)))
    assert (result.codec, result.lossless) == (codec, lossless)


def test_check_compression_of_a_reversible_jpeg2000(corpus_dir: Path) -> None:
    result = check_compression(read_dataset(corpus_dir / "cornerstone-wado/testImages/CT1_J2KR"))
    assert result.codec == "JPEG 2000" and result.lossless
    assert "5/3" in result.detail


def test_image_info_matches_what_gdcminfo_prints_for_ct1(corpus_dir: Path) -> None:
    info = image_info(read_dataset(corpus_dir / "cornerstone-wado/testImages/CT1_J2KR"))
    assert (info.columns, info.rows, info.frames) == (512, 512, 1)
    assert info.scalar_type == "INT16"
    assert info.photometric_interpretation == "MONOCHROME2"
    assert info.direction_cosines == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    assert info.orientation == "AXIAL"
    assert info.origin is not None and round(info.origin[2], 1) == -75.7
    assert info.spacing is not None and round(info.spacing[0], 6) == 0.661468
    assert (info.rescale_intercept, info.rescale_slope) == (-1024.0, 1.0)
    text = format_info(info)
    assert text[0] == "MediaStorage is 1.2.840.10008.5.1.4.1.1.2 [CT Image Storage]"
    assert "Dimensions: (512,512,1)" in text
    assert "Orientation Label: AXIAL" in text


def test_enhanced_multiframe_geometry_comes_from_functional_groups(corpus_dir: Path) -> None:
    path = next((corpus_dir / "dcm_qa_enh/In/Siemens").rglob("*.dcm"))
    info = image_info(read_dataset(path))
    assert info.frames > 1
    assert info.spacing is not None and info.direction_cosines is not None
    assert info.orientation in ("AXIAL", "CORONAL", "SAGITTAL", "OBLIQUE")


@pytest.mark.parametrize(
    ("cosines", "label"),
    [
        ((1, 0, 0, 0, 1, 0), "AXIAL"),
        ((1, 0, 0, 0, 0, -1), "CORONAL"),
        ((0, 1, 0, 0, 0, -1), "SAGITTAL"),
        ((0.7071, 0.7071, 0, 0, 0, -1), "OBLIQUE"),
        (None, None),
    ],
)
def test_orientation_label(cosines: tuple[float, ...] | None, label: str | None) -> None:
    assert orientation_label(cosines) == label


def test_no_pixel_data_is_a_typed_error() -> None:
    ds = Dataset()
    ds.PatientName = "X"
    with pytest.raises(NoPixelData):
        pixel_md5(ds)
