"""Textual dump of a DICOM dataset, in the layout DCMTK's ``dcmdump`` made familiar.

Each line is ``(gggg,eeee) VR value  # length, VM name``; sequences and items nest by two
spaces and end with their delimitation lines; encapsulated Pixel Data shows one ``pi``
line per fragment.  Lines are produced as :class:`DumpLine` records first, so tests (and a
``--json`` caller) can compare tags and values without parsing text.

Why lengths are worked out the way they are: pydicom decodes elements lazily, and a
``RawDataElement`` still knows the length it had in the file, which is what a user
debugging a file wants to see.  Elements that were already decoded (or built in memory)
get the length they would have when encoded in the dataset's transfer syntax.

Exceptions::

    DumpError
     +-- UnreadableFile      not a DICOM file or data set pydicom can parse
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.charset import default_encoding
from pydicom.datadict import dictionary_keyword, get_private_entry
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import correct_ambiguous_vr_element, write_data_element
from pydicom.multival import MultiValue
from pydicom.uid import UID
from pydicom.valuerep import AMBIGUOUS_VR

__all__ = [
    "DumpError",
    "DumpLine",
    "UnreadableFile",
    "dump",
    "dump_lines",
    "read_dataset",
]

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
UNDEFINED = 0xFFFFFFFF

#: Printed value width before ``...`` (dcmdump's default "print short" mode).
SHORT_VALUE = 66

_TEXT_VRS = {
    "AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC",
    "UI", "UR", "UT",
}  # fmt: skip
_BINARY_INT = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "UV": "Q", "SV": "q"}
_BINARY_FLOAT = {"FL": ("f", 9), "FD": ("d", 17)}
_WORDS = {"OW": (2, "H"), "OL": (4, "L"), "OF": (4, "f"), "OD": (8, "d"), "OV": (8, "Q")}
_LONG_HEADER_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}


class DumpError(Exception):
    """Base of this module's errors."""


class UnreadableFile(DumpError):
    """The file is not DICOM (or is damaged beyond what pydicom reads)."""


@dataclass(frozen=True)
class DumpLine:
    """One printed line: an element, an item, or a delimiter (``vr`` ``na``/``pi``)."""

    depth: int
    tag: int
    vr: str
    length: int | None  #: ``None``: undefined length
    vm: int
    value: str
    name: str
    private_creator: str | None = None

    @property
    def tag_text(self) -> str:
        return f"({self.tag >> 16:04x},{self.tag & 0xFFFF:04x})"

    def format(self) -> str:
        length = "u/l" if self.length is None else f"{self.length:>3}"
        head = f"{'  ' * self.depth}{self.tag_text} {self.vr} {self.value}"
        return f"{head:<{55 + 2 * self.depth}} # {length}, {self.vm} {self.name}"


# --------------------------------------------------------------------------- reading


def read_dataset(path: Path, *, stop_before_pixels: bool = False) -> Dataset:
    """Read a DICOM file, or a bare data set without preamble and meta (like dcmdump +f)."""
    try:
        return dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        pass
    except (OSError, ValueError, EOFError, TypeError, struct.error) as exc:
        raise UnreadableFile(f"{path}: {exc}") from exc
    try:
        ds = dcmread(path, force=True, stop_before_pixels=stop_before_pixels)
    except (OSError, ValueError, EOFError, TypeError, struct.error, InvalidDicomError) as exc:
        raise UnreadableFile(f"{path}: {exc}") from exc
    tags = [int(t) for t in list(ds.keys())[:4]]
    if not tags or not _plausible(tags):
        raise UnreadableFile(f"{path}: not a DICOM file")
    return ds


def _plausible(tags: list[int]) -> bool:
    """Does a preamble-less read look like a data set (and not any bytes at all)?

    A bare data set starts at a low group (0008 in practice) with ascending tags; text
    read as DICOM gives random groups.
    """
    if tags != sorted(tags) or (tags[0] >> 16) not in (0x0000, 0x0002, 0x0004, 0x0008):
        return False
    return all((t >> 16) <= 0x7FE0 or (t >> 16) == 0xFFFE for t in tags)


# --------------------------------------------------------------------------- values


def _clip(text: str, width: int | None) -> str:
    if width is None or len(text) <= width + 3:
        return text
    return text[:width] + "..."


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, MultiValue | list | tuple):
        return list(value)
    return [value]


def _float_text(value: float, digits: int) -> str:
    return format(float(value), f".{digits}g")


def _hex_bytes(data: bytes, width: int | None) -> str:
    limit = len(data) if width is None else (width // 3) + 2
    return "\\".join(f"{b:02x}" for b in data[:limit])


def _words(data: bytes, vr: str, little: bool, width: int | None) -> str:
    size, code = _WORDS[vr]
    count = len(data) // size
    limit = count if width is None else min(count, width // 3 + 1)
    order = "<" if little else ">"
    values = struct.unpack(f"{order}{limit}{code}", data[: limit * size])
    if vr in ("OF", "OD"):
        return "\\".join(_float_text(v, 9 if vr == "OF" else 17) for v in values)
    if vr in ("OL", "OV"):  # dcmdump prints these as decimal numbers
        return "\\".join(str(v) for v in values)
    return "\\".join(f"{v:0{size * 2}x}" for v in values)


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, bytes | list | MultiValue):
        return len(value) == 0
    return (
        isinstance(value, str)
        and value == ""
        or (type(value).__name__ == "PersonName" and str(value) == "")
    )


def format_value(elem: DataElement, *, little: bool = True, width: int | None = SHORT_VALUE) -> str:
    """The value column for one (non-sequence) element."""
    vr = elem.VR
    value = elem.value
    if _is_empty(value):
        return "(no value available)"
    if isinstance(value, bytes):  # binary VRs, and values pydicom could not convert
        if vr in _WORDS and len(value) % _WORDS[vr][0] == 0:
            return _clip(_words(value, vr, little, width), width)
        return _clip(_hex_bytes(value, width), width)
    if vr in _TEXT_VRS:
        text = "\\".join("" if v is None else str(v) for v in _as_list(value))
        return _clip(f"[{text}]", width)
    if vr in _BINARY_INT:
        return _clip("\\".join(str(int(v)) for v in _as_list(value)), width)
    if vr in _BINARY_FLOAT:
        digits = _BINARY_FLOAT[vr][1]
        return _clip("\\".join(_float_text(v, digits) for v in _as_list(value)), width)
    if vr == "AT":
        tags = [int(v) for v in _as_list(value)]
        return _clip("\\".join(f"({t >> 16:04x},{t & 0xFFFF:04x})" for t in tags), width)
    return _clip(f"[{value}]", width)


def element_name(elem: DataElement, creator: str | None) -> str:
    """Keyword (public), ``CREATOR: name`` (private), dcmdump's names for the rest."""
    tag = int(elem.tag)
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0x0000:
        return (
            "FileMetaInformationGroupLength"
            if group == 2
            else ("PrivateGroupLength" if group % 2 else "GenericGroupLength")
        )
    if group % 2:
        if 0x0010 <= element <= 0x00FF:
            return "PrivateCreator"
        if creator:
            try:
                name = get_private_entry(tag, creator)[2]
            except KeyError:
                name = "Unknown"
            return f"{creator}: {name}"
        return "Unknown Tag & Data"
    try:
        return dictionary_keyword(tag) or "Unknown Tag & Data"
    except KeyError:
        return "Unknown Tag & Data"


# --------------------------------------------------------------------------- lengths


def _encoded_length(elem: DataElement, implicit: bool, little: bool, charset: Any) -> int:
    fp = DicomBytesIO()
    fp.is_implicit_VR = implicit
    fp.is_little_endian = little
    write_data_element(fp, elem, charset)
    header = 8 if implicit or elem.VR not in _LONG_HEADER_VRS else 12
    return fp.tell() - header


# --------------------------------------------------------------------------- walking


def _encoding(ds: Dataset) -> tuple[bool, bool]:
    implicit, little = ds.original_encoding
    meta = getattr(ds, "file_meta", None)
    ts = meta.get("TransferSyntaxUID") if meta is not None else None
    if implicit is None and ts is not None:
        uid = UID(str(ts))
        if uid.is_transfer_syntax:
            return uid.is_implicit_VR, uid.is_little_endian
    return (True if implicit is None else bool(implicit)), (
        True if little is None else bool(little)
    )


def dump_lines(
    ds: Dataset, *, meta: bool = False, width: int | None = SHORT_VALUE
) -> Iterator[DumpLine]:
    """Every line of the dump of ``ds`` (file meta first when ``meta``)."""
    implicit, little = _encoding(ds)
    file_meta = getattr(ds, "file_meta", None)
    if meta and file_meta is not None:
        yield from _walk(file_meta, 0, False, True, width, encapsulated=False)[0]
    encapsulated = False
    if file_meta is not None and "TransferSyntaxUID" in file_meta:
        ts = UID(str(file_meta.TransferSyntaxUID))
        encapsulated = ts.is_transfer_syntax and ts.is_encapsulated
    yield from _walk(ds, 0, implicit, little, width, encapsulated=encapsulated)[0]


def _element(ds: Dataset, raw: RawDataElement, charset: Any) -> DataElement:
    """Decode one raw element without storing it back into ``ds`` (a dump reads only)."""
    encoding = charset if raw.tag != 0x00080005 else default_encoding
    elem = convert_raw_data_element(raw, encoding=encoding, ds=ds)
    if elem.VR in AMBIGUOUS_VR:
        elem = correct_ambiguous_vr_element(elem, ds, raw.is_little_endian)
    return elem


def _private_creators(ds: Dataset) -> dict[tuple[int, int], str]:
    creators: dict[tuple[int, int], str] = {}
    for tag in ds.keys():
        if tag.is_private and 0x0010 <= (tag & 0xFFFF) <= 0x00FF:
            try:
                value = ds[tag].value
            except Exception:
                continue
            if isinstance(value, str) and value:
                creators[(tag >> 16, tag & 0xFF)] = value.strip()
    return creators


def _header_size(vr: str, implicit: bool) -> int:
    return 8 if implicit or vr not in _LONG_HEADER_VRS else 12


def _walk(
    ds: Dataset,
    depth: int,
    implicit: bool,
    little: bool,
    width: int | None,
    *,
    encapsulated: bool,
) -> tuple[list[DumpLine], int]:
    """Lines for every element of ``ds``, and the number of bytes they encode to.

    Sizes are summed bottom-up so an explicit-length item or sequence shows its length
    without encoding the same nested data once per level.
    """
    lines: list[DumpLine] = []
    size = 0
    charset = ds.original_character_set or getattr(ds, "_character_set", None)
    creators = _private_creators(ds)
    for tag in sorted(ds.keys()):
        raw = ds.get_item(tag)
        raw_length: int | None = None
        file_vr: str | None = None
        if isinstance(raw, RawDataElement):
            raw_length = None if raw.length == UNDEFINED else int(raw.length)
            file_vr = raw.VR
        try:
            elem = _element(ds, raw, charset) if isinstance(raw, RawDataElement) else ds[tag]
        except Exception as exc:  # a damaged element must not stop the dump
            vr = file_vr or "UN"
            lines.append(
                DumpLine(
                    depth, int(tag), vr, raw_length, 0, f"(unreadable value: {exc})",
                    "Unknown Tag & Data",
                )
            )  # fmt: skip
            size += _header_size(vr, implicit) + (raw_length or 0)
            continue
        creator = None
        if tag.is_private and (tag & 0xFFFF) >= 0x1000:
            creator = creators.get(((tag >> 16), (tag & 0xFF00) >> 8))
        name = element_name(elem, creator)
        value_bytes = raw.value if isinstance(raw, RawDataElement) else None
        if elem.VR == "SQ" and file_vr != "UN":
            seq_lines, seq_size = _sequence(elem, depth, implicit, little, width, name, creator)
            lines += seq_lines
            size += _header_size("SQ", implicit) + seq_size
            continue
        if (
            int(tag) == PIXEL_DATA
            and (encapsulated or raw_length is None and isinstance(raw, RawDataElement))
            and isinstance(elem.value, bytes)
        ):
            pix_lines, pix_size = _pixel_sequence(elem.value, depth, elem.VR, width, name)
            lines += pix_lines
            size += 12 + pix_size
            continue
        if file_vr == "UN" and elem.VR != "UN":
            # Show what the file says: pydicom re-types UN from its dictionaries.
            vr, vm = "UN", (1 if value_bytes else 0)
            text = (
                _clip(_hex_bytes(value_bytes, width), width)
                if value_bytes
                else ("(no value available)")
            )
        elif (
            (tag & 0xFFFF) == 0
            and elem.VR == "UN"
            and isinstance(elem.value, bytes)
            and (len(elem.value) == 4)
        ):  # a group length: pydicom's dictionary only knows a few of them
            vr, vm = "UL", 1
            text = str(struct.unpack("<L" if little else ">L", elem.value)[0])
        else:
            vr = elem.VR
            vm = 0 if _is_empty(elem.value) else int(elem.VM)
            text = format_value(elem, little=little, width=width)
        if raw_length is None:
            try:
                raw_length = _encoded_length(elem, implicit, little, charset)
            except Exception:
                value = elem.value
                raw_length = len(value) if isinstance(value, bytes | str) else 0
        lines.append(DumpLine(depth, int(tag), vr, raw_length, vm, text, name, creator))
        size += _header_size(vr, implicit) + raw_length
    return lines, size


def _sequence(
    elem: DataElement,
    depth: int,
    implicit: bool,
    little: bool,
    width: int | None,
    name: str,
    creator: str | None,
) -> tuple[list[DumpLine], int]:
    items: list[Dataset] = list(elem.value or [])
    undefined = bool(getattr(elem, "is_undefined_length", False))
    kind = "undefined" if undefined else "explicit"
    item_lines: list[DumpLine] = []
    total = 0
    for item in items:
        item_undefined = bool(getattr(item, "is_undefined_length_sequence_item", False))
        inner, inner_size = _walk(item, depth + 2, implicit, little, width, encapsulated=False)
        ikind = "undefined" if item_undefined else "explicit"
        item_lines.append(
            DumpLine(
                depth + 1, ITEM, "na", None if item_undefined else inner_size, 1,
                f"(Item with {ikind} length #={len(item)})", "Item",
            )
        )  # fmt: skip
        item_lines += inner
        end = "(ItemDelimitationItem)"
        if not item_undefined:
            end = "(ItemDelimitationItem for re-encoding)"
        item_lines.append(
            DumpLine(depth + 1, ITEM_DELIMITER, "na", 0, 0, end, "ItemDelimitationItem")
        )
        total += 8 + inner_size + (8 if item_undefined else 0)
    head = DumpLine(
        depth,
        int(elem.tag),
        "SQ",
        None if undefined else total,
        1,
        f"(Sequence with {kind} length #={len(items)})",
        name,
        creator,
    )
    end = "(SequenceDelimitationItem)" if undefined else "(SequenceDelimitationItem for re-encod.)"
    tail = DumpLine(depth, SEQUENCE_DELIMITER, "na", 0, 0, end, "SequenceDelimitationItem")
    return [head, *item_lines, tail], total + (8 if undefined else 0)


def fragments(value: bytes) -> list[bytes]:
    """Items of an encapsulated Pixel Data value (Basic Offset Table first), as stored."""
    out: list[bytes] = []
    offset = 0
    while offset + 8 <= len(value):
        group, element, length = struct.unpack_from("<HHL", value, offset)
        offset += 8
        if (group, element) == (0xFFFE, 0xE0DD):
            break
        if (group, element) != (0xFFFE, 0xE000) or length == UNDEFINED:
            raise DumpError(f"bad item tag ({group:04x},{element:04x}) in encapsulated data")
        out.append(value[offset : offset + length])
        offset += length
    return out


def _pixel_sequence(
    value: bytes, depth: int, vr: str, width: int | None, name: str
) -> tuple[list[DumpLine], int]:
    try:
        items = fragments(value)
    except DumpError as exc:
        line = DumpLine(depth, PIXEL_DATA, vr, None, 1, f"(damaged pixel sequence: {exc})", name)
        return [line], len(value)
    lines = [DumpLine(depth, PIXEL_DATA, vr, None, 1, f"(PixelSequence #={len(items)})", name)]
    for item in items:
        text = _clip(_hex_bytes(item, width), width) if item else "(no value available)"
        lines.append(DumpLine(depth + 1, ITEM, "pi", len(item), 1, text, "Item"))
    lines.append(
        DumpLine(
            depth, SEQUENCE_DELIMITER, "na", 0, 0, "(SequenceDelimitationItem)",
            "SequenceDelimitationItem",
        )
    )  # fmt: skip
    return lines, sum(8 + len(i) for i in items) + 8


# --------------------------------------------------------------------------- text


def dump(ds: Dataset, *, meta: bool = False, width: int | None = SHORT_VALUE) -> str:
    """The whole dump as text, with dcmdump's section headers."""
    out: list[str] = []
    file_meta = getattr(ds, "file_meta", None)
    if meta and file_meta is not None and len(file_meta):
        out.append("# Dicom-Meta-Information-Header")
        out.append("# Used TransferSyntax: Little Endian Explicit")
        meta_lines = _walk(file_meta, 0, False, True, width, encapsulated=False)[0]
        out.extend(line.format() for line in meta_lines)
        out.append("")
    out.append("# Dicom-Data-Set")
    ts = file_meta.get("TransferSyntaxUID") if file_meta is not None else None
    implicit, little = _encoding(ds)
    if ts is not None:
        out.append(f"# Used TransferSyntax: {UID(str(ts)).name or ts}")
    else:
        guessed = (
            "Little Endian Implicit"
            if implicit
            else ("Little Endian Explicit" if little else "Big Endian Explicit")
        )
        out.append(f"# Used TransferSyntax: {guessed}")
    out.extend(line.format() for line in dump_lines(ds, meta=False, width=width))
    return "\n".join(out) + "\n"
