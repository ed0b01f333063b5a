"""Attribute-level differences between two datasets, as ``gdcmdiff`` reports them.

Elements are matched by tag at every depth (sequence items by position), so a changed
value deep in a sequence is reported with its path, not as "the whole sequence differs".
Values are compared decoded (a string padded differently is the same value); binary
values byte for byte.

Exceptions: none of its own; reading files is the caller's job (``dump.read_dataset``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from node.tools.dump import element_name

__all__ = ["Difference", "diff_datasets", "format_difference"]

Kind = Literal["only_a", "only_b", "vr", "value", "items"]


@dataclass(frozen=True)
class Difference:
    """One difference; ``path`` is ((sequence tag, item index), ...) above ``tag``."""

    path: tuple[tuple[int, int], ...]
    tag: int
    kind: Kind
    keyword: str
    a: str | None
    b: str | None

    @property
    def location(self) -> str:
        parts = [f"({t >> 16:04X},{t & 0xFFFF:04X})[{i}]" for t, i in self.path]
        parts.append(f"({self.tag >> 16:04X},{self.tag & 0xFFFF:04X})")
        return ".".join(parts)


def _group_length(elem: DataElement) -> int | None:
    """A group length read as UN (implicit VR, absent from the dictionary) as a number."""
    value = elem.value
    if (int(elem.tag) & 0xFFFF) == 0 and isinstance(value, bytes) and len(value) == 4:
        return int.from_bytes(value, "little")
    return None


def _text(elem: DataElement) -> str:
    length = _group_length(elem)
    if length is not None:
        return str(length)
    value = elem.value
    if elem.VR == "SQ":
        return f"<sequence of {len(value or [])} item(s)>"
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def _normalised(elem: DataElement) -> Any:
    length = _group_length(elem)
    if length is not None:
        return str(length)
    value = elem.value
    if isinstance(value, bytes):
        return value.rstrip(b"\x00 ") if elem.VR not in ("OB", "OW", "UN") else value
    if isinstance(value, MultiValue | list | tuple):
        return tuple(str(v).strip() for v in value)
    if value is None:
        return ""
    return str(value).strip()


def diff_datasets(a: Dataset, b: Dataset, *, meta: bool = False) -> list[Difference]:
    """Every difference between ``a`` and ``b`` (file meta too when ``meta``)."""
    out: list[Difference] = []
    if meta:
        meta_a = getattr(a, "file_meta", None) or Dataset()
        meta_b = getattr(b, "file_meta", None) or Dataset()
        out += _walk(meta_a, meta_b, ())
    out += _walk(a, b, ())
    return out


def _walk(a: Dataset, b: Dataset, path: tuple[tuple[int, int], ...]) -> Iterator[Difference]:
    tags = sorted(set(a.keys()) | set(b.keys()))
    for tag in tags:
        ea = a[tag] if tag in a else None
        eb = b[tag] if tag in b else None
        either = ea if ea is not None else eb
        assert either is not None
        keyword = element_name(either, getattr(either, "private_creator", None))
        if ea is None:
            yield Difference(path, int(tag), "only_b", keyword, None, _text(either))
            continue
        if eb is None:
            yield Difference(path, int(tag), "only_a", keyword, _text(ea), None)
            continue
        if ea.VR == "SQ" and eb.VR == "SQ":
            items_a, items_b = list(ea.value or []), list(eb.value or [])
            if len(items_a) != len(items_b):
                yield Difference(
                    path, int(tag), "items", keyword, str(len(items_a)), str(len(items_b))
                )
            for index, (ia, ib) in enumerate(zip(items_a, items_b, strict=False)):
                yield from _walk(ia, ib, (*path, (int(tag), index)))
            continue
        if ea.VR != eb.VR and "UN" not in (ea.VR, eb.VR):
            yield Difference(path, int(tag), "vr", keyword, ea.VR, eb.VR)
            continue
        if _normalised(ea) != _normalised(eb):
            yield Difference(path, int(tag), "value", keyword, _text(ea), _text(eb))


def _clip(text: str | None, truncate: int | None) -> str:
    if text is None:
        return ""
    if truncate is not None and len(text) > truncate:
        return text[:truncate] + "..."
    return text


def format_difference(d: Difference, *, truncate: int | None = 64) -> str:
    """One line: ``-`` only in A, ``+`` only in B, ``!`` differs."""
    where = f"{d.location} {d.keyword}".rstrip()
    if d.kind == "only_a":
        return f"- {where}: {_clip(d.a, truncate)!r} (only in A)"
    if d.kind == "only_b":
        return f"+ {where}: {_clip(d.b, truncate)!r} (only in B)"
    if d.kind == "items":
        return f"! {where}: {d.a} item(s) != {d.b} item(s)"
    if d.kind == "vr":
        return f"! {where}: VR {d.a} != {d.b}"
    return f"! {where}: {_clip(d.a, truncate)!r} != {_clip(d.b, truncate)!r}"
