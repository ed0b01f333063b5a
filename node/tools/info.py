"""What ``gdcminfo`` tells about an image: class, syntax, geometry, pixel format, checksums.

``md5sum`` hashes the *decoded* pixel values (all frames, little-endian, C order), not the
stored bytes, so it is the same before and after a lossless conversion (JPEG-LS, JPEG 2000
reversible, RLE, another byte order) and changes with a lossy one: what a user checking a
transcode wants to know.  ``check_compression`` reads the codestream headers of the first
frame (JPEG process, JPEG-LS NEAR, JPEG 2000 wavelet) to say lossless or lossy, whatever
the transfer syntax claims.

Exceptions::

    InfoError
     +-- NoPixelData          the dataset has no Pixel Data to hash or check
     +-- PixelDecodeError     the pixel data cannot be decoded (no codec, damaged stream)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.pixels import pixel_array
from pydicom.uid import UID

__all__ = [
    "CompressionCheck",
    "ImageInfo",
    "InfoError",
    "NoPixelData",
    "PixelDecodeError",
    "check_compression",
    "format_info",
    "image_info",
    "orientation_label",
    "pixel_md5",
]


class InfoError(Exception):
    """Base of this module's errors."""


class NoPixelData(InfoError):
    """The dataset has no Pixel Data."""


class PixelDecodeError(InfoError):
    """The Pixel Data cannot be decoded."""


@dataclass(frozen=True)
class CompressionCheck:
    codec: str  #: "none", "RLE", "JPEG", "JPEG-LS", "JPEG 2000", "deflate", other
    lossless: bool
    detail: str


@dataclass(frozen=True)
class ImageInfo:
    sop_class_uid: str | None
    sop_class_name: str | None
    sop_instance_uid: str | None
    transfer_syntax_uid: str | None
    transfer_syntax_name: str | None
    modality: str | None
    columns: int | None
    rows: int | None
    frames: int
    samples_per_pixel: int | None
    bits_allocated: int | None
    bits_stored: int | None
    high_bit: int | None
    pixel_representation: int | None
    scalar_type: str | None
    photometric_interpretation: str | None
    planar_configuration: int | None
    origin: tuple[float, float, float] | None
    spacing: tuple[float, float, float] | None
    direction_cosines: tuple[float, ...] | None
    orientation: str | None
    rescale_intercept: float | None
    rescale_slope: float | None
    lossy_image_compression: str | None
    md5sum: str | None = None
    compression: CompressionCheck | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- geometry


def _functional(ds: Dataset, sequence: str, keyword: str) -> Any:
    """An attribute from shared, then first per-frame, functional groups (enhanced IODs)."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(groups)
        if not items:
            continue
        inner = items[0].get(sequence)
        if inner and keyword in inner[0]:
            return inner[0][keyword].value
    return None


def _floats(value: Any, count: int) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        values = tuple(
            float(v)
            for v in (
                value
                if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue"
                else [value]
            )
        )
    except (TypeError, ValueError):
        return None
    return values if len(values) == count else None


def orientation_label(cosines: tuple[float, ...] | None, threshold: float = 0.8) -> str | None:
    """AXIAL, CORONAL, SAGITTAL or OBLIQUE from the row/column direction cosines.

    As ``gdcm::Orientation``: each vector's major patient axis counts only when its cosine
    passes the obliquity threshold.
    """
    if cosines is None or len(cosines) != 6:
        return None

    def axis(vector: tuple[float, ...]) -> str | None:
        index = max(range(3), key=lambda i: abs(vector[i]))
        return "LPH"[index] if abs(vector[index]) > threshold else None

    row, col = axis(cosines[:3]), axis(cosines[3:])
    pair = {row, col}
    if pair == {"L", "P"}:
        return "AXIAL"
    if pair == {"L", "H"}:
        return "CORONAL"
    if pair == {"P", "H"}:
        return "SAGITTAL"
    return "OBLIQUE"


def _scalar_type(ds: Dataset) -> str | None:
    bits = ds.get("BitsAllocated")
    if bits is None:
        return None
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    if int(bits) == 1:
        return "SINGLEBIT"
    if int(bits) in (8, 16, 32, 64):
        return f"{'INT' if signed else 'UINT'}{int(bits)}"
    return f"UNKNOWN{int(bits)}"


def _opt_int(ds: Dataset, keyword: str) -> int | None:
    value = ds.get(keyword)
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _opt_float(value: Any) -> float | None:
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def image_info(ds: Dataset, *, md5sum: bool = False, compression: bool = False) -> ImageInfo:
    """Everything gdcminfo shows (and the optional checks) for one dataset."""
    meta = getattr(ds, "file_meta", None)
    sop_class = ds.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta else None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    pixel_spacing = _floats(ds.get("PixelSpacing"), 2) or _floats(
        _functional(ds, "PixelMeasuresSequence", "PixelSpacing"), 2
    )
    thickness = _opt_float(ds.get("SpacingBetweenSlices")) or _opt_float(
        _functional(ds, "PixelMeasuresSequence", "SpacingBetweenSlices")
    )
    spacing = None
    if pixel_spacing is not None:
        # DICOM stores (row spacing, column spacing); x comes first for the user.
        spacing = (pixel_spacing[1], pixel_spacing[0], thickness or 1.0)
    origin = _floats(ds.get("ImagePositionPatient"), 3) or _floats(
        _functional(ds, "PlanePositionSequence", "ImagePositionPatient"), 3
    )
    cosines = _floats(ds.get("ImageOrientationPatient"), 6) or _floats(
        _functional(ds, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
    )
    intercept = _opt_float(ds.get("RescaleIntercept"))
    slope = _opt_float(ds.get("RescaleSlope"))
    if intercept is None and slope is None:
        intercept = _opt_float(
            _functional(ds, "PixelValueTransformationSequence", "RescaleIntercept")
        )
        slope = _opt_float(_functional(ds, "PixelValueTransformationSequence", "RescaleSlope"))
    photometric = ds.get("PhotometricInterpretation")
    return ImageInfo(
        sop_class_uid=str(sop_class) if sop_class else None,
        sop_class_name=UID(str(sop_class)).name if sop_class else None,
        sop_instance_uid=str(ds.get("SOPInstanceUID")) if "SOPInstanceUID" in ds else None,
        transfer_syntax_uid=str(ts) if ts else None,
        transfer_syntax_name=UID(str(ts)).name if ts else None,
        modality=str(ds.get("Modality")) if ds.get("Modality") else None,
        columns=_opt_int(ds, "Columns"),
        rows=_opt_int(ds, "Rows"),
        frames=_opt_int(ds, "NumberOfFrames") or 1,
        samples_per_pixel=_opt_int(ds, "SamplesPerPixel"),
        bits_allocated=_opt_int(ds, "BitsAllocated"),
        bits_stored=_opt_int(ds, "BitsStored"),
        high_bit=_opt_int(ds, "HighBit"),
        pixel_representation=_opt_int(ds, "PixelRepresentation"),
        scalar_type=_scalar_type(ds),
        photometric_interpretation=str(photometric).strip() if photometric else None,
        planar_configuration=_opt_int(ds, "PlanarConfiguration"),
        origin=origin,  # type: ignore[arg-type]
        spacing=spacing,
        direction_cosines=cosines,
        orientation=orientation_label(cosines),
        rescale_intercept=intercept,
        rescale_slope=slope,
        lossy_image_compression=str(ds.get("LossyImageCompression"))
        if ds.get("LossyImageCompression")
        else None,
        md5sum=pixel_md5(ds) if md5sum else None,
        compression=check_compression(ds) if compression else None,
    )


# --------------------------------------------------------------------------- pixels


def pixel_md5(ds: Dataset) -> str:
    """md5 of the decoded pixel values (see the module docstring)."""
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise NoPixelData("no Pixel Data")
    try:
        # raw=True: values as stored, no YCbCr -> RGB conversion a codec did not do.
        array = pixel_array(ds, raw=True)
    except Exception as exc:  # pydicom raises many kinds for missing codecs / bad streams
        raise PixelDecodeError(f"cannot decode the pixel data: {exc}") from exc
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and not _little()):
        array = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.md5(array.tobytes()).hexdigest()


def _little() -> bool:
    import sys

    return sys.byteorder == "little"


# --------------------------------------------------------------------------- codestreams


def _first_frame(ds: Dataset) -> bytes:
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return next(generate_frames(ds.PixelData, number_of_frames=frames))


def _jpeg_markers(data: bytes) -> list[tuple[int, bytes]]:
    """(marker, segment) pairs of a JPEG / JPEG-LS stream, up to the first scan header."""
    out: list[tuple[int, bytes]] = []
    offset = 2 if data[:2] == b"\xff\xd8" else 0
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            offset += 1
            continue
        marker = data[offset + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            offset += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[offset + 2 : offset + 4])
        out.append((marker, data[offset + 4 : offset + 2 + length]))
        if marker == 0xDA:
            break
        offset += 2 + length
    return out


def _check_jpeg(data: bytes) -> CompressionCheck:
    markers = _jpeg_markers(data)
    sof = next(
        (m for m, _ in markers if m in range(0xC0, 0xD0) and m not in (0xC4, 0xC8, 0xCC)), None
    )
    if any(m == 0xF7 for m, _ in markers):  # SOF55: JPEG-LS
        sos = next((seg for m, seg in markers if m == 0xDA), None)
        if sos is None:
            raise InfoError("JPEG-LS stream without a scan header")
        components = sos[0]
        near = sos[1 + 2 * components]
        return CompressionCheck("JPEG-LS", near == 0, f"NEAR={near}")
    if sof is None:
        raise InfoError("no JPEG frame header found")
    lossless = sof in (0xC3, 0xC7, 0xCB, 0xCF)
    process = {0xC0: "baseline", 0xC1: "extended", 0xC2: "progressive", 0xC3: "lossless"}
    return CompressionCheck("JPEG", lossless, f"SOF{sof - 0xC0} ({process.get(sof, 'other')})")


def _check_j2k(data: bytes) -> CompressionCheck:
    start = data.find(b"\xff\x4f\xff\x51")  # SOC + SIZ (a JP2 box header may come first)
    if start < 0:
        raise InfoError("no JPEG 2000 codestream found")
    offset = start + 2
    while offset + 4 <= len(data):
        marker, length = struct.unpack(">HH", data[offset : offset + 4])
        if marker == 0xFF52:  # COD
            segment = data[offset + 4 : offset + 2 + length]
            # Scod(1) progression(1) layers(2) MCT(1) levels(1) cbw(1) cbh(1) style(1) wavelet(1)
            wavelet = segment[9]
            reversible = wavelet == 1
            return CompressionCheck(
                "JPEG 2000",
                reversible,
                "5/3 reversible wavelet" if reversible else "9/7 irreversible wavelet",
            )
        if marker in (0xFF90, 0xFF93):  # tile part / start of data: no COD before
            break
        offset += 2 + length
    raise InfoError("JPEG 2000 codestream without a COD marker")


def check_compression(ds: Dataset) -> CompressionCheck:
    """Lossless or lossy, from the first frame's codestream (not from the UID).

    A reversible codestream can still hold data that went through a lossy step (a JPEG
    2000 5/3 stream truncated by rate control, or a lossy original recompressed): when
    Lossy Image Compression (0028,2110) is "01" the answer is lossy, as gdcminfo says.
    """
    check = _check_stream(ds)
    if check.lossless and str(ds.get("LossyImageCompression", "")).strip() == "01":
        return CompressionCheck(
            check.codec, False, f"{check.detail}; LossyImageCompression (0028,2110) is 01"
        )
    return check


def _check_stream(ds: Dataset) -> CompressionCheck:
    if "PixelData" not in ds:
        raise NoPixelData("no Pixel Data")
    meta = getattr(ds, "file_meta", None)
    ts = UID(str(meta.get("TransferSyntaxUID", ""))) if meta is not None else UID("")
    if not ts or not ts.is_transfer_syntax or not ts.is_compressed:
        return CompressionCheck("none", True, "not compressed")
    if ts.is_deflated:
        return CompressionCheck("deflate", True, "deflated data set")
    if ts == "1.2.840.10008.1.2.5":
        return CompressionCheck("RLE", True, "RLE is always lossless")
    try:
        frame = _first_frame(ds)
    except Exception as exc:
        raise PixelDecodeError(f"cannot read the encapsulated frames: {exc}") from exc
    if frame.find(b"\xff\x4f\xff\x51") >= 0 and ts.name.startswith(("JPEG 2000", "High")):
        return _check_j2k(frame)
    if frame[:2] == b"\xff\xd8":
        return _check_jpeg(frame)
    if frame.find(b"\xff\x4f\xff\x51") >= 0:
        return _check_j2k(frame)
    return CompressionCheck(ts.name or str(ts), False, "codec not inspected")


# --------------------------------------------------------------------------- text


def _tuple(values: tuple[float, ...] | None) -> str:
    if values is None:
        return "(none)"
    return "(" + ",".join(format(v, "g") for v in values) + ")"


def format_info(info: ImageInfo) -> list[str]:
    """Lines in gdcminfo's order and wording."""
    lines = [
        f"MediaStorage is {info.sop_class_uid} [{info.sop_class_name or 'unknown'}]",
        f"TransferSyntax is {info.transfer_syntax_uid} [{info.transfer_syntax_name or '?'}]",
    ]
    if info.modality:
        lines.append(f"Modality: {info.modality}")
    if info.columns is None:
        lines.append("(no image)")
    else:
        dims = 3 if info.frames > 1 else 2
        lines += [
            f"NumberOfDimensions: {dims}",
            f"Dimensions: ({info.columns},{info.rows},{info.frames})",
            f"SamplesPerPixel    :{info.samples_per_pixel}",
            f"BitsAllocated      :{info.bits_allocated}",
            f"BitsStored         :{info.bits_stored}",
            f"HighBit            :{info.high_bit}",
            f"PixelRepresentation:{info.pixel_representation}",
            f"ScalarType found   :{info.scalar_type}",
            f"PhotometricInterpretation: {info.photometric_interpretation}",
            f"PlanarConfiguration: {info.planar_configuration or 0}",
            f"Origin: {_tuple(info.origin)}",
            f"Spacing: {_tuple(info.spacing)}",
            f"DirectionCosines: {_tuple(info.direction_cosines)}",
        ]
        if info.rescale_intercept is not None or info.rescale_slope is not None:
            intercept = info.rescale_intercept if info.rescale_intercept is not None else 0.0
            slope = info.rescale_slope if info.rescale_slope is not None else 1.0
            lines.append(f"Rescale Intercept/Slope: ({intercept:g},{slope:g})")
        if info.orientation:
            lines.append(f"Orientation Label: {info.orientation}")
    if info.lossy_image_compression:
        lines.append(f"LossyImageCompression: {info.lossy_image_compression}")
    if info.md5sum:
        lines.append(f"md5sum: {info.md5sum}")
    if info.compression is not None:
        verdict = "lossless" if info.compression.lossless else "lossy"
        lines.append(
            f"Compression: {info.compression.codec}: {verdict} ({info.compression.detail})"
        )
    return lines
