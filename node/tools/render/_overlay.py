"""Overlay planes (60xx) burned into the rendered image (PS3.3 C.9.2).

Only overlays stored in Overlay Data (bit-packed, Overlay Bits Allocated 1) are drawn; the
retired form embedded in unused pixel bits is ignored.  An overlay bit sets the pixel to the
brightest value, as DCMTK's default "replace" mode with foreground density 1.
"""

from __future__ import annotations

import logging

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag

logger = logging.getLogger(__name__)


def overlay_groups(ds: Dataset) -> list[int]:
    """Groups 0x6000..0x601E that carry Overlay Data."""
    return [group for group in range(0x6000, 0x6020, 2) if Tag(group, 0x3000) in ds]


def overlay_mask(ds: Dataset, group: int, frame_index: int, shape: tuple[int, int]) -> np.ndarray:
    """Boolean mask of ``shape`` with the overlay bits of ``group`` for a frame (1 = drawn)."""
    rows = int(ds[Tag(group, 0x0010)].value)
    columns = int(ds[Tag(group, 0x0011)].value)
    frames = int(ds.get(Tag(group, 0x0015)).value or 1) if Tag(group, 0x0015) in ds else 1
    first_frame = int(ds[Tag(group, 0x0051)].value or 1) if Tag(group, 0x0051) in ds else 1
    origin = ds.get(Tag(group, 0x0050))
    top, left = (int(origin.value[0]) - 1, int(origin.value[1]) - 1) if origin else (0, 0)
    mask = np.zeros(shape, dtype=bool)
    overlay_frame = frame_index - (first_frame - 1)
    if not 0 <= overlay_frame < frames:
        return mask
    raw = ds[Tag(group, 0x3000)].value
    bits = np.unpackbits(np.frombuffer(raw, dtype=np.uint8), bitorder="little")
    plane = rows * columns
    start = overlay_frame * plane
    if bits.size < start + plane:
        logger.warning("overlay %04X: Overlay Data shorter than its rows x columns", group)
        return mask
    bitmap = bits[start : start + plane].reshape(rows, columns).astype(bool)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + rows, shape[0]), min(left + columns, shape[1])
    if r1 > r0 and c1 > c0:
        mask[r0:r1, c0:c1] = bitmap[r0 - top : r1 - top, c0 - left : c1 - left]
    return mask


def burn_overlays(image: np.ndarray, ds: Dataset, frame_index: int) -> np.ndarray:
    """``image`` (grey or RGB) with every overlay plane of the frame drawn at full white."""
    white = np.iinfo(image.dtype).max
    for group in overlay_groups(ds):
        try:
            mask = overlay_mask(ds, group, frame_index, image.shape[:2])
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            logger.warning("overlay %04X not drawn: %s", group, exc)
            continue
        image[mask] = white
    return image
