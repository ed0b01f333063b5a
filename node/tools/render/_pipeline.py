"""Rendering an instance: decode frames, run the greyscale or colour pipeline, size, overlays."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.utils import pixel_array

from node.tools.render._colour import COLOUR_MODELS, colour_frame
from node.tools.render._errors import (
    InvalidOption,
    NoPixelData,
    OutputFormatError,
    RenderError,
    UnsupportedImage,
)
from node.tools.render._geometry import resize, target_size
from node.tools.render._grey import (
    ValueStats,
    Voi,
    choose_voi,
    inverted,
    modality_transform,
    needs_statistics,
)
from node.tools.render._grey import to_output as grey_output
from node.tools.render._options import RenderOptions
from node.tools.render._output import format_for, write_image
from node.tools.render._overlay import burn_overlays

logger = logging.getLogger(__name__)

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


@dataclass(frozen=True)
class RenderedFrame:
    """One rendered frame: its 0-based index, the image, and the VOI used (greyscale only)."""

    index: int
    image: np.ndarray
    voi: Voi | None


def frame_count(ds: Dataset) -> int:
    """Number of frames (1 when Number of Frames is absent or empty)."""
    try:
        return max(1, int(ds.get("NumberOfFrames", 1) or 1))
    except (TypeError, ValueError):
        return 1


def _frames_wanted(ds: Dataset, options: RenderOptions) -> list[int]:
    total = frame_count(ds)
    if options.frame is None:
        return list(range(total))
    if not 1 <= options.frame <= total:
        raise InvalidOption(f"frame {options.frame} requested, the image has {total}")
    return [options.frame - 1]


def _decode(ds: Dataset, index: int, total: int) -> np.ndarray:
    """The decoded frame ``index``: stored values, or RGB for YBR colour models."""
    try:
        arr = pixel_array(ds, index=index if total > 1 else None, as_rgb=True)
    except Exception as exc:  # every decoder failure means "cannot be rendered"
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NoPixelData(f"pixel data cannot be decoded: {message}") from exc
    return np.asarray(arr)


def render(ds: Dataset, options: RenderOptions | None = None) -> list[RenderedFrame]:
    """Render the frames of ``ds`` that ``options`` selects.

    Raises
    ------
    NoPixelData
        No pixel data, or pixel data no installed decoder handles.
    UnsupportedImage
        A colour model or layout not rendered (YBR_PARTIAL_420, several samples in grey...).
    InvalidOption
        Frame, window or VOI LUT index out of range; invalid size.
    """
    options = options or RenderOptions()
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        raise NoPixelData("the instance has no Pixel Data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    frames = _frames_wanted(ds, options)
    total = frame_count(ds)
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2") or (
            not photometric and int(ds.get("SamplesPerPixel", 1) or 1) == 1
        ):
            rendered = _render_grey(ds, frames, total, options)
        elif photometric in COLOUR_MODELS:
            rendered = [
                RenderedFrame(
                    i, colour_frame(_decode(ds, i, total), ds, bits16=options.bits16), None
                )
                for i in frames
            ]
        else:
            raise UnsupportedImage(f"photometric interpretation {photometric!r} is not rendered")
        return [_finish(ds, frame, options) for frame in rendered]
    except RenderError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        # A malformed attribute (LUT, palette, overlay...) deep in the pipeline.
        raise UnsupportedImage(f"cannot render: {type(exc).__name__}: {exc}") from exc


def _render_grey(
    ds: Dataset, frames: list[int], total: int, options: RenderOptions
) -> list[RenderedFrame]:
    out_max = 65535 if options.bits16 else 255
    invert = inverted(ds)
    needs_stats = needs_statistics(ds, frames, options)
    stats = ValueStats()
    cached: dict[int, np.ndarray] = {}
    if needs_stats:
        for i in frames:
            values = _grey_values(ds, i, total, options)
            stats.update(values)
            if len(frames) == 1:
                cached[i] = values
    rendered = []
    for i in frames:
        values = cached.pop(i) if i in cached else _grey_values(ds, i, total, options)
        modality = modality_transform(np.zeros(1), ds, i, enabled=options.modality_lut)
        voi = choose_voi(ds, i, stats, options)
        image = grey_output(
            values,
            voi,
            invert=invert,
            out_max=out_max,
            modality_low=modality.low,
            modality_high=modality.high,
        )
        rendered.append(RenderedFrame(i, image, voi))
    return rendered


def _grey_values(ds: Dataset, index: int, total: int, options: RenderOptions) -> np.ndarray:
    arr = _decode(ds, index, total)
    if arr.ndim != 2:
        raise UnsupportedImage(f"greyscale frame with shape {arr.shape}")
    return modality_transform(arr, ds, index, enabled=options.modality_lut).values


def _finish(ds: Dataset, frame: RenderedFrame, options: RenderOptions) -> RenderedFrame:
    image = frame.image
    if options.overlays:
        image = burn_overlays(image.copy(), ds, frame.index)
    height, width = image.shape[:2]
    size = target_size(width, height, options.scale, options.max_size)
    if size != (width, height):
        image = resize(image, size)
    return RenderedFrame(frame.index, image, frame.voi)


# -- files ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"%(0?\d*)d|\{frame(?::(0?\d*)d)?\}")


def output_paths(out: Path, indices: list[int], total: int) -> list[Path]:
    """Where each frame goes: ``out`` itself for one frame, else ``out`` as a pattern.

    A pattern holds ``%d``/``%04d`` or ``{frame}``/``{frame:04d}`` (1-based frame number);
    without one, ``_NNNN`` is inserted before the extension.
    """
    if len(indices) == 1 and not _PLACEHOLDER.search(out.name):
        return [out]
    digits = max(4, len(str(total)))
    paths = []
    for index in indices:
        number = index + 1
        if _PLACEHOLDER.search(out.name):
            name = _PLACEHOLDER.sub(partial(_format_number, number=number), out.name)
        else:
            name = f"{out.stem}_{number:0{digits}d}{out.suffix}"
        paths.append(out.with_name(name))
    return paths


def _format_number(match: re.Match[str], *, number: int) -> str:
    spec = match.group(1) if match.group(1) is not None else match.group(2)
    return f"{number:{spec}d}" if spec else str(number)


def read_for_render(path: Path) -> Dataset:
    """Read a file for rendering (files without a Part 10 header are accepted, as dcm2pnm)."""
    try:
        try:
            return dcmread(path)
        except InvalidDicomError:
            return dcmread(path, force=True)
    except OSError as exc:
        raise RenderError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except Exception as exc:
        raise NoPixelData(f"{path} is not a readable DICOM file: {exc}") from exc


def render_file(
    source: Path, out: Path, options: RenderOptions | None = None, *, quality: int = 90
) -> list[Path]:
    """Render ``source`` into ``out`` (format from the extension); returns the files written."""
    fmt = format_for(out)
    options = options or RenderOptions()
    if options.bits16 and fmt == "JPEG":
        raise OutputFormatError("JPEG cannot hold 16-bit samples (use .png or .pgm/.ppm)")
    ds = read_for_render(source)
    frames = render(ds, options)
    paths = output_paths(out, [frame.index for frame in frames], frame_count(ds))
    for frame, path in zip(frames, paths, strict=True):
        write_image(frame.image, path, quality=quality)
        logger.info(
            "rendered %s frame %d -> %s (%s)",
            source,
            frame.index + 1,
            path,
            frame.voi.source if frame.voi else "colour",
        )
    return paths
