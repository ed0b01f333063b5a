"""Record key values made valid for their VR before they go into the DICOMDIR.

Why: a DICOMDIR is checked on its own (dciodvfy, media validators) and one bad value copied
from an old file makes the whole medium fail.  ACR-NEMA dates and times (``1997.04.24``,
``15:26:10``) are rewritten in the DICOM form; a value that is still invalid counts as missing
(so a Type 1 key is invented, a Type 2 key left empty, a Type 3 key left out); text longer than
its VR allows is cut.  UIDs are never changed: the record must name the file's own UID.
"""

from __future__ import annotations

import re

from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue
from pydicom.uid import UID

_DA = re.compile(r"\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])")
_DA_OLD = re.compile(r"(\d{4})[./-](\d{2})[./-](\d{2})")
_TM = re.compile(r"([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,6})?)?)?")
_CS = re.compile(r"[A-Z0-9 _]{0,16}")
_IS = re.compile(r"\s*[+-]?\d{1,12}\s*")
_MAX_LENGTH = {"SH": 16, "LO": 64, "ST": 1024, "LT": 10240, "AE": 16}
_UID_ROOT = re.compile(r"[012](\.|$)")


def fix_da(value: str) -> str | None:
    """``value`` as a DICOM DA (ACR-NEMA ``YYYY.MM.DD`` rewritten), or ``None`` if invalid."""
    value = value.strip()
    old = _DA_OLD.fullmatch(value)
    if old:
        value = "".join(old.groups())
    return value if _DA.fullmatch(value) and not value.startswith("0000") else None


def fix_tm(value: str) -> str | None:
    """``value`` as a DICOM TM (``HH:MM:SS`` rewritten), or ``None`` if invalid."""
    value = value.strip()
    if ":" in value:
        value = value.replace(":", "")
    return value if _TM.fullmatch(value) else None


def _fix_one(vr: str, value: object) -> object | None:
    if vr == "DA":
        return fix_da(str(value))
    if vr == "TM":
        return fix_tm(str(value))
    if vr == "CS":
        text = str(value).strip()
        return text if _CS.fullmatch(text) else None
    if vr == "IS":
        return value if _IS.fullmatch(str(value)) else None
    if vr in _MAX_LENGTH and isinstance(value, str):
        return value[: _MAX_LENGTH[vr]]
    return value


def clean_element(elem: DataElement) -> tuple[DataElement | None, str | None]:
    """``elem`` made valid for its VR (``None`` if it cannot be) and a note of what changed."""
    vr = elem.VR
    if vr in ("SQ", "UI") or elem.value is None:
        return elem, None
    values = list(elem.value) if isinstance(elem.value, MultiValue | list) else [elem.value]
    fixed = [_fix_one(vr, value) for value in values]
    if any(value is None for value in fixed):
        return None, f"{elem.keyword} value {elem.value!r} is not a valid {vr}"
    if all(a is b for a, b in zip(fixed, values, strict=True)):
        return elem, None
    if [str(v) for v in fixed] == [str(v) for v in values]:
        return elem, None
    note = f"{elem.keyword} value {elem.value!r} rewritten as {fixed!r} for VR {vr}"
    value: object = fixed if len(fixed) > 1 else fixed[0]
    return DataElement(elem.tag, vr, value), note


def is_valid_uid(value: str) -> bool:
    """A UID as dciodvfy accepts it: PS3.5 9.1 syntax, at most 64 characters, root 0, 1 or 2."""
    return UID(value).is_valid and bool(_UID_ROOT.match(value))
