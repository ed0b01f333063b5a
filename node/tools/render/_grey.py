"""The greyscale pipeline in the standard's order (PS3.4 N.2, PS3.3 C.11).

stored values -> Modality LUT (rescale or LUT) -> VOI (window, VOI LUT, or an automatic
window) -> Presentation LUT shape / MONOCHROME1 polarity -> 8- or 16-bit output.

Arithmetic follows DCMTK's dcmimgle where the standard leaves room: the linear window is the
PS3.3 C.11.2.1.2 formula evaluated in double precision and truncated, polarity is applied by
swapping the output range (so an inverted value is ``trunc(max - v)``, not ``max - trunc(v)``),
and the min-max and histogram windows are DCMTK's (``+Wm``, ``+Wh``).  That is what makes the
8-bit output identical to dcm2pnm for the usual images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

from node.tools.render._errors import InvalidOption
from node.tools.render._options import DEFAULT_HISTOGRAM_PERCENT, RenderOptions


def functional_item(ds: Dataset, frame_index: int, keyword: str) -> Dataset | None:
    """The first item of ``keyword`` for a frame: per-frame group first, then shared group."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame is not None and frame_index < len(per_frame):
        seq = per_frame[frame_index].get(keyword)
        if seq:
            item: Dataset = seq[0]
            return item
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        seq = shared[0].get(keyword)
        if seq:
            shared_item: Dataset = seq[0]
            return shared_item
    return None


# -- modality LUT ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ModalityResult:
    """Modality values of a frame and the range the stored values could map to."""

    values: np.ndarray
    low: float
    high: float
    kind: str


def _stored_range(ds: Dataset) -> tuple[int, int]:
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 8)) or 8)
    if int(ds.get("PixelRepresentation", 0) or 0):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def lut_table(item: Dataset, *, signed: bool = False) -> tuple[np.ndarray, int, int]:
    """(entries, first mapped value, bits per entry) of a Modality or VOI LUT item.

    The first mapped value is SS for signed images but often arrives as US (PS3.3 C.11.1.1).
    """
    descriptor = [int(v) for v in item.LUTDescriptor]
    count = descriptor[0] or 65536
    first = descriptor[1]
    if signed and first >= 32768:
        first -= 65536
    bits = descriptor[2]
    raw = item.LUTData
    if isinstance(raw, bytes | bytearray):
        data = np.frombuffer(raw, dtype="<u2" if bits > 8 or len(raw) >= 2 * count else "u1")
    else:
        data = np.asarray(raw if isinstance(raw, Sequence) else [raw], dtype=np.float64)
    return np.asarray(data, dtype=np.float64)[:count], first, bits


def _is_lut(item: Dataset) -> bool:
    descriptor = item.get("LUTDescriptor")
    return (
        isinstance(descriptor, Sequence)
        and len(descriptor) == 3
        and item.get("LUTData") is not None
    )


def apply_lut(values: np.ndarray, table: np.ndarray, first: int) -> np.ndarray:
    index = np.clip(np.floor(values - first).astype(np.int64), 0, len(table) - 1)
    mapped: np.ndarray = table[index]
    return mapped


def modality_transform(
    stored: np.ndarray, ds: Dataset, frame_index: int, *, enabled: bool = True
) -> ModalityResult:
    """Apply the Modality LUT of ``frame_index`` (functional groups first, then the top level)."""
    low, high = _stored_range(ds)
    values = stored.astype(np.float64)
    if not enabled:
        return ModalityResult(values, low, high, "none")
    item = functional_item(ds, frame_index, "PixelValueTransformationSequence")
    source = item if item is not None and "RescaleSlope" in item else ds
    lut_seq = ds.get("ModalityLUTSequence")
    if lut_seq and _is_lut(lut_seq[0]):
        signed = bool(int(ds.get("PixelRepresentation", 0) or 0))
        table, first, _bits = lut_table(lut_seq[0], signed=signed)
        return ModalityResult(
            apply_lut(values, table, first), float(table.min()), float(table.max()), "lut"
        )
    if "RescaleSlope" in source or "RescaleIntercept" in source:
        slope = float(source.get("RescaleSlope", 1) or 1)
        intercept = float(source.get("RescaleIntercept", 0) or 0)
        if slope == 1 and intercept == 0:
            return ModalityResult(values, low, high, "identity")
        ends = (low * slope + intercept, high * slope + intercept)
        rescaled = values * slope + intercept
        if max(ends) - min(ends) >= 256 and not (slope.is_integer() and intercept.is_integer()):
            # DCMTK keeps modality values in an integer type (truncated toward zero); doing the
            # same keeps 8-bit output identical, and loses less than one modality unit.
            rescaled = np.trunc(rescaled)
        return ModalityResult(rescaled, min(ends), max(ends), "rescale")
    return ModalityResult(values, low, high, "none")


# -- VOI ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Voi:
    """The VOI transformation chosen for an image (for the log and for tests)."""

    kind: str  # "window", "lut", "none"
    center: float = 0.0
    width: float = 0.0
    function: str = "LINEAR"
    lut: np.ndarray | None = None
    lut_first: int = 0
    lut_bits: int = 8
    source: str = ""


def _windows(ds: Dataset, frame_index: int) -> tuple[list[float], list[float], str | None]:
    item = functional_item(ds, frame_index, "FrameVOILUTSequence")
    source = item if item is not None and "WindowCenter" in item else ds
    if "WindowCenter" not in source or "WindowWidth" not in source:
        return [], [], None
    centers = _floats(source.WindowCenter)
    widths = _floats(source.WindowWidth)
    function = source.get("VOILUTFunction")
    return centers, widths, str(function) if function else None


def _floats(value: object) -> list[float]:
    if value is None or value == "":
        return []
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    out = []
    for item in items:
        try:
            out.append(float(str(item)))
        except (TypeError, ValueError):
            continue
    return out


def _voi_luts(ds: Dataset, frame_index: int) -> list[Dataset]:
    item = functional_item(ds, frame_index, "FrameVOILUTSequence")
    if item is not None and item.get("VOILUTSequence"):
        return [lut for lut in item.VOILUTSequence if _is_lut(lut)]
    return [lut for lut in ds.get("VOILUTSequence") or [] if _is_lut(lut)]


class ValueStats:
    """Running statistics of modality values over the frames being rendered.

    DCMTK computes its automatic windows over all frames it loaded; so do we, in one pass that
    keeps a histogram of integer values (or a sample, for non-integer data) instead of the
    frames themselves.
    """

    _SAMPLE = 1_000_000

    def __init__(self) -> None:
        self.low = math.inf
        self.high = -math.inf
        self.count = 0
        self.integral = True
        self._values: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []
        self._sample: list[np.ndarray] = []

    def update(self, values: np.ndarray) -> None:
        flat = values.ravel()
        if flat.size == 0:
            return
        self.low = min(self.low, float(flat.min()))
        self.high = max(self.high, float(flat.max()))
        self.count += flat.size
        if self.integral and not np.array_equal(flat, np.floor(flat)):
            self.integral = False
        uniq, counts = np.unique(np.floor(flat), return_counts=True)
        self._values.append(uniq)
        self._counts.append(counts)
        step = max(1, flat.size // (self._SAMPLE // 8 or 1))
        self._sample.append(flat[::step])

    def histogram(self) -> tuple[np.ndarray, np.ndarray]:
        values = np.concatenate(self._values)
        counts = np.concatenate(self._counts)
        uniq, inverse = np.unique(values, return_inverse=True)
        return uniq, np.bincount(inverse, weights=counts).astype(np.int64)

    def minmax_window(self) -> tuple[float, float] | None:
        """DCMTK's min-max window, ``(min+max+1)/2`` and ``max-min+1`` (continuous for floats)."""
        if self.count == 0 or self.high <= self.low:
            return None
        if not self.integral and self.high - self.low < 256:
            return (self.low + self.high) / 2, self.high - self.low
        low, high = math.floor(self.low), math.floor(self.high)
        if high <= low:
            return None
        return (low + high + 1) / 2, high - low + 1

    def histogram_window(self, percent: float) -> tuple[float, float] | None:
        """DCMTK's histogram window: ``percent`` of the pixels ignored at each end."""
        if self.count == 0 or self.high <= self.low:
            return None
        threshold = int(percent / 100.0 * self.count)
        if not self.integral and self.high - self.low < 256:
            sample = np.concatenate(self._sample)
            fraction = min(max(percent / 100.0, 0.0), 0.49)
            low, high = np.quantile(sample, [fraction, 1.0 - fraction])
            if high <= low:
                return None
            return float(low + high) / 2, float(high - low)
        values, counts = self.histogram()
        if threshold <= 0:
            minimum, maximum = values[0], values[-1] + 1
        else:
            # DCMTK walks the bins from each end until the running count reaches the threshold;
            # the minimum is the bin after the crossing, the maximum the crossing bin itself.
            below = int(np.searchsorted(np.cumsum(counts), threshold, side="left"))
            above = int(np.searchsorted(np.cumsum(counts[::-1]), threshold, side="left"))
            minimum = values[below] + 1 if below < len(values) else 0
            maximum = values[len(values) - 1 - above] if above < len(values) else 0
        if minimum >= maximum:
            return None
        return (float(minimum) + float(maximum) + 1) / 2, float(maximum) - float(minimum) + 1


def choose_voi(ds: Dataset, frame_index: int, stats: ValueStats, options: RenderOptions) -> Voi:
    """The VOI for a frame, following the precedence documented in :class:`RenderOptions`."""
    centers, widths, function = _windows(ds, frame_index)
    function = (options.voi_function or function or "LINEAR").upper().replace(" ", "_")
    if options.no_voi:
        return Voi("none", source="none")
    if options.center is not None and options.width is not None:
        return Voi("window", options.center, options.width, function, source="option")
    if options.window is not None:
        count = min(len(centers), len(widths))
        if not 1 <= options.window <= count:
            raise InvalidOption(f"window {options.window} requested, the image has {count}")
        i = options.window - 1
        return Voi("window", centers[i], widths[i], function, source=f"file window {i + 1}")
    luts = _voi_luts(ds, frame_index)
    if options.voi_lut is not None:
        if not 1 <= options.voi_lut <= len(luts):
            raise InvalidOption(f"VOI LUT {options.voi_lut} requested, the image has {len(luts)}")
        return _lut_voi(luts[options.voi_lut - 1], stats.low < 0, f"file VOI LUT {options.voi_lut}")
    if options.minmax:
        return _auto(stats.minmax_window(), function, "min-max")
    if options.histogram is not None:
        return _auto(stats.histogram_window(options.histogram), function, "histogram")
    if centers and widths and widths[0] > 0:
        return Voi("window", centers[0], widths[0], function, source="file window 1")
    if luts:
        return _lut_voi(luts[0], stats.low < 0, "file VOI LUT 1")
    auto = stats.histogram_window(DEFAULT_HISTOGRAM_PERCENT) or stats.minmax_window()
    return _auto(auto, function, "histogram")


def needs_statistics(ds: Dataset, frames: list[int], options: RenderOptions) -> bool:
    """Whether an automatic window may be needed (else the frames are decoded only once)."""
    if options.minmax or options.histogram is not None:
        return True
    explicit = options.center is not None and options.width is not None
    if explicit or options.window is not None or options.voi_lut is not None or options.no_voi:
        return False
    for index in frames:
        centers, widths, _function = _windows(ds, index)
        if not (centers and widths and widths[0] > 0) and not _voi_luts(ds, index):
            return True
    return False


def _auto(window: tuple[float, float] | None, function: str, source: str) -> Voi:
    if window is None:
        return Voi("none", source=f"{source} (flat image)")
    return Voi("window", window[0], window[1], function, source=source)


def _lut_voi(item: Dataset, signed: bool, source: str) -> Voi:
    table, first, bits = lut_table(item, signed=signed)
    return Voi("lut", lut=table, lut_first=first, lut_bits=bits, source=source)


# -- output ---------------------------------------------------------------------------------


def to_output(
    values: np.ndarray,
    voi: Voi,
    *,
    invert: bool,
    out_max: int,
    modality_low: float,
    modality_high: float,
) -> np.ndarray:
    """VOI then polarity, truncated to integers in ``[0, out_max]`` (uint8 or uint16)."""
    low, high = (float(out_max), 0.0) if invert else (0.0, float(out_max))
    span = high - low
    dtype = np.uint8 if out_max <= 255 else np.uint16
    if voi.kind == "window" and voi.function == "LINEAR" and voi.width > 1:
        # DCMTK's expression, term for term, so truncation falls the same way.
        width_1 = voi.width - 1
        left = voi.center - 0.5 - width_1 / 2
        right = voi.center - 0.5 + width_1 / 2
        offset = high - ((voi.center - 0.5) / width_1 + 0.5) * span
        out = offset + values * (span / width_1)
        out = np.where(values <= left, low, np.where(values > right, high, out))
        return np.trunc(out).astype(dtype)
    if voi.kind == "window":
        fraction = _window_fraction(values, voi.center, voi.width, voi.function)
    elif voi.kind == "lut" and voi.lut is not None:
        maximum = max(float((1 << voi.lut_bits) - 1), float(voi.lut.max()))
        fraction = apply_lut(values, voi.lut, voi.lut_first) / (maximum or 1.0)
    else:
        # No VOI: DCMTK's linear scaling of the whole modality range onto the output range,
        # low + (x - min) * (high - low + 1) / (max - min + 1): 12 bits lose their 4 low bits.
        steps = high - low + 1  # 256, or -254 when inverted (DCMTK's "outrange")
        out = low + (values - modality_low) * (steps / (modality_high - modality_low + 1))
        scaled: np.ndarray = np.trunc(np.clip(out, 0.0, float(out_max))).astype(dtype)
        return scaled
    out = low + np.clip(fraction, 0.0, 1.0) * span
    result: np.ndarray = np.trunc(out).astype(dtype)
    return result


def _window_fraction(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    if function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / max(width, 1e-12)))
    if function == "LINEAR_EXACT":
        if width <= 0:
            return (values > center).astype(np.float64)
        return (values - center) / width + 0.5
    # LINEAR with a width of 1 or less is a threshold at the centre.
    return (values > center - 0.5).astype(np.float64)


def inverted(ds: Dataset) -> bool:
    """Whether the output is inverted: MONOCHROME1, or a Presentation LUT Shape of INVERSE."""
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    shape = str(ds.get("PresentationLUTShape", "") or "").strip().upper()
    return photometric == "MONOCHROME1" or shape == "INVERSE"
