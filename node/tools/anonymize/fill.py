"""Blanking rectangles of pixel data (``--fill-region``), for burned-in names on ultrasound
and secondary captures, as ``gdcmimg --fill --region xmin,xmax,ymin,ymax`` does.

Why re-encode: compressed pixel data is decoded, filled, and encoded again in its own
transfer syntax when that syntax is lossless and an encoder is installed (RLE, JPEG-LS
lossless, JPEG 2000 lossless), so nothing but the rectangle changes.  A lossy syntax
cannot be re-encoded without a second loss, and JPEG Lossless (Process 14) has no encoder
here: those are written uncompressed (Explicit VR Little Endian), and the report says so.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from node.tools.anonymize.errors import OptionError, PixelDataError

__all__ = ["FillReport", "Region", "fill_regions"]

logger = logging.getLogger(__name__)

#: Syntaxes re-encoded after filling (lossless, with an encoder in pydicom's plugins).
REENCODE = frozenset({RLELossless, JPEGLSLossless, JPEG2000Lossless})

_REGION_RE = re.compile(r"^\s*(\d+),(\d+),(\d+),(\d+)\s*(?::\s*(\d+)(?:-(\d+))?)?\s*$")


@dataclass(frozen=True)
class Region:
    """Inclusive rectangle ``x0..x1`` x ``y0..y1`` (columns, rows; 0-based), on frames
    ``first..last`` (1-based, inclusive) or on every frame when ``first`` is None."""

    x0: int
    x1: int
    y0: int
    y1: int
    first: int | None = None
    last: int | None = None

    @classmethod
    def parse(cls, text: str) -> Region:
        """``x0,x1,y0,y1`` (all frames) or ``x0,x1,y0,y1:F`` / ``x0,x1,y0,y1:F-G``."""
        match = _REGION_RE.match(text)
        if match is None:
            raise OptionError(f"--fill-region {text!r}: expected x0,x1,y0,y1[:frame[-frame]]")
        x0, x1, y0, y1 = (int(match.group(i)) for i in range(1, 5))
        if x0 > x1 or y0 > y1:
            raise OptionError(f"--fill-region {text!r}: x0 <= x1 and y0 <= y1 required")
        first = int(match.group(5)) if match.group(5) else None
        last = int(match.group(6)) if match.group(6) else first
        if first is not None and (first < 1 or last is None or last < first):
            raise OptionError(f"--fill-region {text!r}: frames are numbered from 1")
        return cls(x0, x1, y0, y1, first, last)


@dataclass
class FillReport:
    """What ``fill_regions`` did: the transfer syntax written and anything worth saying."""

    transfer_syntax: str
    frames_touched: int = 0
    notes: list[str] = field(default_factory=list)


def fill_regions(ds: Dataset, regions: Sequence[Region], value: int = 0) -> FillReport:
    """Set every pixel of ``regions`` to ``value`` (all samples), in place.

    Raises ``PixelDataError`` when there is no (integer) pixel data, a region lies outside
    the image, or a codec fails.
    """
    if "PixelData" not in ds:
        raise PixelDataError("no Pixel Data (7FE0,0010) to fill")
    meta = getattr(ds, "file_meta", None)
    syntax = ExplicitVRLittleEndian
    if meta is not None and "TransferSyntaxUID" in meta:
        syntax = UID(str(meta.TransferSyntaxUID))
    report = FillReport(transfer_syntax=str(syntax))
    if not regions:
        return report
    compressed = syntax.is_compressed
    reencode = compressed and syntax in REENCODE
    try:
        if compressed:
            ds.decompress(as_rgb=not reencode, generate_instance_uid=False)
        arr = np.array(ds.pixel_array, copy=True)
    except Exception as exc:  # decoders raise anything from ValueError to RuntimeError
        raise PixelDataError(f"cannot decode pixel data ({syntax.name}): {exc}") from exc
    if arr.dtype.kind not in "iu":
        raise PixelDataError(f"pixel data of type {arr.dtype} cannot be filled")
    info = np.iinfo(arr.dtype)
    if not info.min <= value <= info.max:
        raise PixelDataError(f"fill value {value} does not fit {arr.dtype}")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    rows, cols = int(ds.Rows), int(ds.Columns)
    view = arr if frames > 1 else arr[np.newaxis, ...]
    touched: set[int] = set()
    for region in regions:
        if region.x0 >= cols or region.y0 >= rows:
            raise PixelDataError(
                f"region {region.x0},{region.x1},{region.y0},{region.y1} outside the "
                f"{cols}x{rows} image"
            )
        first = (region.first or 1) - 1
        last = (region.last or frames) if region.first is not None else frames
        if first >= frames:
            raise PixelDataError(f"frame {first + 1} beyond the {frames} frame(s)")
        if region.x1 >= cols or region.y1 >= rows:
            report.notes.append(
                f"region {region.x0},{region.x1},{region.y0},{region.y1} clipped to {cols}x{rows}"
            )
        stop = min(last, frames)
        view[first:stop, region.y0 : region.y1 + 1, region.x0 : region.x1 + 1] = value
        touched.update(range(first, stop))
    report.frames_touched = len(touched)
    try:
        ds.set_pixel_data(
            arr,
            photometric_interpretation=str(ds.PhotometricInterpretation),
            bits_stored=int(ds.BitsStored),
            generate_instance_uid=False,
        )
    except Exception as exc:
        raise PixelDataError(f"cannot store the filled pixel data: {exc}") from exc
    if reencode:
        try:
            ds.compress(syntax, generate_instance_uid=False)
        except Exception as exc:  # encoder plugins raise various types
            report.notes.append(
                f"pixel data written uncompressed: re-encoding {syntax.name} failed ({exc})"
            )
            logger.warning("re-encoding %s failed: %s", syntax.name, exc)
    elif compressed:
        report.notes.append(
            f"pixel data written uncompressed: no lossless encoder for {syntax.name}"
        )
    report.transfer_syntax = str(ds.file_meta.TransferSyntaxUID)
    return report
