"""img2dcm: images to DICOM, checked with dciodvfy, DCMTK img2dcm and gdcmimg."""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import generate_uid

from node.tools.convert import InputError
from node.tools.convert.images import JpegOptions, RawSpec
from node.tools.convert.img2dcm import Img2DcmOptions, images_to_dataset
from node.tools.convert.transcode import write_dataset

_Y, _X = np.mgrid[0:48, 0:64]
RGB = np.stack([_X * 4, _Y * 5, (_X + _Y) * 2], -1).astype(np.uint8)
GREY = ((_X * 3 + _Y * 2) % 256).astype(np.uint8)
GREY12 = ((_X * 61 + _Y * 7) % 4096).astype(np.uint16)


def _segments(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, whole segment) up to SOS, for building expectations independently."""
    out, i = [], 2
    while data[i + 1] != 0xDA:
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((data[i + 1], data[i : i + 2 + length]))
        i += 2 + length
    return out


def _without(data: bytes, drop: Callable[[int, bytes], bool]) -> bytes:
    segments = _segments(data)
    head = b"\xff\xd8" + b"".join(s for m, s in segments if not drop(m, s))
    return head + data[2 + sum(len(s) for _, s in segments) :]


def _jpeg(tmp_path: Path, name: str, arr: np.ndarray, **save: object) -> Path:
    path = tmp_path / name
    Image.fromarray(arr).save(path, format="JPEG", quality=90, **save)
    return path


def _dciodvfy(require_binary: Callable[[str], str], path: Path) -> list[str]:
    out = subprocess.run(
        [require_binary("dciodvfy"), str(path)],
        capture_output=True,
        encoding="latin-1",
        check=False,
    )
    return [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]


def _gdcm_pixels(path: Path) -> np.ndarray:
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    assert reader.Read()
    image = reader.GetImage()
    buffer = image.GetBuffer().encode("utf-8", "surrogateescape")
    signed = image.GetPixelFormat().GetPixelRepresentation()
    return np.frombuffer(buffer, dtype="<i2" if signed else "<u2")


def _write(tmp_path: Path, name: str, ds: pydicom.Dataset) -> Path:
    path = tmp_path / name
    write_dataset(ds, path)
    return path


@pytest.fixture
def images(tmp_path: Path) -> dict[str, Path]:
    made = {
        "baseline.jpg": _jpeg(tmp_path, "baseline.jpg", RGB),
        "grey.jpg": _jpeg(tmp_path, "grey.jpg", GREY),
        "progressive.jpg": _jpeg(tmp_path, "progressive.jpg", RGB, progressive=True),
    }
    exif = Image.Exif()
    exif[0x010F] = "ACME"
    made["exif.jpg"] = _jpeg(tmp_path, "exif.jpg", RGB, exif=exif.tobytes())
    data = made["grey.jpg"].read_bytes()
    sof = data.index(b"\xff\xc0")
    made["extended.jpg"] = tmp_path / "extended.jpg"  # 8-bit SOF1: same scan, extended
    made["extended.jpg"].write_bytes(data[:sof] + b"\xff\xc1" + data[sof + 2 :])
    for name, arr, fmt in (
        ("rgb.bmp", RGB, "BMP"),
        ("rgb.png", RGB, "PNG"),
        ("grey.png", GREY, "PNG"),
        ("rgba.png", np.dstack([RGB, np.full(GREY.shape, 128, np.uint8)]), "PNG"),
        ("grey16.png", (GREY12 * 16).astype(np.uint16), "PNG"),
    ):
        path = tmp_path / name
        Image.fromarray(arr).save(path, format=fmt)
        made[name] = path
    pal = tmp_path / "palette.bmp"
    Image.fromarray(RGB).quantize(16).save(pal, format="BMP")
    made["palette.bmp"] = pal
    pgm = tmp_path / "grey12.pgm"
    pgm.write_bytes(b"P5\n# twelve bits\n64 48\n4095\n" + GREY12.astype(">u2").tobytes())
    made["grey12.pgm"] = pgm
    ppm = tmp_path / "rgb.ppm"
    ppm.write_bytes(b"P6 64 48 255\n" + RGB.tobytes())
    made["rgb.ppm"] = ppm
    raw = tmp_path / "signed.raw"
    raw.write_bytes(b"HEADER" + (GREY12.astype(np.int16) - 2048).astype(">i2").tobytes())
    made["signed.raw"] = raw
    return made


EXPECT = {
    # name: (photometric, bits allocated, bits stored, transfer syntax)
    "baseline.jpg": ("YBR_FULL_422", 8, 8, "1.2.840.10008.1.2.4.50"),
    "grey.jpg": ("MONOCHROME2", 8, 8, "1.2.840.10008.1.2.4.50"),
    "progressive.jpg": ("YBR_FULL_422", 8, 8, "1.2.840.10008.1.2.4.55"),
    "extended.jpg": ("MONOCHROME2", 8, 8, "1.2.840.10008.1.2.4.51"),
    "rgb.bmp": ("RGB", 8, 8, "1.2.840.10008.1.2.1"),
    "palette.bmp": ("RGB", 8, 8, "1.2.840.10008.1.2.1"),
    "rgb.png": ("RGB", 8, 8, "1.2.840.10008.1.2.1"),
    "rgba.png": ("RGB", 8, 8, "1.2.840.10008.1.2.1"),
    "grey.png": ("MONOCHROME2", 8, 8, "1.2.840.10008.1.2.1"),
    "grey16.png": ("MONOCHROME2", 16, 16, "1.2.840.10008.1.2.1"),
    "grey12.pgm": ("MONOCHROME2", 16, 12, "1.2.840.10008.1.2.1"),
    "rgb.ppm": ("RGB", 8, 8, "1.2.840.10008.1.2.1"),
}


@pytest.mark.interop
@pytest.mark.parametrize("sop", ["sc", "new-sc", "vl-photo"])
def test_every_input_makes_a_valid_object(
    images: dict[str, Path], tmp_path: Path, require_binary: Callable[[str], str], sop: str
) -> None:
    for name, (pi, allocated, stored, syntax) in EXPECT.items():
        if sop == "vl-photo" and allocated != 8:
            with pytest.raises(InputError, match="8 bits"):
                images_to_dataset([images[name]], Img2DcmOptions(sop_class=sop))
            continue
        result = images_to_dataset([images[name]], Img2DcmOptions(sop_class=sop))
        ds = result.dataset
        assert (ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored) == (
            pi,
            allocated,
            stored,
        ), name
        assert ds.file_meta.TransferSyntaxUID == syntax
        path = _write(tmp_path, f"{sop}-{name}.dcm", ds)
        assert _dciodvfy(require_binary, path) == [], name
        if syntax.endswith(".55"):
            continue  # progressive JPEG (retired syntax): no pydicom decoder
        pixels = pixel_array(pydicom.dcmread(path))
        if not syntax.endswith((".50", ".51")):
            original = np.asarray(
                Image.open(images[name]).convert(
                    "RGB" if pi == "RGB" else Image.open(images[name]).mode
                )
            )
            if name == "grey12.pgm":
                original = GREY12
            assert np.array_equal(pixels, original), name
        else:
            reference = np.asarray(Image.open(images[name]).convert("RGB" if "YBR" in pi else "L"))
            assert np.abs(pixels.astype(int) - reference).max() <= 2, name


def test_jpeg_is_encapsulated_without_re_encoding(images: dict[str, Path]) -> None:
    original = images["exif.jpg"].read_bytes()
    ds = images_to_dataset([images["exif.jpg"]]).dataset
    fragment = next(generate_frames(ds.PixelData, number_of_frames=1))
    expected = _without(original, lambda m, s: 0xE0 <= m <= 0xEF)
    assert fragment.rstrip(b"\x00") == expected.rstrip(b"\x00")
    scan_start = original.index(b"\xff\xda")
    assert fragment.rstrip(b"\x00").endswith(original[scan_start:])
    assert ds.LossyImageCompression == "01"
    assert ds.LossyImageCompressionMethod == "ISO_10918_1"

    kept = images_to_dataset(
        [images["exif.jpg"]], Img2DcmOptions(jpeg=JpegOptions(keep_appn=True))
    ).dataset
    fragment = next(generate_frames(kept.PixelData, number_of_frames=1)).rstrip(b"\x00")
    assert b"Exif\x00\x00" in fragment and b"JFIF\x00" not in fragment
    assert fragment == _without(original, lambda m, s: s[4:9] == b"JFIF\x00").rstrip(b"\x00")


def test_jpeg_matches_dcmtk_img2dcm(
    images: dict[str, Path], tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    theirs = tmp_path / "dcmtk.dcm"
    subprocess.run(
        [require_binary("img2dcm"), str(images["baseline.jpg"]), str(theirs)],
        check=True,
        capture_output=True,
    )
    reference = pydicom.dcmread(theirs)
    ours = images_to_dataset([images["baseline.jpg"]]).dataset
    frame = next(generate_frames(ours.PixelData, number_of_frames=1))
    their_frame = next(generate_frames(reference.PixelData, number_of_frames=1))
    assert frame.rstrip(b"\x00") == their_frame.rstrip(b"\x00")
    for keyword in (
        "PhotometricInterpretation",
        "BitsStored",
        "SamplesPerPixel",
        "Rows",
        "Columns",
        "SOPClassUID",
        "LossyImageCompression",
    ):
        assert ours[keyword].value == reference[keyword].value, keyword
    assert ours.file_meta.TransferSyntaxUID == reference.file_meta.TransferSyntaxUID


def test_pnm_and_raw_match_gdcmimg(
    images: dict[str, Path], tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    gdcmimg = require_binary("gdcmimg")
    theirs = tmp_path / "gdcm-pgm.dcm"
    subprocess.run(
        [gdcmimg, str(images["grey12.pgm"]), str(theirs)], check=True, capture_output=True
    )
    ours = images_to_dataset([images["grey12.pgm"]]).dataset
    # gdcmimg keeps the PGM's byte order (GE's private big endian syntax, which pydicom
    # does not read): read its pixels with GDCM itself.
    assert np.array_equal(_gdcm_pixels(theirs).reshape(48, 64), pixel_array(ours))

    theirs = tmp_path / "gdcm-raw.dcm"
    subprocess.run(
        [
            gdcmimg,
            "--size",
            "64,48",
            "--depth",
            "16",
            "--sign",
            "1",
            "--endian",
            "MSB",
            "--offset",
            "6",
            "-i",
            str(images["signed.raw"]),
            "-o",
            str(theirs),
        ],
        check=True,
        capture_output=True,
    )
    spec = RawSpec(columns=64, rows=48, depth=16, signed=True, big_endian=True, offset=6)
    ours = images_to_dataset([images["signed.raw"]], Img2DcmOptions(raw=spec)).dataset
    assert np.array_equal(pixel_array(ours), GREY12.astype(np.int16) - 2048)
    assert np.array_equal(_gdcm_pixels(theirs).reshape(48, 64), pixel_array(ours))


def test_several_images_become_frames(
    images: dict[str, Path], tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    result = images_to_dataset([images["grey.png"], images["grey.png"], images["grey.png"]])
    ds = result.dataset
    assert ds.NumberOfFrames == 3
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.2"  # grayscale byte SC
    assert any("single-frame" in note for note in result.notes)
    assert list(ds.PageNumberVector) == [1, 2, 3]
    assert _dciodvfy(require_binary, _write(tmp_path, "frames.dcm", ds)) == []
    jpegs = images_to_dataset([images["baseline.jpg"], images["baseline.jpg"]]).dataset
    assert jpegs.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.4"  # true colour SC
    assert len(list(generate_frames(jpegs.PixelData, number_of_frames=2))) == 2
    with pytest.raises(InputError, match="frames must match"):
        images_to_dataset([images["grey.png"], images["rgb.png"]])
    with pytest.raises(InputError, match="single-frame"):
        images_to_dataset([images["grey.png"]] * 2, Img2DcmOptions(sop_class="vl-photo"))


def _reference(tmp_path: Path) -> Path:
    ds = pydicom.Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "P1"
    ds.PatientSex = "F"
    ds.StudyInstanceUID = generate_uid()
    ds.StudyID = "S7"
    ds.AccessionNumber = "A1"
    ds.SeriesInstanceUID = generate_uid()
    ds.SeriesNumber = 5
    ds.Manufacturer = "ACME"
    ds.InstanceNumber = 41
    ds.InstitutionName = "Hospital"
    ds.SpecificCharacterSet = "ISO_IR 100"
    path = tmp_path / "ref.dcm"
    ds.file_meta = pydicom.dataset.FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def test_study_series_and_dataset_from(images: dict[str, Path], tmp_path: Path) -> None:
    ref_path = _reference(tmp_path)
    ref = pydicom.dcmread(ref_path)
    study = images_to_dataset([images["grey.png"]], Img2DcmOptions(study_from=ref_path)).dataset
    assert (study.PatientName, study.PatientID, study.StudyInstanceUID, study.StudyID) == (
        ref.PatientName,
        ref.PatientID,
        ref.StudyInstanceUID,
        ref.StudyID,
    )
    assert study.SeriesInstanceUID != ref.SeriesInstanceUID
    assert str(study.get("Manufacturer", "")) != "ACME"
    assert "InstitutionName" not in study

    series = images_to_dataset(
        [images["grey.png"]], Img2DcmOptions(series_from=ref_path, instance_inc=True)
    ).dataset
    assert series.SeriesInstanceUID == ref.SeriesInstanceUID
    assert (series.SeriesNumber, series.Manufacturer, series.InstanceNumber) == (5, "ACME", 42)

    template = images_to_dataset(
        [images["grey.png"]], Img2DcmOptions(dataset_from=ref_path)
    ).dataset
    assert template.InstitutionName == "Hospital"
    assert template.SOPInstanceUID != ref.SOPInstanceUID
    assert template.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    with pytest.raises(InputError, match="mutually exclusive"):
        images_to_dataset(
            [images["grey.png"]], Img2DcmOptions(study_from=ref_path, series_from=ref_path)
        )


def test_keys_uids_and_checks(images: dict[str, Path]) -> None:
    options = Img2DcmOptions(
        keys=(
            "PatientName=Smith^John",
            "0010,0020=ID9",
            "SeriesNumber=12",
            "ReferencedStudySequence[0].ReferencedSOPInstanceUID=1.2.3",
        ),
        study_uid="1.2.826.0.1.3680043.10.1471.5",
        root_uid="1.2.826.0.1.3680043.10.1471.6",
    )
    ds = images_to_dataset([images["grey.png"]], options).dataset
    assert (ds.PatientName, ds.PatientID, ds.SeriesNumber) == ("Smith^John", "ID9", 12)
    assert ds.ReferencedStudySequence[0].ReferencedSOPInstanceUID == "1.2.3"
    assert ds.StudyInstanceUID == "1.2.826.0.1.3680043.10.1471.5"
    assert ds.SOPInstanceUID.startswith("1.2.826.0.1.3680043.10.1471.6.")

    invented = images_to_dataset(
        [images["grey.png"]], Img2DcmOptions(keys=("ConversionType=",))
    ).dataset
    assert invented.ConversionType == "WSD"  # empty type 1: invented
    with pytest.raises(InputError, match="ConversionType"):
        images_to_dataset(
            [images["grey.png"]], Img2DcmOptions(keys=("ConversionType=",), invent_type1=False)
        )
    with pytest.raises(InputError, match="type 2"):
        images_to_dataset([images["grey.png"]], Img2DcmOptions(insert_type2=False))
    loose = images_to_dataset([images["grey.png"]], Img2DcmOptions(checks=False)).dataset
    assert "PatientName" not in loose
    assert images_to_dataset([images["grey.png"]]).dataset.PatientName == ""
    custom = images_to_dataset(
        [images["grey.png"]], Img2DcmOptions(sop_class_uid="1.2.840.10008.5.1.4.1.1.7.2")
    ).dataset
    assert custom.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7.2"


def test_jpeg_input_options(images: dict[str, Path], tmp_path: Path) -> None:
    no_jfif = tmp_path / "nojfif.jpg"
    no_jfif.write_bytes(_without(images["grey.jpg"].read_bytes(), lambda m, s: m == 0xE0))
    with pytest.raises(InputError, match="JFIF"):
        images_to_dataset([no_jfif], Img2DcmOptions(jpeg=JpegOptions(insist_on_jfif=True)))
    assert images_to_dataset(
        [images["grey.jpg"]], Img2DcmOptions(jpeg=JpegOptions(insist_on_jfif=True))
    ).dataset
    with pytest.raises(InputError, match="progressive"):
        images_to_dataset(
            [images["progressive.jpg"]], Img2DcmOptions(jpeg=JpegOptions(disable_progressive=True))
        )
    with pytest.raises(InputError, match="extended"):
        images_to_dataset(
            [images["extended.jpg"]], Img2DcmOptions(jpeg=JpegOptions(disable_extended=True))
        )
    commented = tmp_path / "comment.jpg"
    Image.fromarray(GREY).save(commented, format="JPEG", comment=b"hello")
    with_com = images_to_dataset([commented]).dataset
    assert b"hello" in with_com.PixelData
    without = images_to_dataset(
        [commented], Img2DcmOptions(jpeg=JpegOptions(remove_com=True))
    ).dataset
    assert b"hello" not in without.PixelData
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(images["grey.jpg"].read_bytes()[:200])
    with pytest.raises(InputError):
        images_to_dataset([broken])
    unknown = tmp_path / "unknown.bin"
    unknown.write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="--size"):
        images_to_dataset([unknown])
