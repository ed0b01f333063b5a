"""Conversion tools: transcoding (gdcmconv), image to DICOM (img2dcm/gdcmimg), PDF.

Public API (imported lazily, so ``import node.tools.convert`` stays cheap: numpy,
the codecs and Pillow load on first use)::

    transcode(ds, target_syntax, options) -> Dataset
    transcode_dataset(ds, target_syntax, options) -> TranscodeResult
    transcode_file(src, dst, target_syntax | family=..., options) -> TranscodeResult
    images_to_dataset(paths, options) -> Dataset            (img2dcm)
    pdf_to_dataset(pdf_bytes, options) -> Dataset           (pdf2dcm)
    dataset_to_pdf(ds) -> bytes                             (dcm2pdf)

Errors (all subclasses of :class:`ConvertError`) are drawn in
:mod:`node.tools.convert.errors`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from node.tools.convert.errors import (
    ConvertError,
    DecodeError,
    EncodeError,
    EncodeRefused,
    InputError,
    NotAnImage,
    PdfError,
    UnsupportedSyntax,
    VerificationError,
)
from node.tools.convert.options import TranscodeOptions

if TYPE_CHECKING:
    from node.tools.convert.img2dcm import Img2DcmOptions, images_to_dataset
    from node.tools.convert.pdf import (
        PdfOptions,
        dataset_to_pdf,
        pdf_to_dataset,
    )
    from node.tools.convert.syntaxes import TARGETS, resolve_family
    from node.tools.convert.transcode import (
        TranscodeResult,
        transcode,
        transcode_dataset,
        transcode_file,
        write_dataset,
    )

__all__ = [
    "ConvertError",
    "DecodeError",
    "EncodeError",
    "EncodeRefused",
    "Img2DcmOptions",
    "InputError",
    "NotAnImage",
    "PdfError",
    "PdfOptions",
    "TARGETS",
    "TranscodeOptions",
    "TranscodeResult",
    "UnsupportedSyntax",
    "VerificationError",
    "dataset_to_pdf",
    "images_to_dataset",
    "pdf_to_dataset",
    "resolve_family",
    "transcode",
    "transcode_dataset",
    "transcode_file",
    "write_dataset",
]

_LAZY = {
    "TranscodeResult": "transcode",
    "transcode": "transcode",
    "transcode_dataset": "transcode",
    "transcode_file": "transcode",
    "write_dataset": "transcode",
    "TARGETS": "syntaxes",
    "resolve_family": "syntaxes",
    "Img2DcmOptions": "img2dcm",
    "images_to_dataset": "img2dcm",
    "PdfOptions": "pdf",
    "dataset_to_pdf": "pdf",
    "pdf_to_dataset": "pdf",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
