"""Read image files into pixel frames for img2dcm: JPEG (kept as is), BMP, PNG, PNM, RAW.

JPEG is never decoded: the codestream goes into the DICOM object unchanged
(DCMTK img2dcm's behaviour), only the JFIF APP0 segment is dropped, other APPn
segments too unless asked to keep them, and COM segments on request. Everything
else is read into a numpy array: PNM by hand (so a maxval of 4095 gives 12 bits
stored), BMP and PNG through Pillow, RAW from the geometry the user gives.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydicom.uid import UID

from node.tools.convert.errors import InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "JpegOptions",
    "JpegStream",
    "RawSpec",
    "SourceImage",
    "detect_format",
    "parse_jpeg",
    "read_image",
]

_JPEG_SYNTAX = {
    0xC0: ("baseline", UID("1.2.840.10008.1.2.4.50")),
    0xC1: ("extended", UID("1.2.840.10008.1.2.4.51")),
    0xC2: ("progressive", UID("1.2.840.10008.1.2.4.55")),
}
_STANDALONE = {0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)}


@dataclass(frozen=True)
class JpegOptions:
    """DCMTK img2dcm's JPEG input options."""

    keep_appn: bool = False
    insist_on_jfif: bool = False
    remove_com: bool = False
    disable_progressive: bool = False
    disable_extended: bool = False


@dataclass(frozen=True)
class JpegStream:
    """A JPEG file cut down to what goes into the DICOM fragment."""

    data: bytes
    process: str
    syntax: UID
    precision: int
    rows: int
    columns: int
    components: int
    photometric: str
    scan: bytes  # from the first SOS to the end: must reach DICOM unchanged
    removed: tuple[str, ...]


@dataclass(frozen=True)
class RawSpec:
    """Geometry of a headerless raw file (gdcmimg's options)."""

    columns: int
    rows: int
    frames: int = 1
    depth: int = 8  # 8, 16 or 32 = Bits Allocated; otherwise Bits Stored (12 -> 16/12)
    samples: int = 1
    big_endian: bool = False
    signed: bool = False
    offset: int = 0


@dataclass
class SourceImage:
    """One input image: a JPEG stream or decoded frames, with its Image Pixel values."""

    path: Path
    rows: int
    columns: int
    samples: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    frames: list[np.ndarray] | None = None
    jpeg: JpegStream | None = None
    notes: tuple[str, ...] = ()

    @property
    def frame_count(self) -> int:
        return 1 if self.jpeg is not None else len(self.frames or [])

    def geometry(self) -> tuple[int, int, int, str, int, int, int]:
        return (
            self.rows,
            self.columns,
            self.samples,
            self.photometric,
            self.bits_allocated,
            self.bits_stored,
            self.pixel_representation,
        )


def detect_format(data: bytes) -> str:
    """Guess the format from magic bytes: jpeg, bmp, png, pnm or '' (raw or unknown)."""
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:2] == b"BM":
        return "bmp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if len(data) >= 2 and data[0:1] == b"P" and data[1:2] in b"123456":
        return "pnm"
    return ""


def parse_jpeg(data: bytes, options: JpegOptions, name: str = "JPEG") -> JpegStream:
    """Check a JPEG file and cut out what DICOM does not want, without decoding it."""
    if data[:2] != b"\xff\xd8":
        raise InputError(f"{name}: not a JPEG file (no SOI marker)")
    kept = [b"\xff\xd8"]
    removed: list[str] = []
    position = 2
    sof: tuple[int, bytes] | None = None
    jfif = False
    adobe_transform: int | None = None
    while True:
        if position + 4 > len(data) or data[position] != 0xFF:
            raise InputError(f"{name}: corrupt JPEG (bad marker at byte {position})")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in _STANDALONE:
            raise InputError(f"{name}: unexpected JPEG marker FF{marker:02X} before the scan")
        (length,) = struct.unpack(">H", data[position + 2 : position + 4])
        segment = data[position : position + 2 + length]
        if len(segment) != 2 + length:
            raise InputError(f"{name}: truncated JPEG segment FF{marker:02X}")
        payload = segment[4:]
        if marker == 0xDA:  # start of scan: the rest goes through untouched
            break
        keep = True
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            sof = (marker, payload)
        elif marker == 0xE0 and payload.startswith(b"JFIF\x00"):
            jfif = True
            keep = False
            removed.append("JFIF APP0")
        elif 0xE0 <= marker <= 0xEF:
            if marker == 0xEE and payload.startswith(b"Adobe") and len(payload) >= 12:
                adobe_transform = payload[11]
            if not options.keep_appn:
                keep = False
                removed.append(f"APP{marker - 0xE0}")
        elif marker == 0xFE and options.remove_com:
            keep = False
            removed.append("COM")
        if keep:
            kept.append(segment)
        position += 2 + length

    if sof is None:
        raise InputError(f"{name}: no frame header (SOF) before the scan")
    if options.insist_on_jfif and not jfif:
        raise InputError(f"{name}: no JFIF header (--insist-on-jfif)")
    marker, payload = sof
    if marker not in _JPEG_SYNTAX:
        kind = "lossless" if marker in (0xC3, 0xC7, 0xCB, 0xCF) else "arithmetic/hierarchical"
        raise InputError(f"{name}: {kind} JPEG (SOF{marker - 0xC0}) is not supported")
    process, syntax = _JPEG_SYNTAX[marker]
    if process == "progressive" and options.disable_progressive:
        raise InputError(f"{name}: progressive JPEG refused (--disable-progr)")
    if process == "extended" and options.disable_extended:
        raise InputError(f"{name}: extended sequential JPEG refused (--disable-ext)")
    precision, rows, columns, components = struct.unpack(">BHHB", payload[:6])
    if rows == 0:
        raise InputError(f"{name}: JPEG with the height in a DNL marker is not supported")
    if components not in (1, 3):
        raise InputError(f"{name}: {components}-component JPEG (only 1 or 3 are DICOM)")
    if precision not in (8, 12):
        raise InputError(f"{name}: {precision}-bit lossy JPEG is not valid")
    ids = [payload[6 + 3 * i] for i in range(components)]
    if components == 1:
        photometric = "MONOCHROME2"
    elif adobe_transform == 0 or ids == [ord("R"), ord("G"), ord("B")]:
        photometric = "RGB"
    else:
        photometric = "YBR_FULL_422"  # what DCMTK writes for YCbCr JPEG, any subsampling
    scan = data[position:]
    end = scan.rfind(b"\xff\xd9")
    if end < 0:
        raise InputError(f"{name}: no EOI marker: truncated JPEG")
    scan = scan[: end + 2]
    return JpegStream(
        data=b"".join(kept) + scan,
        process=process,
        syntax=syntax,
        precision=precision,
        rows=rows,
        columns=columns,
        components=components,
        photometric=photometric,
        scan=scan,
        removed=tuple(removed),
    )


_PNM_HEADER = re.compile(rb"\A(P[1-6])((?:\s+|#[^\n]*\n)+)")


def _pnm_tokens(data: bytes, count: int) -> tuple[list[int], int]:
    """Read `count` integers after the magic number, skipping comments."""
    position = 2
    values: list[int] = []
    while len(values) < count:
        while position < len(data) and (data[position : position + 1].isspace()):
            position += 1
        if data[position : position + 1] == b"#":
            position = data.find(b"\n", position) + 1
            if position == 0:
                raise InputError("truncated PNM header")
            continue
        start = position
        while position < len(data) and data[position : position + 1].isdigit():
            position += 1
        if start == position:
            raise InputError("bad PNM header")
        values.append(int(data[start:position]))
    return values, position + 1  # exactly one whitespace after the header


def _read_pnm(path: Path, data: bytes) -> SourceImage:
    import numpy as np

    magic = data[:2].decode()
    if magic in ("P1", "P4"):
        return _read_pillow(path, data)
    columns, rows, maxval = _pnm_tokens(data, 3)[0]
    _, start = _pnm_tokens(data, 3)
    samples = 3 if magic in ("P3", "P6") else 1
    if not 0 < maxval < 65536:
        raise InputError(f"{path}: PNM maxval {maxval} out of range")
    count = rows * columns * samples
    if magic in ("P5", "P6"):
        dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
        raw = data[start : start + count * dtype.itemsize]
        if len(raw) != count * dtype.itemsize:
            raise InputError(f"{path}: truncated PNM pixel data")
        arr = np.frombuffer(raw, dtype=dtype)
    else:
        arr = np.array(data[start:].split()[:count], dtype=np.int64)
        if arr.size != count:
            raise InputError(f"{path}: truncated PNM pixel data")
    bits = max(8, maxval.bit_length()) if maxval > 255 else 8
    allocated = 16 if maxval > 255 else 8
    if samples == 3 and allocated != 8:
        raise InputError(f"{path}: 16-bit colour PNM has no Secondary Capture form")
    arr = arr.astype(np.uint16 if allocated == 16 else np.uint8)
    shape = (rows, columns, 3) if samples == 3 else (rows, columns)
    return SourceImage(
        path=path,
        rows=rows,
        columns=columns,
        samples=samples,
        photometric="RGB" if samples == 3 else "MONOCHROME2",
        bits_allocated=allocated,
        bits_stored=bits,
        pixel_representation=0,
        frames=[arr.reshape(shape)],
    )


def _read_pillow(path: Path, data: bytes) -> SourceImage:
    import io

    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read image: {exc}") from None
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25:
        bit_depth, colour_type = data[24], data[25]
        if bit_depth == 16 and colour_type in (2, 6):
            raise InputError(f"{path}: 16-bit colour PNG has no Secondary Capture form")
    notes: list[str] = []
    if getattr(image, "n_frames", 1) > 1:
        notes.append("only the first frame of a multi-image file is used")
    mode = image.mode
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        notes.append("alpha channel dropped")
    if mode == "P":
        palette = image.getpalette() or []
        entries = np.array(palette, dtype=np.uint8).reshape(-1, 3)
        used = np.unique(np.asarray(image))
        grey = bool(
            np.all(entries[used, 0] == entries[used, 1])
            and np.all(entries[used, 1] == entries[used, 2])
        )
        image = image.convert("L" if grey else "RGB")
    elif mode == "PA":
        image = image.convert("RGB")
    elif mode in ("1", "LA"):
        image = image.convert("L")
    elif mode in ("RGBA", "CMYK", "YCbCr"):
        image = image.convert("RGB")

    mode = image.mode
    if mode == "L":
        arr = np.asarray(image, dtype=np.uint8)
        samples, photometric, allocated, stored = 1, "MONOCHROME2", 8, 8
    elif mode == "RGB":
        arr = np.asarray(image, dtype=np.uint8)
        samples, photometric, allocated, stored = 3, "RGB", 8, 8
    elif mode.startswith("I;16") or mode == "I":
        arr = np.asarray(image)
        if arr.min() < 0 or arr.max() > 65535:
            raise InputError(f"{path}: 32-bit integer image values do not fit 16 bits")
        arr = arr.astype(np.uint16)
        samples, photometric, allocated, stored = 1, "MONOCHROME2", 16, 16
    else:
        raise InputError(f"{path}: image mode {mode} is not supported")
    return SourceImage(
        path=path,
        rows=arr.shape[0],
        columns=arr.shape[1],
        samples=samples,
        photometric=photometric,
        bits_allocated=allocated,
        bits_stored=stored,
        pixel_representation=0,
        frames=[np.ascontiguousarray(arr)],
        notes=tuple(notes),
    )


def _read_raw(path: Path, data: bytes, spec: RawSpec) -> SourceImage:
    import numpy as np

    if spec.depth in (8, 16, 32):
        allocated = stored = spec.depth
    elif 1 < spec.depth < 8:
        allocated, stored = 8, spec.depth
    elif 8 < spec.depth < 16:
        allocated, stored = 16, spec.depth
    else:
        raise InputError(f"raw depth {spec.depth} is not supported (8, 16, 32 or 2..15)")
    if spec.samples not in (1, 3):
        raise InputError("raw samples per pixel must be 1 or 3")
    kind = "i" if spec.signed else "u"
    order = ">" if spec.big_endian else "<"
    dtype = np.dtype(f"{order}{kind}{allocated // 8}")
    per_frame = spec.rows * spec.columns * spec.samples
    needed = per_frame * spec.frames * dtype.itemsize
    payload = data[spec.offset : spec.offset + needed]
    if len(payload) < needed:
        raise InputError(
            f"{path}: raw file holds {len(data) - spec.offset} bytes after the offset, "
            f"{needed} needed for {spec.frames} frame(s) of {spec.columns}x{spec.rows}"
        )
    arr = np.frombuffer(payload, dtype=dtype).astype(dtype.newbyteorder("<"))
    if stored < allocated:
        low, high = (
            (-(2 ** (stored - 1)), 2 ** (stored - 1) - 1) if spec.signed else (0, 2**stored - 1)
        )
        if arr.size and (arr.min() < low or arr.max() > high):
            raise InputError(
                f"{path}: values {arr.min()}..{arr.max()} do not fit {stored} bits (--depth)"
            )
    shape = (spec.rows, spec.columns, 3) if spec.samples == 3 else (spec.rows, spec.columns)
    frames = [arr[i * per_frame : (i + 1) * per_frame].reshape(shape) for i in range(spec.frames)]
    return SourceImage(
        path=path,
        rows=spec.rows,
        columns=spec.columns,
        samples=spec.samples,
        photometric="RGB" if spec.samples == 3 else "MONOCHROME2",
        bits_allocated=allocated,
        bits_stored=stored,
        pixel_representation=int(spec.signed),
        frames=frames,
    )


def read_image(
    path: Path,
    *,
    input_format: str | None = None,
    jpeg_options: JpegOptions | None = None,
    raw: RawSpec | None = None,
) -> SourceImage:
    """Read one input image. `input_format` overrides detection (jpeg, bmp, png, pnm, raw)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: {exc.strerror or exc}") from None
    fmt = (input_format or "").lower() or detect_format(data)
    if not fmt and raw is not None:
        fmt = "raw"
    if fmt == "raw":
        if raw is None:
            raise InputError(f"{path}: raw input needs --size W,H")
        return _read_raw(path, data, raw)
    if fmt in ("jpeg", "jpg"):
        stream = parse_jpeg(data, jpeg_options or JpegOptions(), str(path))
        return SourceImage(
            path=path,
            rows=stream.rows,
            columns=stream.columns,
            samples=stream.components,
            photometric=stream.photometric,
            bits_allocated=8 if stream.precision == 8 else 16,
            bits_stored=stream.precision,
            pixel_representation=0,
            jpeg=stream,
            notes=tuple(f"{what} removed" for what in stream.removed),
        )
    if fmt == "pnm":
        return _read_pnm(path, data)
    if fmt in ("bmp", "png"):
        return _read_pillow(path, data)
    raise InputError(f"{path}: unknown image format (give --input-format, or --size for raw)")
