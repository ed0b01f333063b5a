"""Colour images: RGB, YBR_FULL, YBR_FULL_422, PALETTE COLOR, either planar configuration.

The decoder (``pydicom.pixels``) already returns interleaved samples and converts YBR_FULL and
YBR_FULL_422 to RGB (PS3.3 C.7.6.3.1.2 equations); JPEG 2000's YBR_ICT/YBR_RCT come out of the
codec as RGB.  What is left here is the palette lookup and the bit depth: samples wider than
8 bits keep their top 8 bits, as DCMTK does.
"""

from __future__ import annotations

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut

from node.tools.render._errors import UnsupportedImage

COLOUR_MODELS = frozenset(
    {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420", "PALETTE COLOR"}
)


def colour_frame(arr: np.ndarray, ds: Dataset, *, bits16: bool) -> np.ndarray:
    """An RGB frame (rows, columns, 3) as uint8, or uint16 with ``bits16``."""
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric == "PALETTE COLOR":
        rgb, bits = apply_palette(arr, ds)
    else:
        if arr.ndim != 3 or arr.shape[-1] != 3:
            raise UnsupportedImage(f"{photometric} image with shape {arr.shape} is not RGB")
        rgb = arr
        bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    return scale_samples(np.asarray(rgb), bits, bits16=bits16)


def apply_palette(arr: np.ndarray, ds: Dataset) -> tuple[np.ndarray, int]:
    """RGB of a PALETTE COLOR frame and the bits per entry.

    Why not ``pydicom.pixels.apply_color_lut`` for the plain case: pydicom 3.0 reads the LUT
    data of a Big Endian file as little endian.  Segmented palettes still go to pydicom.
    """
    if "SegmentedRedPaletteColorLookupTableData" in ds:
        rgb = apply_color_lut(arr, ds)
        descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
        return rgb, int(descriptor[2]) if descriptor else 8 * rgb.dtype.itemsize
    little = _little_endian(ds)
    planes = []
    bits = 8
    for colour in ("Red", "Green", "Blue"):
        descriptor = [int(v) for v in ds[f"{colour}PaletteColorLookupTableDescriptor"].value]
        count = descriptor[0] or 65536
        first = descriptor[1]
        bits = descriptor[2]
        raw = ds[f"{colour}PaletteColorLookupTableData"].value
        if isinstance(raw, bytes | bytearray):
            table: np.ndarray
            if bits == 8 and len(raw) < 2 * count:
                table = np.frombuffer(raw, dtype=np.uint8)[:count].astype(np.uint16)
            else:
                table = np.frombuffer(raw[: len(raw) // 2 * 2], dtype="<u2" if little else ">u2")
                table = table[:count].astype(np.uint16)
                if bits == 8 and int(table.max(initial=0)) > 255:
                    table = table >> 8
        else:
            values = raw if isinstance(raw, list | tuple) else [raw]
            table = np.asarray(values, dtype=np.uint16)[:count]
        index = np.clip(arr.astype(np.int64) - first, 0, len(table) - 1)
        planes.append(table[index])
    return np.stack(planes, axis=-1), bits


def _little_endian(ds: Dataset) -> bool:
    encoding = getattr(ds, "original_encoding", None)
    if encoding and encoding[1] is not None:
        return bool(encoding[1])
    meta = getattr(ds, "file_meta", None)
    syntax = meta.get("TransferSyntaxUID") if meta is not None else None
    return str(syntax) != "1.2.840.10008.1.2.2"


def scale_samples(rgb: np.ndarray, bits: int, *, bits16: bool) -> np.ndarray:
    """Samples of ``bits`` bits brought to 8 (top bits kept) or 16 bits (replicated)."""
    values: np.ndarray = rgb.astype(np.uint32)
    if bits16:
        if bits >= 16:
            out = values >> (bits - 16)
        else:
            # Replicate the bits (v * 65535 / (2^bits - 1) without division): 0xAB -> 0xABAB.
            out = values << (16 - bits)
            shift = bits
            while shift < 16:
                out |= out >> shift
                shift *= 2
        return out.astype(np.uint16)
    if bits > 8:
        values = values >> (bits - 8)
    elif bits < 8:
        values = (values * 255) // ((1 << bits) - 1)
    narrow: np.ndarray = np.clip(values, 0, 255).astype(np.uint8)
    return narrow
