"""``node-ctl convert``, ``img2dcm``, ``pdf2dcm`` and ``dcm2pdf`` from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from node.cli.main import main

_Y, _X = np.mgrid[0:32, 0:48]


def _image(path: Path, bits: int = 12, *, with_pixels: bool = True) -> Path:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7" if with_pixels else "1.2.840.10008.5.1.4.1.1.88.11"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "CLI^Test"
    if with_pixels:
        ds.Rows, ds.Columns = _Y.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16 if bits > 8 else 8
        ds.BitsStored = bits
        ds.HighBit = bits - 1
        ds.PixelRepresentation = 0
        values = (_X * 37 + _Y * 11) % (2**bits)
        ds.PixelData = values.astype("<u2" if bits > 8 else "u1").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_convert_one_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _image(tmp_path / "in.dcm")
    dst = tmp_path / "out.dcm"
    assert main(["convert", "--jpegls", "--verify", str(src), str(dst)]) == 0
    line = capsys.readouterr().out
    assert "JPEG-LS Lossless" in line and "re-encoded" in line
    out = pydicom.dcmread(dst)
    assert out.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.80"
    assert np.array_equal(pixel_array(out), pixel_array(pydicom.dcmread(src)))
    assert out.SOPInstanceUID == pydicom.dcmread(src).SOPInstanceUID

    assert main(["convert", "-J", "-Y", "-q", "80", str(src), str(tmp_path / "l.dcm")]) == 0
    assert "lossy" in capsys.readouterr().out
    lossy = pydicom.dcmread(tmp_path / "l.dcm")
    assert lossy.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.51"  # 12 bits: Extended
    assert lossy.LossyImageCompression == "01"

    assert main(["convert", "--raw", str(tmp_path / "l.dcm"), str(tmp_path / "r.dcm")]) == 0
    capsys.readouterr()
    assert pydicom.dcmread(tmp_path / "r.dcm").file_meta.TransferSyntaxUID == (
        ExplicitVRLittleEndian
    )


def test_refusal_is_one_line_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _image(tmp_path / "in16.dcm", bits=16)
    assert main(["convert", "--jpeg", "--lossy", str(src), str(tmp_path / "x.dcm")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "16-bit" in err and "Traceback" not in err
    assert not (tmp_path / "x.dcm").exists()
    assert main(["convert", "--rle", "--lossy", str(src), str(tmp_path / "x.dcm")]) == 2
    assert main(["convert", "-R", str(tmp_path / "missing.dcm"), str(tmp_path / "x.dcm")]) == 2
    assert (
        main(
            ["convert", "-R", str(tmp_path / "in16.dcm"), str(tmp_path / "x.dcm"), "--split", "64"]
        )
        == 1
    )
    assert "RLE" in capsys.readouterr().err


def test_convert_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "in"
    _image(source / "a.dcm")
    _image(source / "sub" / "b.dcm", bits=8)
    _image(source / "sub" / "sr.dcm", with_pixels=False)
    (source / "README.txt").write_text("not DICOM")
    out = tmp_path / "out"
    assert main(["convert", "-r", "--rle", "--remove-private-tags", str(source), str(out)]) == 0
    captured = capsys.readouterr()
    assert "3 converted, 0 failed" in captured.out
    assert "README.txt: skipped" in captured.err
    assert pydicom.dcmread(out / "sub" / "b.dcm").file_meta.TransferSyntaxUID == (
        "1.2.840.10008.1.2.5"
    )
    assert pydicom.dcmread(out / "sub" / "sr.dcm").file_meta.TransferSyntaxUID == (
        ExplicitVRLittleEndian
    )
    assert "no pixel data" in captured.out
    assert main(["convert", "--rle", str(source), str(tmp_path / "flat")]) == 0
    assert not (tmp_path / "flat" / "sub").exists()


def test_convert_options_from_the_command_line(tmp_path: Path) -> None:
    src = _image(tmp_path / "in.dcm")
    dst = tmp_path / "icon.dcm"
    assert (
        main(
            [
                "convert",
                "-K",
                "--generate-icon",
                "--icon-auto-minmax",
                "-S",
                "100",
                "-P",
                "MONOCHROME1",
                "--check-meta",
                "--quiet",
                str(src),
                str(dst),
            ]
        )
        == 0
    )
    out = pydicom.dcmread(dst)
    assert out.PhotometricInterpretation == "MONOCHROME1"
    assert out.IconImageSequence[0].Rows == 32
    assert all(len(f) <= 100 for f in pydicom.encaps.generate_fragments(out.PixelData))
    assert (
        main(
            ["convert", "-K", "-Y", "--rate", "20,5", "--quiet", str(src), str(tmp_path / "j.dcm")]
        )
        == 0
    )
    assert pydicom.dcmread(tmp_path / "j.dcm").LossyImageCompressionMethod == "ISO_15444_1"


def test_img2dcm_and_pdf_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    jpeg = tmp_path / "photo.jpg"
    Image.fromarray(((_X * 5 + _Y) % 256).astype(np.uint8)).save(jpeg, quality=90)
    out = tmp_path / "photo.dcm"
    assert (
        main(["img2dcm", "-vlp", "-k", "PatientName=Photo^Patient", "+i2", str(jpeg), str(out)])
        == 0
    )
    assert "VL Photographic" in capsys.readouterr().out
    ds = pydicom.dcmread(out)
    assert ds.PatientName == "Photo^Patient" and ds.Modality == "XC"
    raw = tmp_path / "frames.raw"
    raw.write_bytes((np.arange(2 * 32 * 48, dtype="<u2") * 2).tobytes())
    assert (
        main(
            [
                "img2dcm",
                "--size",
                "48,32,2",
                "--depth",
                "12",
                "-nsc",
                str(raw),
                str(tmp_path / "raw.dcm"),
            ]
        )
        == 1
    )
    assert "do not fit 12 bits" in capsys.readouterr().err
    raw.write_bytes(np.arange(2 * 32 * 48, dtype="<u2").tobytes())
    assert (
        main(
            [
                "img2dcm",
                "--size",
                "48,32,2",
                "--depth",
                "12",
                "-nsc",
                str(raw),
                str(tmp_path / "raw.dcm"),
            ]
        )
        == 0
    )
    frames = pydicom.dcmread(tmp_path / "raw.dcm")
    assert frames.NumberOfFrames == 2 and frames.BitsStored == 12
    assert frames.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.3"  # grayscale word SC
    assert (
        main(["img2dcm", "-i1", "-k", "StudyInstanceUID=", str(jpeg), str(tmp_path / "bad.dcm")])
        == 1
    )
    assert "StudyInstanceUID" in capsys.readouterr().err

    pdf = tmp_path / "doc.pdf"
    pdf.write_bytes(
        b"%PDF-1.1\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    )
    assert main(["pdf2dcm", "--title", "Letter", str(pdf), str(tmp_path / "doc.dcm")]) == 0
    assert main(["dcm2pdf", str(tmp_path / "doc.dcm"), str(tmp_path / "back.pdf")]) == 0
    assert (tmp_path / "back.pdf").read_bytes() == pdf.read_bytes()
    assert main(["pdf2dcm", str(jpeg), str(tmp_path / "no.dcm")]) == 1
    assert "not a PDF" in capsys.readouterr().err
    assert main(["dcm2pdf", str(out), str(tmp_path / "no.pdf")]) == 1


def test_entry_point_runs(tmp_path: Path) -> None:
    src = _image(tmp_path / "in.dcm")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli.main",
            "convert",
            "--implicit",
            str(src),
            str(tmp_path / "imp.dcm"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert pydicom.dcmread(tmp_path / "imp.dcm").file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
