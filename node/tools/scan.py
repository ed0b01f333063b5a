"""Read a few attributes from every file of a directory tree, as ``gdcmscanner`` does.

Only the header is parsed (``stop_before_pixels`` and ``specific_tags``), so scanning
thousands of files costs little more than opening them.  Files that are not DICOM are
reported as unreadable rather than stopping the scan.

Exceptions::

    ScanError
     +-- BadTag         a tag or keyword that cannot be parsed
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import keyword_for_tag, tag_for_keyword
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, Tag

__all__ = ["BadTag", "ScanError", "ScanRow", "files_under", "parse_tag", "scan", "summarize"]


class ScanError(Exception):
    """Base of this module's errors."""


class BadTag(ScanError):
    """A tag given as text cannot be parsed."""


@dataclass(frozen=True)
class ScanRow:
    path: Path
    readable: bool
    values: dict[int, str | None] = field(default_factory=dict)  #: None: absent


def parse_tag(text: str) -> BaseTag:
    """``0010,0020``, ``10,20``, ``(0010,0020)``, ``00100020`` or ``PatientID``."""
    text = text.strip().strip("()")
    if "," in text:
        group, element = text.split(",", 1)
        try:
            return Tag(int(group, 16), int(element, 16))
        except ValueError:
            raise BadTag(f"not a tag: {text!r}") from None
    if re.fullmatch(r"[0-9A-Fa-f]{8}", text):
        return Tag(int(text, 16))
    tag = tag_for_keyword(text)
    if tag is None:
        raise BadTag(f"unknown keyword: {text!r}")
    return Tag(tag)


def files_under(directory: Path, *, recursive: bool) -> list[Path]:
    found = directory.rglob("*") if recursive else directory.iterdir()
    return sorted(p for p in found if p.is_file())


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return "" if value is None else str(value)


def scan(
    paths: Iterable[Path],
    tags: list[BaseTag],
    *,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[ScanRow]:
    """One row per path with the value of each tag (top level only)."""
    for count, path in enumerate(paths, start=1):
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=list(tags))
            values: dict[int, str | None] = {}
            for tag in tags:
                values[int(tag)] = _text(ds[tag].value) if tag in ds else None
            row = ScanRow(path, True, values)
        except (InvalidDicomError, OSError, ValueError, EOFError, TypeError, KeyError):
            row = ScanRow(path, False, {int(t): None for t in tags})
        if on_progress is not None:
            on_progress(count)
        yield row


def summarize(rows: Iterable[ScanRow], tags: list[BaseTag]) -> dict[int, Counter[str]]:
    """For each tag, how many readable files carry each value (gdcmscanner's "Values")."""
    out: dict[int, Counter[str]] = {int(t): Counter() for t in tags}
    for row in rows:
        if not row.readable:
            continue
        for tag, value in row.values.items():
            if value is not None:
                out[tag][value] += 1
    return out


def tag_label(tag: int) -> str:
    keyword = keyword_for_tag(tag)
    text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return f"{text} {keyword}" if keyword else text
