"""Build a dataset from dcmdump-style text, as DCMTK ``dump2dcm`` does.

Input lines are ``(gggg,eeee) VR value`` (or a keyword instead of the tag; the VR may be
left out, the dictionary one is used), with anything after ``#`` ignored, so the output of
``dcmdump``, ``node-ctl dump --print-all`` or a hand-written query all work.  Values are
``[text]``, numbers separated by ``\\``, ``=UIDKeyword``, hex bytes (``00\\ff``) for OB/UN,
hex words for OW, or ``(no value available)``.  Sequences and items nest through their
``(fffe,e000)``/``(fffe,e00d)``/``(fffe,e0dd)`` lines (indentation is ignored), and an
encapsulated Pixel Data is rebuilt from its ``pi`` fragment lines.  Group 0002 goes to the
file meta information.

Exceptions::

    UndumpError            carries the line number
     +-- ShortenedValue     a value printed shortened ("..."): dump with --print-all
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import UID, ExplicitVRLittleEndian, UID_dictionary

__all__ = ["ShortenedValue", "UndumpError", "undump", "write_file"]


class UndumpError(Exception):
    """A line that cannot be turned into an element."""

    def __init__(self, line_number: int, message: str):
        super().__init__(f"line {line_number}: {message}")
        self.line_number = line_number


class ShortenedValue(UndumpError):
    """The value was printed shortened ("...") and cannot be rebuilt."""


ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD

_TAG = re.compile(r"^\(?(?P<g>[0-9A-Fa-f]{4}),(?P<e>[0-9A-Fa-f]{4})\)?$")
_COMMENT = re.compile(r"\s+#\s*(?:u/l|\d+),\s*\d+(?:\s.*)?$")
_VR = re.compile(r"^[A-Za-z?]{2}$")
#: DCMTK's names for transfer syntaxes that pydicom calls otherwise.
_DCMTK_UID_NAMES = {
    "LittleEndianImplicit": "1.2.840.10008.1.2",
    "LittleEndianExplicit": "1.2.840.10008.1.2.1",
    "BigEndianExplicit": "1.2.840.10008.1.2.2",
    "DeflatedLittleEndianExplicit": "1.2.840.10008.1.2.1.99",
}
_UID_BY_KEYWORD = {entry[4]: uid for uid, entry in UID_dictionary.items() if entry[4]}
_INTS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q"}


@dataclass
class _Frame:
    """A container being filled: a dataset, or a sequence waiting for items."""

    dataset: Dataset | None = None
    sequence: Sequence | None = None
    fragments: list[bytes] | None = None
    pixel_tag: BaseTag | None = None
    pixel_vr: str = "OB"
    extra: dict[str, Any] = field(default_factory=dict)


def _split_line(line: str) -> tuple[str, str | None, str]:
    """(tag text, VR or None, value text) of one element line."""
    line = _COMMENT.sub("", line.rstrip())
    head, _, rest = line.strip().partition(" ")
    rest = rest.strip()
    vr: str | None = None
    first, _, after = rest.partition(" ")
    if _VR.match(first) and not first.startswith("["):
        vr, rest = first.upper() if first not in ("na", "pi") else first, after.strip()
    elif rest.startswith("#"):
        rest = ""
    return head, vr, rest


def _parse_tag(text: str, number: int) -> BaseTag:
    match = _TAG.match(text)
    if match:
        return Tag(int(match.group("g"), 16), int(match.group("e"), 16))
    tag = tag_for_keyword(text)
    if tag is None:
        raise UndumpError(number, f"not a tag or keyword: {text!r}")
    return Tag(tag)


def _hex_bytes(text: str, number: int) -> bytes:
    try:
        return bytes(int(b, 16) for b in text.split("\\") if b)
    except ValueError:
        raise UndumpError(number, f"bad hex bytes: {text[:40]!r}") from None


def _value(tag: BaseTag, vr: str, text: str, number: int) -> Any:
    if text in ("", "(no value available)") or text.startswith("(no value"):
        return None
    if text.endswith("...") and not text.endswith("]"):
        raise ShortenedValue(number, "value was printed shortened: dump with --print-all")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    elif text.startswith("="):
        name = text[1:]
        uid = _DCMTK_UID_NAMES.get(name) or _UID_BY_KEYWORD.get(name)
        if uid is None:
            raise UndumpError(number, f"unknown UID name {name!r}")
        return uid
    parts = text.split("\\")
    try:
        if vr in _INTS:
            return [int(p) for p in parts] if len(parts) > 1 else int(parts[0])
        if vr in ("FL", "FD"):
            return [float(p) for p in parts] if len(parts) > 1 else float(parts[0])
        if vr == "AT":
            tags = [_parse_tag(p.strip("()"), number) for p in parts]
            return tags if len(tags) > 1 else tags[0]
        if vr in ("OB", "UN"):
            return _hex_bytes(text, number)
        if vr == "OW":
            return b"".join(struct.pack("<H", int(p, 16)) for p in parts)
        if vr in ("OL", "OV"):
            code = "<L" if vr == "OL" else "<Q"
            return b"".join(struct.pack(code, int(p)) for p in parts)
        if vr in ("OF", "OD"):
            code = "<f" if vr == "OF" else "<d"
            return b"".join(struct.pack(code, float(p)) for p in parts)
    except (ValueError, struct.error) as exc:
        raise UndumpError(number, f"bad {vr} value {text[:40]!r}: {exc}") from None
    return text


def undump(text: str) -> Dataset:
    """The dataset (file meta in ``file_meta``) described by dcmdump-style ``text``."""
    root = Dataset()
    meta = FileMetaDataset()
    stack: list[_Frame] = [_Frame(dataset=root)]
    for number, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        head, vr, value_text = _split_line(line)
        tag = _parse_tag(head, number)
        top = stack[-1]
        if tag == ITEM:
            if top.fragments is not None:
                if vr not in (None, "pi"):
                    raise UndumpError(number, "pixel item expected")
                value = _value(tag, "OB", value_text, number)
                top.fragments.append(value or b"")
                continue
            if top.sequence is None:
                raise UndumpError(number, "item outside a sequence")
            item = Dataset()
            top.sequence.append(item)
            stack.append(_Frame(dataset=item))
            continue
        if tag == ITEM_DELIMITER:
            if top.dataset is None or len(stack) < 2 or stack[-2].sequence is None:
                raise UndumpError(number, "item delimiter without an item")
            stack.pop()
            continue
        if tag == SEQUENCE_DELIMITER:
            if top.fragments is not None:
                _finish_pixels(stack.pop(), stack[-1], number)
                continue
            if top.sequence is None:
                raise UndumpError(number, "sequence delimiter without a sequence")
            stack.pop()
            continue
        container = top.dataset
        if container is None:
            raise UndumpError(number, "element directly inside a sequence (no item)")
        if vr is None or vr in ("na", "??"):
            try:
                vr = dictionary_VR(tag).split(" or ")[0]
            except KeyError:
                vr = "UN"
        if vr == "SQ":
            sequence = Sequence([])
            container.add(DataElement(tag, "SQ", sequence))
            stack.append(_Frame(sequence=sequence))
            continue
        if tag == 0x7FE00010 and value_text.startswith("(PixelSequence"):
            stack.append(_Frame(fragments=[], pixel_tag=tag, pixel_vr=vr, dataset=container))
            continue
        value = _value(tag, vr, value_text, number)
        target = meta if tag.group == 0x0002 and container is root else container
        try:
            target.add(DataElement(tag, vr, value))
        except (ValueError, TypeError) as exc:
            raise UndumpError(number, f"bad value for {vr}: {exc}") from None
    if len(stack) != 1:
        raise UndumpError(len(text.splitlines()), "unterminated sequence or item")
    root.file_meta = meta
    return root


def _finish_pixels(frame: _Frame, parent: _Frame, number: int) -> None:
    assert frame.fragments is not None and frame.pixel_tag is not None
    container = frame.dataset or parent.dataset
    if container is None:
        raise UndumpError(number, "pixel sequence outside a dataset")
    stream = b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(f)) + f for f in frame.fragments)
    elem = DataElement(frame.pixel_tag, frame.pixel_vr, stream, is_undefined_length=True)
    container.add(elem)


def write_file(ds: Dataset, path: Path) -> None:
    """Write as a DICOM file (preamble, meta), filling the meta gaps as dump2dcm does."""
    meta = ds.file_meta if hasattr(ds, "file_meta") else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if "MediaStorageSOPClassUID" not in meta and "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
    if "MediaStorageSOPInstanceUID" not in meta and "SOPInstanceUID" in ds:
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta = meta
    ts = UID(str(meta.TransferSyntaxUID))
    ds.preamble = b"\x00" * 128
    ds.save_as(
        path,
        implicit_vr=ts.is_implicit_VR,
        little_endian=ts.is_little_endian,
        enforce_file_format=False,
    )
