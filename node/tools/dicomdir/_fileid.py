"""File IDs: the ISO 9660 names a DICOMDIR may reference (PS3.10 8.2, 8.5; PS3.3 F.3.2.2).

A file ID is at most 8 components, each 1 to 8 characters from ``A-Z``, ``0-9`` and ``_``.
Media written by :func:`FileIdAllocator` always conform; an existing folder is checked as
dcmmkdir does, optionally mapping lower case to upper case and dropping a trailing period
(dcmmkdir ``+m``), because ISO 9660 readers match names case-insensitively.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path, PurePath

from node.tools.dicomdir._errors import InvalidFileID

MAX_COMPONENTS = 8
MAX_COMPONENT_LENGTH = 8
_COMPONENT = re.compile(r"[A-Z0-9_]{1,8}")

#: Two-letter prefix of the file (or folder) name for each record type, so a listing of the
#: media tells what a file is.  Eight characters leave six digits: 999,999 entries per folder.
PREFIXES = {
    "PATIENT": "PA",
    "STUDY": "ST",
    "SERIES": "SE",
    "IMAGE": "IM",
    "RT DOSE": "RD",
    "RT STRUCTURE SET": "RS",
    "RT PLAN": "RP",
    "RT TREAT RECORD": "RX",
    "PRESENTATION": "PR",
    "WAVEFORM": "WV",
    "SR DOCUMENT": "SR",
    "KEY OBJECT DOC": "KO",
    "SPECTROSCOPY": "SP",
    "RAW DATA": "RW",
    "REGISTRATION": "RG",
    "FIDUCIAL": "FD",
    "HANGING PROTOCOL": "HP",
    "ENCAP DOC": "ED",
    "VALUE MAP": "VM",
    "STEREOMETRIC": "SX",
    "PALETTE": "PL",
    "IMPLANT": "IP",
    "IMPLANT ASSY": "IA",
    "IMPLANT GROUP": "IG",
    "PLAN": "PN",
    "MEASUREMENT": "MS",
    "SURFACE": "SF",
    "SURFACE SCAN": "SS",
    "TRACT": "TR",
    "ASSESSMENT": "AS",
    "RADIOTHERAPY": "RT",
}


def is_conformant(components: Sequence[str]) -> bool:
    """Whether ``components`` form a valid file ID."""
    return 0 < len(components) <= MAX_COMPONENTS and all(
        _COMPONENT.fullmatch(part) for part in components
    )


def file_id_for(
    path: Path,
    root: Path,
    *,
    map_filenames: bool = False,
    resolver: Resolver | None = None,
) -> tuple[str, ...]:
    """The file ID of ``path`` relative to the file-set ``root``.

    ``resolver``: resolves paths with a cache of folders (many files, one root).

    Raises
    ------
    InvalidFileID
        ``path`` is outside ``root`` or its name does not conform (after mapping, if asked).
    """
    resolve = resolver or Resolver()
    try:
        relative = PurePath(resolve(path).relative_to(resolve.folder(root)))
    except ValueError as exc:
        raise InvalidFileID(f"{path} is outside the file-set root {root}") from exc
    parts = list(relative.parts)
    if map_filenames:
        parts = [part.upper() for part in parts]
        if parts and parts[-1].endswith(".") and len(parts[-1]) > 1:
            parts[-1] = parts[-1][:-1]
    if not is_conformant(parts):
        raise InvalidFileID(
            f"{relative.as_posix()!r} is not an ISO 9660 file ID (at most {MAX_COMPONENTS} "
            f"components of 1-{MAX_COMPONENT_LENGTH} characters A-Z, 0-9, _)"
        )
    return tuple(parts)


class Resolver:
    """``Path.resolve()`` of many files in few folders: each folder is resolved once.

    Why: resolving costs a system call per path component; for the files of a file-set
    (thousands in a handful of folders) only the file name itself can still be a link.
    """

    def __init__(self) -> None:
        self._folders: dict[Path, Path] = {}

    def folder(self, path: Path) -> Path:
        """``path.resolve()``, remembered."""
        found = self._folders.get(path)
        if found is None:
            found = self._folders[path] = path.resolve()
        return found

    def __call__(self, path: Path) -> Path:
        """``path.resolve()``: the resolved folder plus the name, unless the name is a link."""
        name = path.name
        if name in ("", ".", "..") or os.path.islink(path):
            return path.resolve()
        return self.folder(path.parent) / name


class FileIdAllocator:
    """Hands out conformant names for a media folder, one counter per parent folder.

    Why per folder: numbering restarts in each series so the six digits of a component are
    never exhausted by a large file-set, and the work per file is one dictionary lookup.
    """

    def __init__(self, top: str = "DICOM") -> None:
        if not _COMPONENT.fullmatch(top):
            raise InvalidFileID(f"{top!r} is not a valid file ID component")
        self.top = top
        self._counters: dict[tuple[str, ...], int] = {}

    def child(self, parent: tuple[str, ...], record_type: str) -> tuple[str, ...]:
        """A new name under ``parent`` (``()`` means the top folder) for ``record_type``."""
        base = parent or (self.top,)
        count = self._counters.get(base, 0) + 1
        if count > 999_999:
            raise InvalidFileID(f"more than 999,999 entries under {'/'.join(base)}")
        self._counters[base] = count
        prefix = PREFIXES.get(record_type, "XX")
        return (*base, f"{prefix}{count:06d}")
