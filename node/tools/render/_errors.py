"""Errors raised by the rendering tool.

Why a tree: the CLI prints one line per kind and a thumbnail job records which images can never
render (no pixels, unsupported encoding) apart from transient output failures::

    RenderError
     +-- NoPixelData          the instance has no (decodable) image
     +-- UnsupportedImage     a pixel layout or colour model we do not render
     +-- InvalidOption        a frame, window or size that does not fit this image
     +-- OutputFormatError    unknown extension, or 16-bit asked for a format without it
     +-- RenderOutputError    the image file cannot be written
"""

from __future__ import annotations


class RenderError(Exception):
    """Base of every error raised by :mod:`node.tools.render`."""


class NoPixelData(RenderError):
    """No Pixel Data, or Pixel Data that no installed decoder can decode."""


class UnsupportedImage(RenderError):
    """The image is valid DICOM but not something this renderer handles."""


class InvalidOption(RenderError):
    """An option does not fit the image (frame out of range, window index missing...)."""


class OutputFormatError(RenderError):
    """The output format is unknown or cannot hold what was asked (16-bit JPEG)."""


class RenderOutputError(RenderError):
    """Writing the rendered image failed."""
