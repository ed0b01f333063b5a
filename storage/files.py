"""The file store: where instance files live on disk, written durably and atomically.

Layout inside each AE's storage area::

    <area>/<h2>/<StudyInstanceUID>/<SOPInstanceUID>.dcm
    <area>/.tmp/                      writes not yet indexed; recovered at start-up

``h2`` is two hex digits of a hash of the study UID, so that millions of studies never sit
in one folder.  Paths are built only from valid UIDs (``storage.uids``); any other UID value is
replaced by a digest (``path_component``).  Paths are stored in the index relative to the area.

A write is: temp file in ``.tmp`` (same filesystem, its name encoding the final path) ->
write -> hard link into place -> fsync of the file, then of the folder -> index commit -> temp
name removed.  A file the receiver already wrote into ``.tmp`` is renamed to the temp name
instead of copied (``adopt``).  Only after the index commit may the node answer Success;
the temp name is the marker that lets ``recover()`` tell, after a crash, an unindexed file
from an indexed one.

Exceptions::

    StoreError
     ├── InvalidUIDError      a UID that must not become a path
     └── OutOfSpaceError      ENOSPC/EDQUOT while writing (C-STORE 0xA700)
"""

from __future__ import annotations

import base64
import errno
import glob
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from storage.durable import fsync_dir, fsync_file
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


@dataclass
class PendingWrite:
    """A file durable at its final path, not yet recorded by the index."""

    store: FileStore
    relative: str
    marker: Path
    size: int

    def done(self) -> None:
        """The index recorded the file: drop the marker (no fsync needed: see recover)."""
        self.marker.unlink(missing_ok=True)

    def abort(self) -> None:
        """The index did not record the file: remove it and the marker."""
        self.store.delete(self.relative)
        self.marker.unlink(missing_ok=True)


def _encode_marker(relative: str) -> str:
    return base64.urlsafe_b64encode(relative.encode()).decode().rstrip("=")


def _decode_marker(name: str) -> str | None:
    encoded = name.split(".", 1)[0]
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None


def _same_instance(name: str, sop: str) -> bool:
    """Is ``name`` ``<sop>.dcm`` or ``<sop>.<8 hex>.dcm`` (``relative_path``'s names)?"""
    rest = name[len(sop) :]
    return rest == ".dcm" or (len(rest) == 13 and rest.startswith(".") and rest.endswith(".dcm"))


def _store_error(exc: OSError, area: Path, relative: str) -> StoreError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return OutOfSpaceError(f"no space left in {area}")
    return StoreError(f"cannot write {relative}: {exc}")


class FileStore:
    """One storage area (an AE title's folder)."""

    def __init__(self, area: Path) -> None:
        self.area = Path(area).resolve()
        self._area_text = str(self.area)
        self._area_prefix = os.path.join(self._area_text, "")
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
        """The file's path; InvalidUIDError for a ``relative`` that leaves the area.

        The check is on the normalised path, not ``Path.resolve()``: the names are ours
        (``relative_path``), and resolving every component cost a system call each, on
        every ingest and every retrieved instance.
        """
        joined = os.path.normpath(os.path.join(self._area_text, relative))
        if not joined.startswith(self._area_prefix) or "\0" in relative:
            raise InvalidUIDError(f"path escapes the storage area: {relative!r}")
        return Path(joined)

    def put(self, relative: str, chunks: Iterable[bytes | memoryview]) -> PendingWrite:
        """Write ``chunks`` durably to ``relative``; the caller then indexes and finishes.

        The data goes to a temp file whose name encodes ``relative``; once fsynced it is
        hard-linked into place and the folder fsynced, so the file is durable at its final
        path while the temp name still marks it as not yet indexed.  ``PendingWrite.done()``
        (after the index commit) drops the marker; ``abort()`` removes both.  After a crash,
        ``recover()`` finds the markers and removes files the index never recorded.
        """
        final = self.absolute(relative)
        tmp = self.tmp / f"{_encode_marker(relative)}.{secrets.token_hex(4)}.part"
        size = 0
        try:
            with open(tmp, "xb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                    size += len(chunk)
            self._place(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _store_error(exc, self.area, relative) from exc
        return PendingWrite(self, relative, tmp, size)

    def adopt(self, relative: str, source: Path) -> PendingWrite:
        """As ``put``, for a file already written in this store's ``.tmp``: no copy.

        ``source`` (the receiver's file, holding exactly the bytes to store) is renamed to
        the marker name and linked into place; the rest is ``put``'s sequence.
        """
        final = self.absolute(relative)
        tmp = self.tmp / f"{_encode_marker(relative)}.{secrets.token_hex(4)}.part"
        try:
            os.rename(source, tmp)
        except OSError as exc:
            raise _store_error(exc, self.area, relative) from exc
        try:
            size = tmp.stat().st_size
            self._place(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise _store_error(exc, self.area, relative) from exc
        return PendingWrite(self, relative, tmp, size)

    def _place(self, tmp: Path, final: Path) -> None:
        """Hard-link the written ``tmp`` to ``final``, then make both durable.

        The link comes before the file's fsync: on journalling filesystems (ext4, XFS) that
        fsync then commits the new directory entries too, and the folder's fsync that POSIX
        asks for finds nothing left to do, instead of forcing a second journal commit.
        """
        self._make_dirs(final.parent)
        final.unlink(missing_ok=True)  # only a crashed earlier attempt leaves one here
        os.link(tmp, final)
        try:
            fsync_file(tmp)
            fsync_dir(final.parent)
        except OSError:
            final.unlink(missing_ok=True)
            raise

    def _make_dirs(self, folder: Path) -> None:
        """Create ``folder`` (and parents) durably: each new entry's parent is fsynced."""
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for new in reversed(missing):
            try:
                new.mkdir()
            except FileExistsError:
                continue
            fsync_dir(new.parent)

    def recover(self, is_indexed: Callable[[str], bool]) -> tuple[int, int]:
        """Finish what a crash interrupted; returns (files removed, markers cleared).

        A marker whose file the index records was indexed (and maybe acknowledged): only
        the marker goes.  A marker whose file the index does not record was never
        acknowledged: the file goes too.
        """
        removed = cleared = 0
        for marker in self.tmp.glob("*.part"):
            relative = _decode_marker(marker.name)
            if relative is not None:
                try:
                    final = self.absolute(relative)
                except InvalidUIDError:
                    final = None
                if final is not None and final.exists() and not is_indexed(relative):
                    if os.path.samefile(final, marker):
                        self.delete(relative)
                        removed += 1
                elif final is not None and final.exists():
                    removed += self._remove_replaced(relative, is_indexed)
            marker.unlink(missing_ok=True)
            cleared += 1
        for received in self.tmp.glob("tmp*.dcm"):  # a receive in progress at the crash
            received.unlink(missing_ok=True)
            cleared += 1
        if cleared:
            logger.warning(
                "recovered %s: %d unindexed file(s) removed, %d marker(s) cleared",
                self.area,
                removed,
                cleared,
            )
        return removed, cleared

    def _remove_replaced(self, relative: str, is_indexed: Callable[[str], bool]) -> int:
        """Files of the same instance beside an indexed one that the index no longer knows.

        An instance sent again is written under a new name and the index then points at
        it; the file it replaces is removed after the commit, before the new file's marker
        goes.  A crash in between leaves the marker, and the replaced file is found here.
        """
        folder, name = relative.rsplit("/", 1)
        sop = name.split(".")[0] if name.startswith("x") else name.rsplit(".", 2)[0]
        removed = 0
        for sibling in (self.area / folder).glob(f"{glob.escape(sop)}.*dcm"):
            other = f"{folder}/{sibling.name}"
            if other != relative and _same_instance(sibling.name, sop) and not is_indexed(other):
                self.delete(other)
                removed += 1
        return removed

    def delete(self, relative: str) -> None:
        """Remove a stored file and the study folder if it became empty."""
        path = self.absolute(relative)
        path.unlink(missing_ok=True)
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break

    def walk(self) -> Iterable[str]:
        """Every stored instance file, as a path relative to the area."""
        for path in self.area.glob("*/*/*.dcm"):
            yield path.relative_to(self.area).as_posix()
