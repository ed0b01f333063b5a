"""Image files: PNG (8/16-bit), JPEG, PGM/PPM, chosen by the file extension.

Pillow writes the 8-bit files.  16-bit PNG (greyscale or 48-bit RGB) and 16-bit PGM/PPM are
written here: both formats are a few lines (big-endian samples), and Pillow cannot write a
48-bit PNG.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from node.tools.render._errors import OutputFormatError, RenderOutputError

FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".pgm": "PNM",
    ".ppm": "PNM",
    ".pnm": "PNM",
}


def format_for(path: Path) -> str:
    """The output format for ``path``'s extension."""
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise OutputFormatError(f"unknown output extension {path.suffix!r} (use {known})") from None


def encode_image(image: np.ndarray, fmt: str, *, quality: int = 90) -> bytes:
    """The file bytes of ``image`` (uint8 or uint16; (rows, cols) or (rows, cols, 3))."""
    if image.dtype == np.uint16:
        if fmt == "PNG":
            return _png16(image)
        if fmt == "PNM":
            return _pnm16(image)
        raise OutputFormatError(f"{fmt} cannot hold 16-bit samples (use .png or .pgm/.ppm)")
    mode = "L" if image.ndim == 2 else "RGB"
    pil = Image.fromarray(np.ascontiguousarray(image), mode)
    from io import BytesIO

    buf = BytesIO()
    if fmt == "JPEG":
        if not 1 <= quality <= 100:
            raise OutputFormatError(f"JPEG quality must be 1..100, not {quality}")
        pil.save(buf, "JPEG", quality=quality)
    elif fmt == "PNM":
        pil.save(buf, "PPM")
    else:
        pil.save(buf, "PNG")
    return buf.getvalue()


def write_image(image: np.ndarray, path: Path, *, quality: int = 90) -> None:
    """Write ``image`` to ``path`` in the format of its extension, atomically."""
    data = encode_image(image, format_for(path), quality=quality)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise RenderOutputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png16(image: np.ndarray) -> bytes:
    rows, columns = image.shape[:2]
    colour_type = 0 if image.ndim == 2 else 2
    samples = image.astype(">u2").reshape(rows, -1)
    raw = np.zeros((rows, samples.shape[1] * 2 + 1), dtype=np.uint8)  # filter byte 0 per row
    raw[:, 1:] = samples.view(np.uint8).reshape(rows, -1)
    header = struct.pack(">IIBBBBB", columns, rows, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
        + _png_chunk(b"IEND", b"")
    )


def _pnm16(image: np.ndarray) -> bytes:
    rows, columns = image.shape[:2]
    magic = b"P5" if image.ndim == 2 else b"P6"
    return magic + f"\n{columns} {rows}\n65535\n".encode() + image.astype(">u2").tobytes()
