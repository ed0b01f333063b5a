"""Dumb mode (``gdcmanon --dumb``): empty, remove or replace exactly the attributes named.

Why a guard on Type 1: emptying or removing an attribute the IOD requires (SOP Instance
UID, Rows, Modality...) produces a file other software rejects, usually long after the
edit.  Such an edit is refused unless forced.  The guard only speaks for standard SOP
Classes: a private SOP Class has no IOD to check against.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from pydicom import config
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

from node.tools.anonymize.errors import OptionError, Type1AttributeError
from node.tools.anonymize.iod import IodTypes, load_iod_types

__all__ = ["DumbEdit", "EditKind", "apply_edits", "parse_edit"]


class EditKind(enum.Enum):
    EMPTY = "empty"
    REMOVE = "remove"
    REPLACE = "replace"


@dataclass(frozen=True)
class DumbEdit:
    """One edit.  ``creator`` locates a private tag's block by its Private Creator, as in
    ``gdcmanon --remove 0029,10,"SIEMENS CSA HEADER"`` (element given as its low byte)."""

    kind: EditKind
    tag: int
    creator: str | None = None
    value: str | None = None

    def describe(self) -> str:
        where = f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})"
        if self.creator:
            where += f"[{self.creator}]"
        return f"--{self.kind.value} {where}"


def _hex(text: str, what: str) -> int:
    try:
        value = int(text.strip(), 16)
    except ValueError:
        raise OptionError(f"{what}: {text!r} is not hexadecimal") from None
    if not 0 <= value <= 0xFFFF:
        raise OptionError(f"{what}: {text!r} out of range")
    return value


def parse_edit(kind: EditKind, text: str) -> DumbEdit:
    """Parse a command-line edit.

    ``--empty``/``--remove``: ``gggg,eeee`` or ``gggg,ee,CREATOR``.  ``--replace``:
    ``gggg,eeee=VALUE`` or ``gggg,ee,CREATOR=VALUE`` (gdcmanon's forms), or
    ``gggg,eeee,VALUE`` for a public tag.
    """
    value: str | None = None
    spec = text
    if kind is EditKind.REPLACE:
        if "=" in text:
            spec, value = text.split("=", 1)
        else:
            parts = text.split(",", 2)
            if len(parts) != 3:
                raise OptionError(f"--replace {text!r}: expected gggg,eeee=VALUE")
            spec, value = ",".join(parts[:2]), parts[2]
    parts = [p.strip() for p in spec.split(",", 2)]
    if len(parts) < 2:
        raise OptionError(f"--{kind.value} {text!r}: expected gggg,eeee")
    group = _hex(parts[0], f"--{kind.value}")
    element = _hex(parts[1], f"--{kind.value}")
    creator = parts[2] if len(parts) == 3 and parts[2] else None
    if creator is not None and group % 2 == 0:
        raise OptionError(f"--{kind.value} {text!r}: a Private Creator needs an odd group")
    if kind is EditKind.REPLACE and value is not None and group % 2 and creator is None:
        if "=" not in text:
            raise OptionError(
                f"--replace {text!r}: for a private tag write gggg,ee,CREATOR=VALUE "
                "or gggg,eeee=VALUE"
            )
    if creator is not None:
        element &= 0xFF
    return DumbEdit(kind, (group << 16) | element, creator, value)


def _locate(ds: Dataset, edit: DumbEdit) -> int | None:
    """The actual tag of ``edit`` in ``ds`` (private block found through its creator)."""
    if edit.creator is None:
        return edit.tag
    group = edit.tag >> 16
    for block in range(0x10, 0x100):
        creator = ds.get((group << 16) | block)
        if creator is not None and str(creator.value or "").strip() == edit.creator:
            return (group << 16) | (block << 8) | (edit.tag & 0xFF)
    return None


def _check_type1(ds: Dataset, tag: int, edit: DumbEdit, iod: IodTypes) -> None:
    sop_class = str(ds.get("SOPClassUID", "") or "").strip("\0 ")
    name = iod.iod_of(sop_class)
    if name is None or (tag >> 16) % 2:
        return
    kind = iod.type_of(sop_class, (tag,))
    if kind in ("1", "1C"):
        keyword = keyword_for_tag(tag) or "attribute"
        raise Type1AttributeError(
            f"{edit.describe()}: {keyword} is Type {kind} in the {name} IOD "
            "(use --force to do it anyway)"
        )


def _vr_for(ds: Dataset, tag: int) -> str:
    if tag in ds:
        return str(ds[tag].VR)
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        where = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
        raise OptionError(f"{where}: unknown VR and not in the data set") from None


def _typed(vr: str, text: str) -> object:
    values = text.split("\\")
    try:
        if vr in ("US", "SS", "UL", "SL", "SV", "UV"):
            out: list[object] = [int(v) for v in values]
        elif vr in ("FL", "FD"):
            out = [float(v) for v in values]
        elif vr == "AT":
            out = [int(v.replace(",", ""), 16) for v in values]
        else:
            return text
    except ValueError:
        raise OptionError(f"value {text!r} is not valid for VR {vr}") from None
    return out if len(out) > 1 else out[0]


def apply_edits(
    ds: Dataset,
    edits: Iterable[DumbEdit],
    *,
    force: bool = False,
    iod_types: IodTypes | None = None,
) -> list[str]:
    """Apply ``edits`` to the top level of ``ds`` in order; returns notes for the user."""
    iod = iod_types or load_iod_types()
    notes: list[str] = []
    for edit in edits:
        tag = _locate(ds, edit)
        if tag is None:
            if edit.kind is EditKind.REPLACE:
                raise OptionError(f"{edit.describe()}: Private Creator not found")
            notes.append(f"{edit.describe()}: Private Creator not found, nothing done")
            continue
        empty_value = edit.kind is EditKind.REPLACE and not (edit.value or "").strip()
        if edit.kind in (EditKind.EMPTY, EditKind.REMOVE) or empty_value:
            if tag not in ds:
                continue
            if not force:
                _check_type1(ds, tag, edit, iod)
        if edit.kind is EditKind.REMOVE:
            del ds[tag]
            continue
        vr = _vr_for(ds, tag)
        if edit.kind is EditKind.EMPTY or empty_value:
            if tag not in ds:
                continue
            elem = ds[tag]
            if vr == "SQ":
                elem.value = []
            elif vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
                elem.value = b""
            else:
                elem.value = None if vr in ("US", "SS", "UL", "SL", "FL", "FD", "AT") else ""
            continue
        if vr in ("SQ", "OB", "OW", "OD", "OF", "OL", "OV", "UN") or " or " in vr:
            raise OptionError(f"{edit.describe()}: cannot replace a value of VR {vr}")
        value = _typed(vr, edit.value or "")
        if isinstance(value, list):
            singles: list[object] = list(value)
        else:
            singles = value.split("\\") if isinstance(value, str) else [value]
        for single in singles:
            try:
                validate_value(vr, single, config.RAISE)
            except ValueError as exc:
                raise OptionError(f"{edit.describe()}: {exc}") from None
        if tag in ds:
            ds[tag].value = value
        else:
            ds[tag] = DataElement(tag, vr, value)
    return notes
