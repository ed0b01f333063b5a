"""The file store: where instance files live on disk, written durably and atomically.

Layout inside each AE's storage area::

    <area>/<h2>/<StudyInstanceUID>/<SOPInstanceUID>.dcm
    <area>/.tmp/                      partial writes; swept at start-up

``h2`` is two hex digits of a hash of the study UID, so that millions of studies never sit
in one folder.  Paths are built only from valid UIDs (``storage.uids``); any other UID value is
replaced by a digest (``path_component``).  Paths are stored in the index relative to the area.

A write is: temp file in ``.tmp`` (same filesystem) -> write -> fsync -> rename into place ->
fsync of the folder.  Only after that may the index record it, and only after the index
commit may the node answer Success.

Exceptions::

    StoreError
     ├── InvalidUIDError      a UID that must not become a path
     └── OutOfSpaceError      ENOSPC/EDQUOT while writing (C-STORE 0xA700)
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from storage.uids import is_valid_uid

logger = logging.getLogger(__name__)

TMP_DIR = ".tmp"


class StoreError(Exception):
    """A file store operation failed."""


class InvalidUIDError(StoreError):
    """A UID that is not a valid UID was about to become part of a path."""


class OutOfSpaceError(StoreError):
    """The filesystem is full (or over its quota)."""


def path_component(uid: str) -> str:
    """A UID as a file name: itself when valid, else ``x`` + a hash of it.

    A valid UID is digits and dots, so it is a safe name; anything else (``../../x``, a
    hex string from a broken generator) is replaced by a digest that cannot collide with a
    valid UID, since no valid UID starts with ``x``.
    """
    if is_valid_uid(uid):
        return uid
    if not uid:
        raise InvalidUIDError("empty UID")
    return "x" + hashlib.blake2s(uid.encode("utf-8", "surrogateescape")).hexdigest()[:40]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileStore:
    """One storage area (an AE title's folder)."""

    def __init__(self, area: Path) -> None:
        self.area = Path(area).resolve()
        self.tmp = self.area / TMP_DIR
        self.tmp.mkdir(parents=True, exist_ok=True)

    def relative_path(self, study_uid: str, sop_uid: str, *, unique: bool = False) -> str:
        """Where an instance goes, relative to the area; ``unique`` adds a random suffix.

        The suffix is used when an instance replaces one already stored: the new file must
        not overwrite the old one before the index points at it.
        """
        study, sop = path_component(study_uid), path_component(sop_uid)
        h2 = hashlib.blake2s(study_uid.encode(), digest_size=1).hexdigest()
        name = f"{sop}.{secrets.token_hex(4)}.dcm" if unique else f"{sop}.dcm"
        return f"{h2}/{study}/{name}"

    def absolute(self, relative: str) -> Path:
        path = (self.area / relative).resolve()
        if self.area not in path.parents:
            raise InvalidUIDError(f"path escapes the storage area: {relative!r}")
        return path

    def put(self, relative: str, chunks: Iterable[bytes]) -> int:
        """Write ``chunks`` durably to ``relative``; returns the size in bytes."""
        final = self.absolute(relative)
        tmp = self.tmp / f"{secrets.token_hex(8)}.part"
        size = 0
        try:
            with open(tmp, "xb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    size += len(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise OutOfSpaceError(f"no space left in {self.area}") from exc
            raise StoreError(f"cannot write {relative}: {exc}") from exc
        return size

    def delete(self, relative: str) -> None:
        """Remove a stored file and the study folder if it became empty."""
        path = self.absolute(relative)
        path.unlink(missing_ok=True)
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    def sweep_temp(self) -> int:
        """Remove partial writes left by a crash; returns how many were removed."""
        removed = 0
        for leftover in self.tmp.glob("*.part"):
            leftover.unlink(missing_ok=True)
            removed += 1
        if removed:
            logger.warning("removed %d partial file(s) left in %s", removed, self.tmp)
        return removed

    def walk(self) -> Iterable[str]:
        """Every stored instance file, as a path relative to the area."""
        for path in self.area.glob("*/*/*.dcm"):
            yield path.relative_to(self.area).as_posix()
