"""Output size: ``--scale WxH`` (fit inside, aspect kept) and ``--max-size N`` (downscale only)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from node.tools.render._errors import InvalidOption


def target_size(
    width: int, height: int, scale: tuple[int, int] | None, max_size: int | None
) -> tuple[int, int]:
    """The output (width, height); a 0 in ``scale`` leaves that side free."""
    out_w, out_h = width, height
    if scale is not None:
        box_w, box_h = scale
        if box_w < 0 or box_h < 0 or (box_w == 0 and box_h == 0):
            raise InvalidOption(f"invalid scale {box_w}x{box_h}")
        factors = [f for f in (box_w / width if box_w else 0, box_h / height if box_h else 0) if f]
        factor = min(factors)
        out_w, out_h = max(1, round(width * factor)), max(1, round(height * factor))
    if max_size is not None:
        if max_size < 1:
            raise InvalidOption(f"invalid max size {max_size}")
        longest = max(out_w, out_h)
        if longest > max_size:
            factor = max_size / longest
            out_w, out_h = max(1, round(out_w * factor)), max(1, round(out_h * factor))
    return out_w, out_h


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` resampled to ``size`` (Lanczos; 16-bit planes go through 32-bit float)."""
    if (image.shape[1], image.shape[0]) == size:
        return image
    if image.dtype == np.uint8:
        mode = "L" if image.ndim == 2 else "RGB"
        out = Image.fromarray(image, mode).resize(size, Image.Resampling.LANCZOS)
        return np.asarray(out)
    planes = [image] if image.ndim == 2 else [image[..., i] for i in range(image.shape[2])]
    resized = []
    for plane in planes:
        img = Image.fromarray(plane.astype(np.float32), "F").resize(size, Image.Resampling.LANCZOS)
        resized.append(np.clip(np.rint(np.asarray(img)), 0, 65535).astype(np.uint16))
    return resized[0] if image.ndim == 2 else np.stack(resized, axis=-1)
