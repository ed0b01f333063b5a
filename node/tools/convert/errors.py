"""Typed errors of the conversion tools, mapped once by their callers.

Why a tree: the retrieve path needs to tell "this image can never be sent in that
syntax" (refused, pick another presentation context) from "this file is broken"
(skip it, report it), and the CLI turns every one of them into one line on stderr.

::

    ConvertError
     +-- InputError            the input cannot be read (not DICOM, truncated, bad image file)
     +-- NotAnImage            the dataset has no pixel data but the target needs one
     +-- UnsupportedSyntax     the target transfer syntax is not one we write
     +-- EncodeRefused         no standard stream can hold these pixels in that syntax
     +-- DecodeError           the source pixel data cannot be decoded
     +-- EncodeError           an encoder failed on data it should have accepted
     +-- VerificationError     a lossless result does not decode to the same pixels
     +-- PdfError              not a PDF, or not an Encapsulated PDF object
"""

from __future__ import annotations

__all__ = [
    "ConvertError",
    "DecodeError",
    "EncodeError",
    "EncodeRefused",
    "InputError",
    "NotAnImage",
    "PdfError",
    "UnsupportedSyntax",
    "VerificationError",
]


class ConvertError(Exception):
    """Base of every error raised by ``node.tools.convert``."""


class InputError(ConvertError):
    """The input file cannot be read as what it claims to be."""


class NotAnImage(ConvertError):
    """The dataset has no pixel data, so a compressed target makes no sense."""


class UnsupportedSyntax(ConvertError):
    """The target transfer syntax is not one this package writes."""


class EncodeRefused(ConvertError):
    """The pixels cannot be written in the target syntax as a stream decoders read.

    Raised before any work is done, e.g. for 16-bit data and JPEG Extended, float
    pixel data and any encapsulated syntax, or signed data and lossy JPEG.
    """


class DecodeError(ConvertError):
    """The source pixel data could not be decoded by any available decoder."""


class EncodeError(ConvertError):
    """An encoder failed on data that passed the checks."""


class VerificationError(ConvertError):
    """A lossless conversion did not decode back to bit-identical pixels."""


class PdfError(ConvertError):
    """The input is not a PDF, or the dataset carries no encapsulated PDF."""
