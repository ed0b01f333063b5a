"""Rendering on synthetic images: each stage of the greyscale pipeline, colour models,
frames, overlays, sizes and the output writers.  Comparisons with DCMTK are in
``test_render_dcmtk.py``."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, generate_uid

from node.tools.render import (
    InvalidOption,
    NoPixelData,
    OutputFormatError,
    RenderOptions,
    UnsupportedImage,
    encode_image,
    output_paths,
    render,
    render_file,
)
from node.tools.render._geometry import target_size
from node.tools.render._grey import ValueStats

# -- synthetic images -----------------------------------------------------------------------


def grey(values: np.ndarray, *, bits: int = 12, signed: bool = False, **attrs: object) -> Dataset:
    """A MONOCHROME2 image of ``values`` (2-D, or 3-D for frames)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid()
    frames = values.shape[0] if values.ndim == 3 else 1
    if values.ndim == 3:
        ds.NumberOfFrames = frames
    ds.Rows, ds.Columns = values.shape[-2:]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16 if bits > 8 else 8
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = int(signed)
    dtype = f"<{'i' if signed else 'u'}{ds.BitsAllocated // 8}"
    ds.PixelData = values.astype(dtype).tobytes()
    for keyword, value in attrs.items():
        setattr(ds, keyword, value)
    return ds


def colour(rgb: np.ndarray, photometric: str = "RGB", planar: int = 0) -> Dataset:
    ds = grey(np.zeros(rgb.shape[:2]), bits=8)
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = photometric
    ds.PlanarConfiguration = planar
    data = rgb.transpose(2, 0, 1) if planar else rgb
    ds.PixelData = np.ascontiguousarray(data).astype(np.uint8).tobytes()
    return ds


RAMP = np.arange(0, 4096, 16, dtype=np.int32).reshape(16, 16)


def one(ds: Dataset, **options: object) -> np.ndarray:
    frames = render(ds, RenderOptions(**options))  # type: ignore[arg-type]
    assert len(frames) == 1
    return frames[0].image


# -- greyscale pipeline ---------------------------------------------------------------------


def reference_window(x: np.ndarray, c: float, w: float, top: int = 255) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 with DCMTK's term order (``offset + x * gradient``), truncated."""
    x = np.asarray(x, dtype=float)
    offset = top - ((c - 0.5) / (w - 1) + 0.5) * top
    y = offset + x * (top / (w - 1))
    y = np.where(x <= c - 0.5 - (w - 1) / 2, 0, np.where(x > c - 0.5 + (w - 1) / 2, top, y))
    naive = ((x - (c - 0.5)) / (w - 1) + 0.5) * top  # the standard's own form
    inside = (x > c - 0.5 - (w - 1) / 2) & (x <= c - 0.5 + (w - 1) / 2)
    assert np.abs(naive - y)[inside].max(initial=0) < 1e-6
    return np.trunc(y).astype(int)


def test_linear_window_from_file_and_option() -> None:
    ds = grey(RAMP, WindowCenter=[2048, 1000], WindowWidth=[1024, 500])
    np.testing.assert_array_equal(one(ds), reference_window(RAMP, 2048, 1024))
    np.testing.assert_array_equal(one(ds, window=2), reference_window(RAMP, 1000, 500))
    np.testing.assert_array_equal(
        one(ds, center=300.0, width=200.0), reference_window(RAMP, 300, 200)
    )
    with pytest.raises(InvalidOption, match="window 3"):
        one(ds, window=3)


def test_rescale_then_window() -> None:
    ds = grey(RAMP, RescaleSlope=1, RescaleIntercept=-1024, WindowCenter=40, WindowWidth=400)
    np.testing.assert_array_equal(one(ds), reference_window(RAMP - 1024.0, 40, 400))
    # DCMTK keeps modality values in an integer type: non-integer rescale is truncated
    ds = grey(RAMP, RescaleSlope=0.7, RescaleIntercept=3.3, WindowCenter=1400, WindowWidth=2000)
    np.testing.assert_array_equal(one(ds), reference_window(np.trunc(RAMP * 0.7 + 3.3), 1400, 2000))


def test_modality_lut_sequence() -> None:
    item = Dataset()
    item.LUTDescriptor = [256, 0, 12]
    item.LUTData = [4095 - 16 * i for i in range(256)]  # an inverting LUT on the top byte
    ds = grey(RAMP // 16, bits=8, ModalityLUTSequence=[item], WindowCenter=2048, WindowWidth=4096)
    expected = reference_window(4095.0 - 16 * (RAMP // 16), 2048, 4096)
    np.testing.assert_array_equal(one(ds), expected)


def test_voi_lut_sequence() -> None:
    item = Dataset()
    item.LUTDescriptor = [4096, 0, 8]
    item.LUTData = [min(255, v // 8) for v in range(4096)]
    ds = grey(RAMP, VOILUTSequence=[item])
    expected = np.trunc(np.minimum(255, RAMP // 8) / 255 * 255).astype(int)
    np.testing.assert_array_equal(one(ds), expected)
    np.testing.assert_array_equal(one(ds, voi_lut=1), expected)


def test_voi_functions() -> None:
    ds = grey(RAMP, WindowCenter=2048, WindowWidth=1000, VOILUTFunction="SIGMOID")
    sigmoid = one(ds).astype(float)
    expected = 255 / (1 + np.exp(-4 * (RAMP - 2048) / 1000))
    assert np.abs(sigmoid - expected).max() <= 1
    ds.VOILUTFunction = "LINEAR_EXACT"
    exact = one(ds).astype(float)
    expected = np.clip((RAMP - 2048) / 1000 + 0.5, 0, 1) * 255
    assert np.abs(exact - expected).max() <= 1


def test_monochrome1_and_presentation_lut_shape() -> None:
    normal = one(grey(RAMP, WindowCenter=2048, WindowWidth=4096))
    mono1 = one(
        grey(RAMP, WindowCenter=2048, WindowWidth=4096, PhotometricInterpretation="MONOCHROME1")
    )
    inverse = one(grey(RAMP, WindowCenter=2048, WindowWidth=4096, PresentationLUTShape="INVERSE"))
    # DCMTK inverts by swapping the output range: trunc(255 - v), not 255 - trunc(v)
    x = RAMP.astype(float)
    expected = np.trunc(255 - ((x - 2047.5) / 4095 + 0.5) * 255).astype(int)
    np.testing.assert_array_equal(mono1, expected)
    np.testing.assert_array_equal(inverse, expected)
    assert (np.abs(mono1.astype(int) + normal - 255) <= 1).all()
    both = grey(RAMP, WindowCenter=2048, WindowWidth=4096, PresentationLUTShape="INVERSE",
                PhotometricInterpretation="MONOCHROME1")  # fmt: skip
    np.testing.assert_array_equal(one(both), expected)  # inverted once


def test_automatic_windows_follow_dcmtk() -> None:
    values = np.array([[0, 10, 10, 20], [20, 20, 30, 1000]])
    stats = ValueStats()
    stats.update(values.astype(float))
    assert stats.minmax_window() == ((0 + 1000 + 1) / 2, 1001)
    # 25 % of 8 pixels = 2: the minimum is the bin after the one reaching 2 from below (10
    # -> 11), the maximum the bin reaching 2 from above (30)
    assert stats.histogram_window(25.0) == ((11 + 30 + 1) / 2, 30 - 11 + 1)
    ds = grey(RAMP)  # no window in the file: histogram window, 1 %
    frame = render(ds)[0]
    assert frame.voi is not None and frame.voi.source == "histogram"
    assert frame.image.min() == 0 and frame.image.max() == 255
    flat = grey(np.full((4, 4), 7))
    assert render(flat)[0].voi.kind == "none"  # type: ignore[union-attr]


def test_signed_and_8_bit_images() -> None:
    signed = grey(RAMP - 2048, signed=True, WindowCenter=0, WindowWidth=4096)
    np.testing.assert_array_equal(one(signed), reference_window(RAMP - 2048.0, 0, 4096))
    eight = grey(RAMP // 16, bits=8, WindowCenter=128, WindowWidth=256)
    np.testing.assert_array_equal(one(eight), reference_window(RAMP // 16, 128, 256))


def test_16_bit_output() -> None:
    ds = grey(RAMP, WindowCenter=2048, WindowWidth=4096)
    image = one(ds, bits16=True)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, reference_window(RAMP, 2048, 4096, top=65535))


def test_functional_group_window_and_rescale_per_frame() -> None:
    frames = np.stack([RAMP, RAMP])
    ds = grey(frames)
    per_frame = []
    for slope, centre in ((1, 2048), (2, 4096)):
        item = Dataset()
        pvt = Dataset()
        pvt.RescaleSlope, pvt.RescaleIntercept, pvt.RescaleType = slope, 0, "US"
        voi = Dataset()
        voi.WindowCenter, voi.WindowWidth = centre, 2048 * slope
        item.PixelValueTransformationSequence = [pvt]
        item.FrameVOILUTSequence = [voi]
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = per_frame
    first, second = render(ds)
    np.testing.assert_array_equal(first.image, reference_window(RAMP, 2048, 2048))
    np.testing.assert_array_equal(second.image, reference_window(RAMP * 2.0, 4096, 4096))


# -- colour ---------------------------------------------------------------------------------

_COLUMNS, _ROWS = np.meshgrid(np.arange(0, 256, 32), np.arange(0, 256, 32))
RGB = np.stack([_COLUMNS, _ROWS, np.full((8, 8), 77)], -1)


def test_rgb_both_planar_configurations() -> None:
    np.testing.assert_array_equal(one(colour(RGB)), RGB)
    np.testing.assert_array_equal(one(colour(RGB, planar=1)), RGB)
    wide = one(colour(RGB), bits16=True)
    np.testing.assert_array_equal(wide, RGB.astype(np.uint16) * 257)


def test_ybr_full_to_rgb() -> None:
    y = 0.299 * RGB[..., 0] + 0.587 * RGB[..., 1] + 0.114 * RGB[..., 2]
    cb = 128 - 0.168736 * RGB[..., 0] - 0.331264 * RGB[..., 1] + 0.5 * RGB[..., 2]
    cr = 128 + 0.5 * RGB[..., 0] - 0.418688 * RGB[..., 1] - 0.081312 * RGB[..., 2]
    ybr = np.clip(np.rint(np.stack([y, cb, cr], -1)), 0, 255)
    out = one(colour(ybr, "YBR_FULL"))
    assert np.abs(out.astype(int) - RGB).max() <= 2


def _palette(ds: Dataset, big_endian: bool) -> Dataset:
    ds.PhotometricInterpretation = "PALETTE COLOR"
    order = ">u2" if big_endian else "<u2"
    for i, name in enumerate(("Red", "Green", "Blue")):
        setattr(ds, f"{name}PaletteColorLookupTableDescriptor", [256, 0, 16])
        table = (
            (np.arange(256) * 257 if i == 0 else (255 - np.arange(256)) * 257)
            if i < 2
            else np.full(256, 0x8000)
        )
        setattr(ds, f"{name}PaletteColorLookupTableData", table.astype(order).tobytes())
        ds[f"{name}PaletteColorLookupTableData"].VR = "OW"
    return ds


@pytest.mark.parametrize("big_endian", [False, True])
def test_palette_colour(tmp_path: Path, big_endian: bool) -> None:
    index = np.arange(256).reshape(16, 16)
    ds = _palette(grey(index, bits=8), big_endian)
    path = tmp_path / "pal.dcm"
    if big_endian:  # through a real Big Endian file: the LUT data is read in its byte order
        ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:
        ds.save_as(path, enforce_file_format=True)
    out = one(pydicom.dcmread(path))
    np.testing.assert_array_equal(out[..., 0], index)
    np.testing.assert_array_equal(out[..., 1], 255 - index)
    assert (out[..., 2] == 0x80).all()


# -- frames, overlays, sizes ----------------------------------------------------------------


def test_frames_and_output_names(tmp_path: Path) -> None:
    frames = np.stack([RAMP, RAMP[::-1], RAMP.T])
    ds = grey(frames, WindowCenter=2048, WindowWidth=4096)
    assert [f.index for f in render(ds)] == [0, 1, 2]
    second = render(ds, RenderOptions(frame=2))
    assert len(second) == 1 and second[0].index == 1
    np.testing.assert_array_equal(second[0].image, reference_window(RAMP[::-1], 2048, 4096))
    with pytest.raises(InvalidOption, match="frame 4"):
        render(ds, RenderOptions(frame=4))
    out = tmp_path / "f.png"
    assert output_paths(out, [0], 1) == [out]
    assert [p.name for p in output_paths(out, [0, 1], 3)] == ["f_0001.png", "f_0002.png"]
    assert output_paths(tmp_path / "f%03d.png", [4], 9)[0].name == "f005.png"
    assert output_paths(tmp_path / "f{frame}.png", [0], 1)[0].name == "f1.png"
    src = tmp_path / "multi.dcm"
    ds.save_as(src, enforce_file_format=True)
    written = render_file(src, tmp_path / "all.png")
    assert [p.name for p in written] == ["all_0001.png", "all_0002.png", "all_0003.png"]
    assert all(Image.open(p).size == (16, 16) for p in written)


def test_multiframe_auto_window_spans_all_frames() -> None:
    ds = grey(np.stack([RAMP // 2, RAMP]))
    low, high = render(ds, RenderOptions(minmax=True))
    assert low.voi == high.voi  # one window for the series of frames, as DCMTK's +Fa
    assert low.image.max() < high.image.max() == 255


def test_overlay_burned_in() -> None:
    ds = grey(np.zeros((8, 8), dtype=int), WindowCenter=2048, WindowWidth=4096)
    bits = np.zeros((4, 4), dtype=np.uint8)
    bits[1, 2] = 1
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60000040, "CS", "G")
    ds.add_new(0x60000050, "SS", [3, 2])  # origin row 3, column 2 (1-based)
    ds.add_new(0x60000100, "US", 1)
    ds.add_new(0x60000102, "US", 0)
    ds.add_new(0x60003000, "OW", np.packbits(bits.ravel(), bitorder="little").tobytes())
    plain = one(ds)
    burned = one(ds, overlays=True)
    assert plain.max() == 0
    assert burned[3, 3] == 255 and burned.sum() == 255  # row 2+1, column 1+2


def test_sizes() -> None:
    assert target_size(512, 256, (128, 128), None) == (128, 64)
    assert target_size(512, 256, (0, 64), None) == (128, 64)
    assert target_size(512, 256, None, 100) == (100, 50)
    assert target_size(50, 20, None, 100) == (50, 20)  # --max-size never enlarges
    with pytest.raises(InvalidOption):
        target_size(10, 10, (0, 0), None)
    ds = grey(np.tile(RAMP, (2, 4)), WindowCenter=2048, WindowWidth=4096)
    assert one(ds, max_size=32).shape == (16, 32)
    assert one(ds, scale=(16, 16), bits16=True).dtype == np.uint16


# -- errors and writers ---------------------------------------------------------------------


def test_errors(tmp_path: Path) -> None:
    sr = Dataset()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    with pytest.raises(NoPixelData):
        render(sr)
    odd = grey(RAMP)
    odd.PhotometricInterpretation = "HSV"
    with pytest.raises(UnsupportedImage):
        render(odd)
    src = tmp_path / "x.dcm"
    grey(RAMP).save_as(src, enforce_file_format=True)
    with pytest.raises(OutputFormatError, match="extension"):
        render_file(src, tmp_path / "x.bmp")
    with pytest.raises(OutputFormatError, match="16-bit"):
        render_file(src, tmp_path / "x.jpg", RenderOptions(bits16=True))


def _read_png16(data: bytes) -> np.ndarray:
    """A minimal PNG reader for our own 16-bit files (filter 0 on every row)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        assert struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0] == zlib.crc32(
            kind + body
        )
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour_type = struct.unpack(">IIBB", header[:10])
    assert depth == 16
    samples = 1 if colour_type == 0 else 3
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, -1)
    assert (raw[:, 0] == 0).all()
    values = raw[:, 1:].copy().view(">u2").reshape(height, width, samples)
    return values[..., 0] if samples == 1 else values


def test_writers(tmp_path: Path) -> None:
    grey16 = (RAMP * 16).astype(np.uint16)
    rgb16 = (RGB * 257).astype(np.uint16)
    np.testing.assert_array_equal(_read_png16(encode_image(grey16, "PNG")), grey16)
    np.testing.assert_array_equal(_read_png16(encode_image(rgb16, "PNG")), rgb16)
    pil16 = Image.open(__import__("io").BytesIO(encode_image(grey16, "PNG")))
    np.testing.assert_array_equal(np.asarray(pil16).astype(np.uint16), grey16)
    pgm = encode_image(grey16, "PNM")
    assert pgm.startswith(b"P5\n16 16\n65535\n")
    np.testing.assert_array_equal(np.frombuffer(pgm[-512:], ">u2").reshape(16, 16), grey16)
    assert encode_image(rgb16, "PNM").startswith(b"P6\n8 8\n65535\n")
    eight = RGB.astype(np.uint8)
    assert np.asarray(Image.open(__import__("io").BytesIO(encode_image(eight, "PNM")))).shape == (
        8,
        8,
        3,
    )
    small = encode_image(np.tile(eight, (8, 8, 1)), "JPEG", quality=10)
    large = encode_image(np.tile(eight, (8, 8, 1)), "JPEG", quality=95)
    assert len(small) < len(large)
    with pytest.raises(OutputFormatError):
        encode_image(grey16, "JPEG")
    with pytest.raises(OutputFormatError):
        encode_image(eight, "JPEG", quality=0)
