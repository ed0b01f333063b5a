"""Extract an element's value bytes to files, as ``gdcmraw`` does.

Pixel Data by default.  Encapsulated Pixel Data gives the fragments concatenated (the
Basic Offset Table is not image data and is left out), or one file per fragment with
``split=True`` and a printf pattern appended to the output name (``frag`` + ``%02d.jpg``
-> ``frag00.jpg``, ``frag01.jpg``...), so a JPEG frame can be opened by any viewer.
Other elements give their value exactly as stored in the file (padding included).

Exceptions::

    RawError
     +-- NoSuchElement       the element is not in the dataset
     +-- NotEncapsulated     split asked for on a value that has no fragments
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID

from node.tools.dump import DumpError, fragments

__all__ = [
    "NoSuchElement",
    "NotEncapsulated",
    "RawError",
    "element_value",
    "pixel_fragments",
    "write_raw",
]

PIXEL_DATA = Tag(0x7FE0, 0x0010)


class RawError(Exception):
    """Base of this module's errors."""


class NoSuchElement(RawError):
    """The element is not in the dataset."""


class NotEncapsulated(RawError):
    """Fragments were asked for, but the value is not encapsulated."""


def _is_encapsulated(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if ts is None:
        return False
    uid = UID(str(ts))
    return uid.is_transfer_syntax and uid.is_encapsulated


def pixel_fragments(ds: Dataset) -> list[bytes]:
    """The fragments of encapsulated Pixel Data, in order, without the offset table."""
    if PIXEL_DATA not in ds:
        raise NoSuchElement("no Pixel Data")
    if not _is_encapsulated(ds):
        raise NotEncapsulated("Pixel Data is not encapsulated (native transfer syntax)")
    try:
        items = fragments(ds.PixelData)
    except DumpError as exc:
        raise RawError(f"damaged encapsulated Pixel Data: {exc}") from exc
    return items[1:]


def element_value(ds: Dataset, tag: int | BaseTag = PIXEL_DATA) -> bytes:
    """The value bytes of one top-level element (fragments joined for encapsulated data)."""
    tag = Tag(tag)
    if tag not in ds:
        raise NoSuchElement(f"({tag.group:04X},{tag.element:04X}) not in the dataset")
    if tag == PIXEL_DATA and _is_encapsulated(ds):
        return b"".join(pixel_fragments(ds))
    raw = ds.get_item(tag)
    if isinstance(raw, RawDataElement) and isinstance(raw.value, bytes):
        return raw.value
    elem = ds[tag]
    if elem.VR == "SQ":
        raise RawError(f"({tag.group:04X},{tag.element:04X}) is a sequence: no value bytes")
    if isinstance(elem.value, bytes):
        return elem.value
    implicit, little = ds.original_encoding
    fp = DicomBytesIO()
    fp.is_implicit_VR = True
    fp.is_little_endian = True if little is None else bool(little)
    write_data_element(fp, elem, getattr(ds, "_character_set", None))
    return fp.getvalue()[8:]  # implicit VR header: tag (4) + length (4)


def write_raw(
    ds: Dataset,
    output: Path,
    *,
    tag: int | BaseTag = PIXEL_DATA,
    split: bool = False,
    pattern: str = "%02d",
) -> list[Path]:
    """Write the value (or each fragment) and return the files written."""
    if not split:
        output.write_bytes(element_value(ds, tag))
        return [output]
    if Tag(tag) != PIXEL_DATA:
        raise NotEncapsulated("only Pixel Data has fragments to split")
    written = []
    for index, fragment in enumerate(pixel_fragments(ds)):
        try:
            suffix = pattern % index
        except (TypeError, ValueError) as exc:
            raise RawError(f"bad pattern {pattern!r}: {exc}") from exc
        path = output.with_name(output.name + suffix)
        path.write_bytes(fragment)
        written.append(path)
    return written
