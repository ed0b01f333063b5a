"""Rendering DICOM images to PNG, JPEG and PGM/PPM (gdcm2pnm, dcm2pnm/dcmj2pnm parity).

Public API::

    render(ds, RenderOptions(...)) -> [RenderedFrame(index, image, voi)]
    render_file(source, out, RenderOptions(...), quality=90) -> [paths written]
    write_image(image, path) / encode_image(image, fmt)

Greyscale images go through the standard's pipeline in order (``_grey``): Modality LUT
(rescale or LUT, functional groups first), VOI (file window, window/width, VOI LUT, min-max or
histogram window; LINEAR, LINEAR_EXACT, SIGMOID), Presentation LUT shape and MONOCHROME1
polarity.  Colour images (``_colour``): RGB, YBR_FULL, YBR_FULL_422, YBR_ICT/RCT, PALETTE
COLOR, either planar configuration.  Then overlays (``_overlay``) and size (``_geometry``).

Errors (subclasses of :class:`RenderError`, see ``_errors``): :class:`NoPixelData`,
:class:`UnsupportedImage`, :class:`InvalidOption`, :class:`OutputFormatError`,
:class:`RenderOutputError`.
"""

from __future__ import annotations

from node.tools.render._errors import (
    InvalidOption,
    NoPixelData,
    OutputFormatError,
    RenderError,
    RenderOutputError,
    UnsupportedImage,
)
from node.tools.render._grey import Voi
from node.tools.render._options import DEFAULT_HISTOGRAM_PERCENT, RenderOptions
from node.tools.render._output import FORMATS, encode_image, format_for, write_image
from node.tools.render._pipeline import (
    RenderedFrame,
    frame_count,
    output_paths,
    read_for_render,
    render,
    render_file,
)

__all__ = [
    "DEFAULT_HISTOGRAM_PERCENT",
    "FORMATS",
    "InvalidOption",
    "NoPixelData",
    "OutputFormatError",
    "RenderError",
    "RenderOptions",
    "RenderOutputError",
    "RenderedFrame",
    "UnsupportedImage",
    "Voi",
    "encode_image",
    "format_for",
    "frame_count",
    "output_paths",
    "read_for_render",
    "render",
    "render_file",
    "write_image",
]
