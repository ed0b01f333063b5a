"""Transcoding on small synthetic images: every target syntax, every option, every refusal.

The corpus tests (``test_convert_corpus.py``) cover real files and the reference tools;
these pin the rules on images built to hit each case exactly.
"""

from __future__ import annotations

import hashlib
import io
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import pixel_array
from pydicom.uid import (
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

from node.tools.convert import (
    ConvertError,
    EncodeRefused,
    NotAnImage,
    TranscodeOptions,
    UnsupportedSyntax,
    transcode,
    transcode_dataset,
    transcode_file,
)
from node.tools.convert import errors as errors_module
from node.tools.convert.syntaxes import TARGETS, resolve_family

LOSSLESS = [uid for uid, t in TARGETS.items() if not t.lossy]
LOSSY = [uid for uid, t in TARGETS.items() if t.lossy]


def make_image(
    arr: np.ndarray,
    photometric: str,
    *,
    bits_stored: int | None = None,
    frames: int | None = None,
    syntax: str = ExplicitVRLittleEndian,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    colour = photometric in ("RGB", "YBR_FULL")
    shape = arr.shape[1:] if frames else arr.shape
    ds.Rows, ds.Columns = shape[0], shape[1]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = arr.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(arr.dtype.kind == "i")
    if frames:
        ds.NumberOfFrames = frames
    ds.PixelData = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
    return ds


_Y, _X = np.mgrid[0:40, 0:56]
IMAGES = {
    "mono8": lambda: make_image(((_X * 3 + _Y * 5) % 256).astype(np.uint8), "MONOCHROME2"),
    "mono1-8": lambda: make_image(((_X * 7 + _Y) % 256).astype(np.uint8), "MONOCHROME1"),
    "mono12": lambda: make_image(
        ((_X * 71 + _Y * 13) % 4096).astype(np.uint16), "MONOCHROME2", bits_stored=12
    ),
    "mono12-signed": lambda: make_image(
        ((_X * 71 - _Y * 93) % 4096 - 2048).astype(np.int16), "MONOCHROME2", bits_stored=12
    ),
    "mono16": lambda: make_image(((_X * 997 + _Y * 1301) % 65536).astype(np.uint16), "MONOCHROME2"),
    "mono16-signed": lambda: make_image((_X * 600 - _Y * 800).astype(np.int16), "MONOCHROME2"),
    "rgb8": lambda: make_image(
        np.stack([_X * 4, _Y * 6, (_X + _Y) * 2], -1).astype(np.uint8), "RGB"
    ),
    "ybr8": lambda: make_image(
        np.stack([_X * 4, 128 + _Y, 128 - _Y], -1).astype(np.uint8), "YBR_FULL"
    ),
    "rgb16": lambda: make_image(
        np.stack([_X * 900, _Y * 1500, (_X + _Y) * 500], -1).astype(np.uint16), "RGB"
    ),
    "frames8": lambda: make_image(
        np.stack([((_X * 3 + _Y * 5 + k * 40) % 256) for k in range(4)]).astype(np.uint8),
        "MONOCHROME2",
        frames=4,
    ),
}

#: What PS3.5 8.2 and the encoders allow, restated independently of the code under test.
REFUSED = {
    JPEGBaseline8Bit: {"mono12", "mono12-signed", "mono16", "mono16-signed", "rgb16"},
    JPEGExtended12Bit: {"mono12-signed", "mono16", "mono16-signed", "rgb8", "ybr8", "rgb16"},
    JPEGLSLossless: set(),
    # JPEG-LS does not know signedness: signed values within NEAR of the extremes could
    # wrap, and this image uses its whole range (pydicom refuses, so do we).
    JPEGLSNearLossless: {"mono12-signed"},
    RLELossless: set(),
    JPEGLosslessSV1: set(),
    JPEG2000Lossless: set(),
    JPEG2000: set(),
}


def decoded(ds: Dataset) -> np.ndarray:
    """Pixels as a viewer shows them (pydicom's default decode, through pylibjpeg)."""
    return pixel_array(reread(ds), decoding_plugin="pylibjpeg" if is_compressed(ds) else "")


def is_compressed(ds: Dataset) -> bool:
    return bool(ds.file_meta.TransferSyntaxUID.is_compressed)


def reread(ds: Dataset) -> Dataset:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def md5(arr: np.ndarray) -> str:
    return hashlib.md5(np.ascontiguousarray(arr, dtype=np.int64).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("target", LOSSLESS, ids=lambda u: TARGETS[u].family + "-" + u[-4:])
def test_lossless_round_trip(name: str, target: str) -> None:
    source = IMAGES[name]()
    if name in REFUSED.get(target, set()):
        with pytest.raises(EncodeRefused):
            transcode(source, target)
        return
    result = transcode_dataset(source, target, TranscodeOptions(verify=True))
    out = result.dataset
    assert out.file_meta.TransferSyntaxUID == target
    assert out.SOPInstanceUID == source.SOPInstanceUID
    assert "LossyImageCompression" not in out
    assert md5(decoded(out)) == md5(decoded(source))
    back = transcode(out, ExplicitVRLittleEndian)
    assert md5(decoded(back)) == md5(decoded(source))


@pytest.mark.parametrize("name", sorted(IMAGES))
@pytest.mark.parametrize("target", LOSSY, ids=lambda u: TARGETS[u].family + "-" + u[-4:])
def test_lossy_targets_are_marked(name: str, target: str) -> None:
    source = IMAGES[name]()
    if name in REFUSED[target]:
        with pytest.raises(EncodeRefused):
            transcode(source, target)
        return
    options = TranscodeOptions(allowed_error=3, root_uid="1.2.826.0.1.3680043.10.1471.9")
    result = transcode_dataset(source, target, options)
    out = result.dataset
    assert result.lossy and result.ratio and result.ratio > 1
    assert out.SOPInstanceUID != source.SOPInstanceUID
    assert out.SOPInstanceUID.startswith("1.2.826.0.1.3680043.10.1471.9.")
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert out.LossyImageCompression == "01"
    assert out.LossyImageCompressionMethod == TARGETS[target].method
    assert float(out.LossyImageCompressionRatio) == pytest.approx(result.ratio, rel=1e-3)
    assert out.ImageType[0] == "DERIVED"
    assert out.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert out.DerivationCodeSequence[0].CodeValue == "113040"
    got, want = decoded(out).astype(np.int64), decoded(source).astype(np.int64)
    assert got.shape == want.shape
    if target == JPEGLSNearLossless:
        stored = pixel_array(reread(out), raw=True, decoding_plugin="pylibjpeg")
        error = np.abs(stored.astype(np.int64) - pixel_array(source, raw=True))
        assert error.max() <= 3  # NEAR bounds the error of every stored sample
    else:
        assert np.abs(got - want).mean() < 0.05 * (want.max() - want.min() + 1)


def test_jpeg_lossy_family_depends_on_bit_depth() -> None:
    assert resolve_family("jpeg", True, 8) == JPEGBaseline8Bit
    assert resolve_family("jpeg", True, 12) == JPEGExtended12Bit
    assert resolve_family("jpeg", False, 16) == JPEGLosslessSV1
    with pytest.raises(EncodeRefused, match="16-bit JPEG"):
        resolve_family("jpeg", True, 16)
    with pytest.raises(EncodeRefused):
        resolve_family("rle", True, 8)


def test_lossy_jpeg_colour_is_ybr_full_422_and_12_bit_is_12_bit() -> None:
    out = transcode(IMAGES["rgb8"](), JPEGBaseline8Bit)
    assert out.PhotometricInterpretation == "YBR_FULL_422"
    stream = next(pydicom.encaps.generate_frames(out.PixelData, number_of_frames=1))
    assert stream[6:10] == b"JFIF"
    out = transcode(IMAGES["mono12"](), JPEGExtended12Bit)
    stream = next(pydicom.encaps.generate_frames(out.PixelData, number_of_frames=1))
    sof = stream.index(b"\xff\xc1")
    assert stream[sof + 4] == 12  # sample precision 12, not the 16 gdcmconv writes


def test_j2k_rgb_uses_the_colour_transforms() -> None:
    source = IMAGES["rgb8"]()
    assert transcode(source, JPEG2000Lossless).PhotometricInterpretation == "YBR_RCT"
    assert transcode(source, JPEG2000).PhotometricInterpretation == "YBR_ICT"
    assert transcode(IMAGES["ybr8"](), JPEG2000Lossless).PhotometricInterpretation == "YBR_FULL"


def test_rle_colour_is_planar_configuration_1() -> None:
    out = transcode(IMAGES["rgb8"](), RLELossless)
    assert out.PlanarConfiguration == 1  # PS3.5 G.2: segments are colour-by-plane


def test_refusals_are_typed_and_explain() -> None:
    with pytest.raises(EncodeRefused, match="at most 12 bits"):
        transcode(IMAGES["mono16"](), JPEGExtended12Bit)
    floats = make_image(np.zeros((4, 4), np.uint8), "MONOCHROME2")
    del floats.PixelData
    floats.FloatPixelData = np.zeros((4, 4), np.float32).tobytes()
    with pytest.raises(EncodeRefused, match="float pixel data"):
        transcode(floats, RLELossless)
    assert "FloatPixelData" in transcode(floats, ImplicitVRLittleEndian)
    wide = make_image(np.zeros((4, 4), np.uint32), "MONOCHROME2")
    with pytest.raises(EncodeRefused, match="PS3.5"):
        transcode(wide, RLELossless)
    deep = make_image(np.zeros((4, 4), np.uint32), "MONOCHROME2", bits_stored=28)
    with pytest.raises(EncodeRefused, match="OpenJPEG"):
        transcode(deep, JPEG2000Lossless)
    no_pixels = Dataset()
    no_pixels.file_meta = FileMetaDataset()
    no_pixels.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    no_pixels.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.22"
    no_pixels.SOPInstanceUID = generate_uid()
    with pytest.raises(NotAnImage):
        transcode(no_pixels, JPEGLSLossless)
    assert transcode(no_pixels, ImplicitVRLittleEndian).file_meta.TransferSyntaxUID == (
        ImplicitVRLittleEndian
    )
    with pytest.raises(UnsupportedSyntax, match="retired"):
        transcode(IMAGES["mono8"](), ExplicitVRBigEndian)


def test_encoder_edge_cases() -> None:
    """Sizes the encoders trip on: each is either handled or refused with the reason."""
    noisy = (np.arange(27) * 97 % 256).astype(np.uint8).reshape(3, 3, 3)
    tiny = make_image(noisy, "RGB")  # CharLS's own buffer is too small for this
    for target in (JPEGLSLossless, JPEGLSNearLossless):
        out = transcode(tiny, target, TranscodeOptions(verify=True))
        assert np.abs(decoded(out).astype(int) - noisy).max() <= 2
    odd = make_image(((_X[:39, :55] * 5 + _Y[:39, :55]) % 256).astype(np.uint8), "MONOCHROME2")
    out = transcode(odd, JPEGLosslessSV1, TranscodeOptions(verify=True))  # odd byte count
    assert np.array_equal(decoded(out), decoded(odd))
    small = make_image(np.zeros((16, 64), np.uint8), "MONOCHROME2")
    with pytest.raises(EncodeRefused, match="6 wavelet resolutions"):
        transcode(small, JPEG2000Lossless)


def test_every_error_is_a_convert_error() -> None:
    for name in errors_module.__all__:
        assert issubclass(getattr(errors_module, name), ConvertError)


def test_one_bit_stays_packed_and_refuses_encapsulation() -> None:
    bits = ((_X + _Y) % 3 == 0).astype(np.uint8)
    ds = make_image(bits, "MONOCHROME2")
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = pydicom.pixels.pack_bits(bits)
    out = transcode(ds, ImplicitVRLittleEndian)
    assert out.BitsAllocated == 1
    assert np.array_equal(decoded(out), bits)
    with pytest.raises(EncodeRefused, match="1-bit"):
        transcode(ds, JPEGLSLossless)


def test_already_in_target_keeps_bytes_unless_forced() -> None:
    once = transcode(IMAGES["mono12"](), JPEGLSLossless)
    again = transcode_dataset(once, JPEGLSLossless)
    assert again.pixels == "kept" and again.dataset.PixelData == once.PixelData
    forced = transcode_dataset(once, JPEGLSLossless, TranscodeOptions(force=True))
    assert forced.pixels == "encoded"
    assert md5(decoded(forced.dataset)) == md5(decoded(once))


def test_native_to_native_never_touches_pixel_bytes() -> None:
    source = IMAGES["mono16-signed"]()
    for target in (ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian):
        result = transcode_dataset(source, target)
        assert result.pixels == "kept"
        assert result.dataset.PixelData == source.PixelData
        assert reread(result.dataset).file_meta.TransferSyntaxUID == target


def test_split_writes_bounded_fragments_with_offsets() -> None:
    source = IMAGES["frames8"]()
    out = transcode(source, JPEGLSLossless, TranscodeOptions(split=64))
    fragments = list(pydicom.encaps.generate_fragments(out.PixelData))
    assert len(fragments) > 4 and all(len(f) <= 64 for f in fragments)
    offsets = pydicom.encaps.parse_basic_offsets(out.PixelData)
    assert len(offsets) == 4 and offsets[0] == 0
    assert md5(decoded(out)) == md5(decoded(source))
    refrag = transcode_dataset(out, JPEGLSLossless, TranscodeOptions(split=128))
    assert refrag.pixels == "refragmented"
    assert all(len(f) <= 128 for f in pydicom.encaps.generate_fragments(refrag.dataset.PixelData))
    assert md5(decoded(refrag.dataset)) == md5(decoded(source))
    with pytest.raises(EncodeRefused, match="RLE"):
        transcode(source, RLELossless, TranscodeOptions(split=64))
    with pytest.raises(EncodeRefused, match="even"):
        transcode(source, JPEGLSLossless, TranscodeOptions(split=63))


def test_planar_configuration_one_for_native_output() -> None:
    source = IMAGES["rgb8"]()
    out = transcode(source, ExplicitVRLittleEndian, TranscodeOptions(planar_configuration=1))
    assert out.PlanarConfiguration == 1
    rgb = decoded(source)
    assert out.PixelData[: 40 * 56] == np.ascontiguousarray(rgb[..., 0]).tobytes()
    assert np.array_equal(decoded(out), rgb)


def test_photometric_changes_that_are_lossless() -> None:
    source = IMAGES["mono12"]()
    flipped = transcode(
        source, RLELossless, TranscodeOptions(photometric_interpretation="MONOCHROME1")
    )
    assert flipped.PhotometricInterpretation == "MONOCHROME1"
    assert np.array_equal(decoded(flipped), 4095 - decoded(source))
    back = transcode(
        flipped, ExplicitVRLittleEndian, TranscodeOptions(photometric_interpretation="MONOCHROME2")
    )
    assert np.array_equal(decoded(back), decoded(source))
    signed = IMAGES["mono16-signed"]()
    inverted = transcode(
        signed, ExplicitVRLittleEndian, TranscodeOptions(photometric_interpretation="MONOCHROME1")
    )
    assert np.array_equal(decoded(inverted), -1 - decoded(signed).astype(np.int32))
    with pytest.raises(EncodeRefused, match="not lossless"):
        transcode(
            IMAGES["rgb8"](),
            ExplicitVRLittleEndian,
            TranscodeOptions(photometric_interpretation="YBR_FULL"),
        )


def test_palette_colour_to_rgb() -> None:
    from pydicom.pixels.processing import apply_color_lut

    index = ((_X + _Y) % 4).astype(np.uint8)
    ds = make_image(index, "PALETTE COLOR")
    ds.PaletteColorLookupTableUID = generate_uid()
    for colour, values in zip(
        "Red Green Blue".split(), ([0, 255, 0, 9], [0, 0, 255, 9], [255, 0, 0, 9]), strict=True
    ):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 8])
        setattr(
            ds,
            f"{colour}PaletteColorLookupTableData",
            bytes(struct.pack("<4H", *[v * 257 for v in values])),
        )
    out = transcode(ds, JPEGLSLossless, TranscodeOptions(photometric_interpretation="RGB"))
    assert out.PhotometricInterpretation == "RGB" and out.SamplesPerPixel == 3
    assert "RedPaletteColorLookupTableData" not in out
    assert np.array_equal(decoded(out), apply_color_lut(index, ds))


def test_dataset_options() -> None:
    source = IMAGES["mono8"]()
    block = source.private_block(0x0011, "ACME", create=True)
    block.add_new(0x01, "LO", "secret")
    source.add_new(0x00080000, "UL", 0)  # a group length
    source.add_new(0x00081080, "LO", "retired?")  # Admitting Diagnoses: not retired
    source.add_new(0x00080041, "LO", "Data Set Subtype")  # retired
    options = TranscodeOptions(
        remove_private_tags=True, remove_retired=True, remove_group_length=True
    )
    result = transcode_dataset(source, ImplicitVRLittleEndian, options)
    out = result.dataset
    assert 0x00110010 not in out and 0x00111001 not in out
    assert 0x00080000 not in out and 0x00080041 not in out
    assert 0x00081080 in out
    assert any("private" in n for n in result.notes)


def test_check_meta_rebuilds_the_file_meta() -> None:
    source = IMAGES["mono8"]()
    source.file_meta.SourceApplicationEntityTitle = "OLD"
    source.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    kept = transcode(source, ExplicitVRLittleEndian)
    assert kept.file_meta.SourceApplicationEntityTitle == "OLD"
    rebuilt = transcode(source, ExplicitVRLittleEndian, TranscodeOptions(check_meta=True))
    assert "SourceApplicationEntityTitle" not in rebuilt.file_meta
    for out in (kept, rebuilt):
        assert out.file_meta.MediaStorageSOPInstanceUID == source.SOPInstanceUID
        assert out.file_meta.ImplementationClassUID == "1.2.826.0.1.3680043.10.1471.1"


@pytest.mark.parametrize(
    ("name", "options", "expect"),
    [
        ("mono12", TranscodeOptions(generate_icon=True), "MONOCHROME2"),
        ("mono12", TranscodeOptions(generate_icon=True, icon_auto_minmax=True), "MONOCHROME2"),
        ("mono12", TranscodeOptions(generate_icon=True, icon_minmax=(0, 100)), "MONOCHROME2"),
        ("rgb8", TranscodeOptions(generate_icon=True), "RGB"),
    ],
)
def test_icon(name: str, options: TranscodeOptions, expect: str) -> None:
    source = IMAGES[name]()
    out = reread(transcode(source, JPEGLSLossless, options))
    icon = out.IconImageSequence[0]
    assert icon.PhotometricInterpretation == expect
    assert (icon.Rows, icon.Columns) == (40, 56)  # fits in 64x64, never enlarged
    assert icon.BitsAllocated == 8
    pixels = np.frombuffer(
        icon.PixelData[: icon.Rows * icon.Columns * icon.SamplesPerPixel], np.uint8
    )
    if options.icon_auto_minmax:
        assert pixels.min() == 0 and pixels.max() == 255  # the window is the image's range
    elif options.icon_minmax:
        assert (pixels == 255).mean() > 0.9  # most values lie above 100
    else:
        assert pixels.max() <= 255 and pixels.max() > 200


def test_big_endian_source_becomes_little_endian(tmp_path: Path) -> None:
    source = IMAGES["mono16-signed"]()
    source.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    source.PixelData = decoded(IMAGES["mono16-signed"]()).astype(">i2").tobytes()
    source.add_new(0x00091010, "OW", np.arange(4, dtype=">u2").tobytes())
    path = tmp_path / "be.dcm"
    pydicom.dcmwrite(path, source, implicit_vr=False, little_endian=False)
    result = transcode_file(path, tmp_path / "le.dcm", ExplicitVRLittleEndian)
    assert "converted from big endian" in result.notes
    out = pydicom.dcmread(tmp_path / "le.dcm")
    assert np.array_equal(out.pixel_array, decoded(IMAGES["mono16-signed"]()))
    assert np.frombuffer(out[0x00091010].value, "<u2").tolist() == [0, 1, 2, 3]


def test_lossy_source_stays_marked_lossy() -> None:
    lossy = transcode(IMAGES["rgb8"](), JPEGBaseline8Bit)
    del lossy.LossyImageCompression
    result = transcode_dataset(lossy, ExplicitVRLittleEndian)
    out = result.dataset
    assert out.LossyImageCompression == "01"
    assert out.SOPInstanceUID == lossy.SOPInstanceUID
    assert out.PhotometricInterpretation == "RGB"  # YCbCr decoded as dcmdjpeg does
    assert np.array_equal(decoded(out), decoded(lossy))


def test_repairs_are_reported(tmp_path: Path) -> None:
    source = IMAGES["mono8"]()
    source.PatientName = "ODD"  # odd length: padded on write
    bare = Dataset(source)
    raw = io.BytesIO()
    pydicom.dcmwrite(raw, bare, implicit_vr=True, little_endian=True)  # no preamble, no meta
    data = raw.getvalue()
    element = b"\x10\x00\x10\x00\x04\x00\x00\x00ODD "
    assert element in data
    data = data.replace(element, b"\x10\x00\x10\x00\x03\x00\x00\x00ODD", 1)
    path = tmp_path / "bare.dcm"
    path.write_bytes(data)
    result = transcode_file(path, tmp_path / "fixed.dcm", ExplicitVRLittleEndian)
    text = " ".join(result.notes)
    assert "preamble" in text and "Transfer Syntax" in text and "odd length" in text
    fixed = pydicom.dcmread(tmp_path / "fixed.dcm")
    assert fixed.preamble is not None and fixed.file_meta.TransferSyntaxUID == (
        ExplicitVRLittleEndian
    )
    assert np.array_equal(fixed.pixel_array, decoded(source))
    assert str(fixed.PatientName) == "ODD"


def test_package_import_is_light() -> None:
    code = (
        "import sys, node.tools.convert; print(sorted({'numpy','gdcm','PIL'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
