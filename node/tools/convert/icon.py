"""Icon Image Sequence (0088,0200) generation, as gdcmconv ``--generate-icon`` does.

The icon is at most 64x64 (PS3.3 F.7 advises 64 or 128), 8 bits, uncompressed so
every reader can show it whatever the main transfer syntax. Grayscale images are
windowed to 0..255: by default over the whole range Bits Stored allows (GDCM's
default), with ``icon_minmax`` over a given range, with ``icon_auto_minmax`` over
the frame's actual min..max. MONOCHROME1 is inverted to MONOCHROME2; colour becomes
RGB (palettes applied, YCbCr converted).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydicom.dataset import Dataset

from node.tools.convert.pixels import PixelInfo

if TYPE_CHECKING:
    import numpy as np

__all__ = ["ICON_SIZE", "make_icon"]

ICON_SIZE = 64


def _to_rgb8(frame: np.ndarray, info: PixelInfo, ds: Dataset) -> np.ndarray:
    import numpy as np
    from pydicom.pixels.processing import apply_color_lut, convert_color_space

    if info.photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        bits = 16 if rgb.dtype.itemsize > 1 else 8
    elif info.photometric in ("YBR_FULL", "YBR_FULL_422"):
        rgb = convert_color_space(frame, "YBR_FULL", "RGB")
        bits = info.bits_stored
    else:
        rgb = frame
        bits = info.bits_stored
    if bits > 8:
        rgb = (rgb.astype(np.float64) * (255.0 / (2**bits - 1))).round()
    out: np.ndarray = np.clip(rgb, 0, 255).astype(np.uint8)
    return out


def _to_grey8(
    frame: np.ndarray,
    info: PixelInfo,
    minmax: tuple[float, float] | None,
    auto: bool,
) -> np.ndarray:
    import numpy as np

    values = frame.astype(np.float64)
    if minmax is not None:
        low, high = minmax
    elif auto:
        low, high = float(values.min()), float(values.max())
    elif info.pixel_representation:
        low, high = -(2.0 ** (info.bits_stored - 1)), 2.0 ** (info.bits_stored - 1) - 1
    else:
        low, high = 0.0, 2.0**info.bits_stored - 1
    span = high - low if high > low else 1.0
    grey = np.clip((values - low) * (255.0 / span), 0, 255).round().astype(np.uint8)
    if info.photometric == "MONOCHROME1":
        grey = 255 - grey
    return grey


def make_icon(
    frame: np.ndarray,
    info: PixelInfo,
    ds: Dataset,
    *,
    minmax: tuple[float, float] | None = None,
    auto_minmax: bool = False,
) -> Dataset:
    """Return the one item of an Icon Image Sequence made from `frame`."""
    import numpy as np
    from PIL import Image

    if info.samples == 1 and info.photometric != "PALETTE COLOR":
        pixels = _to_grey8(frame, info, minmax, auto_minmax)
        image = Image.fromarray(pixels, mode="L")
        photometric = "MONOCHROME2"
    else:
        pixels = _to_rgb8(frame, info, ds)
        image = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
        photometric = "RGB"
    image.thumbnail((ICON_SIZE, ICON_SIZE), Image.Resampling.BILINEAR)
    data = image.tobytes()

    icon = Dataset()
    icon.SamplesPerPixel = 1 if photometric == "MONOCHROME2" else 3
    icon.PhotometricInterpretation = photometric
    if icon.SamplesPerPixel == 3:
        icon.PlanarConfiguration = 0
    icon.Rows = image.height
    icon.Columns = image.width
    icon.BitsAllocated = 8
    icon.BitsStored = 8
    icon.HighBit = 7
    icon.PixelRepresentation = 0
    icon.PixelData = data + (b"\x00" if len(data) % 2 else b"")
    icon["PixelData"].VR = "OB"
    return icon
