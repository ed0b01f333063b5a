"""Blanking burned-in text (--fill-region) on native and compressed pixel data."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from pydicom import dcmread

from node.tools.anonymize import OptionError, PixelDataError, Region, fill_regions
from node.tools.anonymize.files import write_dicom

CT_NATIVE = "cornerstone-wado/testImages/CTImage.dcm"
_CT = "cornerstone-wado/testImages/CTImage.dcm_"
CT_RLE = _CT + "RLELosslessTransferSyntax_1.2.840.10008.1.2.5.dcm"
CT_JLS = _CT + "JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm"
CT_J2K = _CT + "JPEG2000LosslessOnlyTransferSyntax_1.2.840.10008.1.2.4.90.dcm"
CT_JPEG = _CT + "JPEGProcess1TransferSyntax_1.2.840.10008.1.2.4.50.dcm"
RGB_2FRAME = "pydicom-data/data_store/data/SC_rgb_2frame.dcm"


def test_region_parsing() -> None:
    assert Region.parse("10,20,30,40") == Region(10, 20, 30, 40)
    assert Region.parse("0,9,0,9:2") == Region(0, 9, 0, 9, 2, 2)
    assert Region.parse("0,9,0,9:2-5") == Region(0, 9, 0, 9, 2, 5)
    for bad in ("1,2,3", "5,1,0,1", "0,1,0,1:0", "0,1,0,1:3-2", "a,b,c,d"):
        with pytest.raises(OptionError):
            Region.parse(bad)


def test_native_matches_gdcmimg(
    corpus_dir: Path, tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    gdcmimg = require_binary("gdcmimg")
    source = corpus_dir / CT_NATIVE
    theirs = tmp_path / "gdcmimg.dcm"
    subprocess.run(
        [gdcmimg, "--fill", "7", "--region", "10,20,30,40", str(source), str(theirs)],
        check=True,
        capture_output=True,
    )
    ds = dcmread(source)
    report = fill_regions(ds, [Region.parse("10,20,30,40")], 7)
    assert report.notes == [] and report.frames_touched == 1
    write_dicom(ds, tmp_path / "ours.dcm")
    ours = dcmread(tmp_path / "ours.dcm")
    assert ours.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    np.testing.assert_array_equal(ours.pixel_array, dcmread(theirs).pixel_array)


@pytest.mark.parametrize("name", [CT_RLE, CT_JLS, CT_J2K])
def test_lossless_syntaxes_are_re_encoded(corpus_dir: Path, tmp_path: Path, name: str) -> None:
    original = dcmread(corpus_dir / name)
    before = original.pixel_array.copy()
    syntax = original.file_meta.TransferSyntaxUID
    report = fill_regions(original, [Region.parse("0,99,0,49")], 0)
    assert report.notes == [] and report.transfer_syntax == syntax
    write_dicom(original, tmp_path / "out.dcm")
    out = dcmread(tmp_path / "out.dcm")
    assert out.file_meta.TransferSyntaxUID == syntax
    after = out.pixel_array
    assert (after[0:50, 0:100] == 0).all()
    np.testing.assert_array_equal(after[50:, :], before[50:, :])  # nothing else changed
    np.testing.assert_array_equal(after[:50, 100:], before[:50, 100:])


def test_lossy_syntax_is_written_uncompressed(corpus_dir: Path, tmp_path: Path) -> None:
    ds = dcmread(corpus_dir / CT_JPEG)
    report = fill_regions(ds, [Region.parse("0,9,0,9")], 0)
    assert report.transfer_syntax == "1.2.840.10008.1.2.1"
    assert report.notes == [
        "pixel data written uncompressed: no lossless encoder for JPEG Baseline (Process 1)"
    ]
    write_dicom(ds, tmp_path / "out.dcm")
    assert (dcmread(tmp_path / "out.dcm").pixel_array[:10, :10] == 0).all()


def test_frames_and_colour(corpus_dir: Path) -> None:
    ds = dcmread(corpus_dir / RGB_2FRAME)
    before = ds.pixel_array.copy()
    fill_regions(ds, [Region.parse("0,9,0,4:2")], 255)
    after = ds.pixel_array
    np.testing.assert_array_equal(after[0], before[0])  # frame 1 untouched
    assert (after[1, 0:5, 0:10, :] == 255).all()
    np.testing.assert_array_equal(after[1, 5:], before[1, 5:])


def test_refusals(corpus_dir: Path) -> None:
    ds = dcmread(corpus_dir / CT_NATIVE)
    with pytest.raises(PixelDataError, match="outside"):
        fill_regions(ds, [Region.parse("600,700,0,1")])
    with pytest.raises(PixelDataError, match="frame 3"):
        fill_regions(ds, [Region.parse("0,1,0,1:3")])
    with pytest.raises(PixelDataError, match="does not fit"):
        fill_regions(ds, [Region.parse("0,1,0,1")], 1 << 20)
    del ds.PixelData
    with pytest.raises(PixelDataError, match="no Pixel Data"):
        fill_regions(ds, [Region.parse("0,1,0,1")])
