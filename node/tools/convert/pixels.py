"""Pixel data in and out: describe, decode, write native, encapsulate.

Why here and not in pydicom's ``Dataset.compress``: a transcoder must also decode
from any source syntax frame by frame (large multi-frames do not fit in memory
twice), write fragments of a bounded size (``--split``), keep 1-bit data packed,
and write colour-by-plane on request. pydicom does the decoding; this module does
the bookkeeping around it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pydicom.uid import UID

from node.tools.convert.errors import DecodeError, InputError

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "PixelInfo",
    "decode_frames",
    "encapsulate_frames",
    "iter_encapsulated_frames",
    "native_bytes",
]

#: Above this many bytes of fragments the Basic Offset Table's 32-bit offsets overflow.
_BOT_LIMIT = 2**32 - 1


@dataclass(frozen=True)
class PixelInfo:
    """The Image Pixel module attributes that say how pixel values are laid out."""

    rows: int
    columns: int
    frames: int
    samples: int
    photometric: str
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    planar_configuration: int

    @classmethod
    def from_dataset(cls, ds: Dataset) -> PixelInfo:
        try:
            bits_allocated = int(ds.BitsAllocated)
            frames = ds.get("NumberOfFrames", 1)
            return cls(
                rows=int(ds.Rows),
                columns=int(ds.Columns),
                frames=int(frames) if frames not in (None, "") else 1,
                samples=int(ds.get("SamplesPerPixel", 1) or 1),
                photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
                bits_allocated=bits_allocated,
                bits_stored=int(ds.get("BitsStored", bits_allocated) or bits_allocated),
                pixel_representation=int(ds.get("PixelRepresentation", 0) or 0),
                planar_configuration=int(ds.get("PlanarConfiguration", 0) or 0),
            )
        except (AttributeError, TypeError, ValueError) as exc:
            raise InputError(f"incomplete Image Pixel module: {exc}") from None

    @property
    def high_bit(self) -> int:
        return self.bits_stored - 1

    @property
    def uncompressed_size(self) -> int:
        """Bytes the pixel data takes uncompressed (what lossy ratios are relative to)."""
        pixels = self.rows * self.columns * self.samples * self.frames
        return (pixels * self.bits_allocated + 7) // 8

    def with_(self, **changes: Any) -> PixelInfo:
        return replace(self, **changes)

    def apply(self, ds: Dataset) -> None:
        """Write these values into `ds`'s Image Pixel module."""
        ds.Rows = self.rows
        ds.Columns = self.columns
        ds.SamplesPerPixel = self.samples
        ds.PhotometricInterpretation = self.photometric
        ds.BitsAllocated = self.bits_allocated
        ds.BitsStored = self.bits_stored
        ds.HighBit = self.high_bit
        ds.PixelRepresentation = self.pixel_representation
        if self.samples > 1:
            ds.PlanarConfiguration = self.planar_configuration
        elif "PlanarConfiguration" in ds:
            del ds.PlanarConfiguration
        if "NumberOfFrames" in ds or self.frames > 1:
            ds.NumberOfFrames = self.frames


def decode_frames(
    ds: Dataset, syntax: UID, *, as_rgb: bool
) -> tuple[PixelInfo, Iterator[np.ndarray]]:
    """Decode `ds`'s pixel data frame by frame.

    Returns the Image Pixel description *of the decoded frames* (pydicom changes it:
    YBR_FULL_422 becomes YBR_FULL, J2K YBR_RCT/ICT become RGB, colour is returned
    colour-by-pixel) and an iterator of frames shaped (rows, columns[, samples]).
    ``as_rgb`` converts YCbCr to RGB, which is what DCMTK and GDCM do when they
    decompress lossy JPEG.
    """
    from pydicom.pixels.decoders.base import get_decoder

    source = PixelInfo.from_dataset(ds)
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError:
        raise DecodeError(f"no decoder for transfer syntax {syntax.name}") from None
    if not decoder.is_available:
        raise DecodeError(f"the {syntax.name} decoder is missing its plugins")
    # pylibjpeg first when it can: pydicom's iter_array fails on the read-only
    # buffers some other plugins return (signed JPEG-LS with Bits Stored < Allocated).
    plugin = "pylibjpeg" if "pylibjpeg" in decoder.available_plugins else ""
    try:
        iterator = decoder.iter_array(ds, raw=not as_rgb, as_rgb=as_rgb, decoding_plugin=plugin)
        first, image_pixel = next(iterator)
    except StopIteration:
        raise DecodeError("pixel data holds no frame") from None
    except Exception as exc:  # pydicom and the plugins raise anything
        raise DecodeError(f"cannot decode {syntax.name} pixel data: {exc}") from exc

    decoded = source.with_(
        photometric=str(image_pixel.get("photometric_interpretation", source.photometric)),
        bits_allocated=int(image_pixel.get("bits_allocated", source.bits_allocated)),
        planar_configuration=0,
    )

    def frames() -> Iterator[np.ndarray]:
        yield first
        try:
            for arr, _ in iterator:
                yield arr
        except Exception as exc:
            raise DecodeError(f"cannot decode {syntax.name} pixel data: {exc}") from exc

    return decoded, frames()


def native_bytes(frames: list[np.ndarray], info: PixelInfo) -> bytes:
    """Little-endian native pixel data for `frames` as described by `info`.

    1-bit data is packed across frame boundaries (PS3.5 8.1.1); colour data is
    written colour-by-plane when ``info.planar_configuration`` is 1.
    """
    import numpy as np

    if info.bits_allocated == 1:
        from pydicom.pixels.utils import pack_bits

        packed = pack_bits(np.concatenate([f.ravel() for f in frames]).astype(np.uint8))
        return packed + (b"\x00" if len(packed) % 2 else b"")
    if info.bits_allocated % 8:
        raise InputError(f"Bits Allocated {info.bits_allocated} is not a whole number of bytes")
    kind = "i" if info.pixel_representation else "u"
    dtype = np.dtype(f"<{kind}{info.bits_allocated // 8}")
    parts = []
    for frame in frames:
        arr = frame.astype(dtype, copy=False)
        if info.samples > 1 and info.planar_configuration == 1:
            arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
        parts.append(arr.tobytes())
    data = b"".join(parts)
    return data + (b"\x00" if len(data) % 2 else b"")


def _fragments(frame: bytes, max_size: int | None) -> list[bytes]:
    if not max_size or len(frame) <= max_size:
        return [frame]
    return [frame[i : i + max_size] for i in range(0, len(frame), max_size)]


def encapsulate_frames(
    frames: list[bytes], max_fragment: int | None = None
) -> tuple[bytes, bytes | None, bytes | None]:
    """Encapsulate encoded frames (PS3.5 A.4) into the Pixel Data value.

    Returns ``(pixel_data, extended_offset_table, extended_offset_table_lengths)``;
    the last two are None unless the fragments outgrow the 32-bit Basic Offset Table,
    in which case the Basic Offset Table is left empty and the extended one is used.
    """
    if max_fragment is not None and (max_fragment < 2 or max_fragment % 2):
        raise ValueError("fragment size must be an even number of bytes, at least 2")
    items: list[bytes] = []
    offsets: list[int] = []
    lengths: list[int] = []
    position = 0
    for frame in frames:
        offsets.append(position)
        length = 0
        for fragment in _fragments(frame, max_fragment):
            if len(fragment) % 2:
                fragment += b"\x00"
            items.append(struct.pack("<HHL", 0xFFFE, 0xE000, len(fragment)) + fragment)
            position += 8 + len(fragment)
            length += len(fragment)
        lengths.append(length)
    body = b"".join(items)
    if position > _BOT_LIMIT:
        bot = struct.pack("<HHL", 0xFFFE, 0xE000, 0)
        eot = struct.pack(f"<{len(offsets)}Q", *offsets)
        eot_lengths = struct.pack(f"<{len(lengths)}Q", *lengths)
        return bot + body, eot, eot_lengths
    table = struct.pack(f"<{len(offsets)}L", *offsets)
    bot = struct.pack("<HHL", 0xFFFE, 0xE000, len(table)) + table
    return bot + body, None, None


def iter_encapsulated_frames(ds: Dataset, frames: int) -> Iterator[bytes]:
    """Yield each frame's encoded bytes (its fragments joined) from `ds`'s Pixel Data."""
    from pydicom.encaps import generate_frames

    yield from generate_frames(
        ds.PixelData,
        number_of_frames=frames,
        extended_offsets=(
            (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
            if "ExtendedOffsetTable" in ds and "ExtendedOffsetTableLengths" in ds
            else None
        ),
    )
