"""Files and directories: read each file once, apply a processor, write it once.

Why a processor callable: de-identification, re-identification and dumb mode differ only
in what happens to the dataset; reading (with the same tolerance as gdcmanon for files
without preamble), writing (fresh file meta, atomic rename) and walking a tree with a
summary are the same, and the job runner reuses ``process_file`` as is.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from node import IMPLEMENTATION_VERSION_NAME
from node.tools._parallel import effective_jobs, parallel_map
from node.tools.anonymize.errors import AnonymizeError, NotDicomError

__all__ = [
    "FileOutcome",
    "Processor",
    "Summary",
    "iter_files",
    "process_file",
    "process_tree",
    "read_dicom",
    "write_dicom",
]

logger = logging.getLogger(__name__)

#: Changes ``ds`` in place; returns notes for the user.
Processor = Callable[[Dataset], list[str]]

MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"


@dataclass
class FileOutcome:
    """One input file: ``status`` is ``done``, ``skipped`` or ``failed``."""

    source: Path
    target: Path | None
    status: str
    message: str = ""
    notes: list[str] = field(default_factory=list)
    not_dicom: bool = False


@dataclass
class Summary:
    """Counts and outcomes of a run over files."""

    outcomes: list[FileOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def done(self) -> int:
        return self.count("done")

    @property
    def skipped(self) -> int:
        return self.count("skipped")

    @property
    def failed(self) -> int:
        return self.count("failed")


def read_dicom(path: Path) -> Dataset:
    """Read a DICOM file; files without preamble/meta are read as gdcmanon reads them."""
    try:
        return dcmread(path)
    except InvalidDicomError:
        pass
    except (OSError, EOFError) as exc:
        raise NotDicomError(f"{path}: {exc}") from None
    try:
        ds = dcmread(path, force=True)
    except Exception as exc:  # noqa: BLE001 - anything here means "not DICOM"
        raise NotDicomError(f"{path}: not DICOM ({exc})") from None
    tags = [t for t in ds.keys() if t.group >= 0x0008]
    if not tags or "SOPClassUID" not in ds:
        raise NotDicomError(f"{path}: not DICOM")
    return ds


def _encoding(syntax: UID | None, ds: Dataset) -> tuple[bool, bool]:
    """(implicit VR, little endian) to write with: the syntax's, else the data set's."""
    if syntax is not None and syntax.is_transfer_syntax:
        return bool(syntax.is_implicit_VR), bool(syntax.is_little_endian)
    implicit, little = ds.original_encoding
    if implicit is None or little is None:
        return False, True
    return implicit, little


def _meta_for(ds: Dataset) -> FileMetaDataset:
    """Fresh file meta: only what identifies the instance and its encoding."""
    old = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta = FileMetaDataset()
    sop_class = str(ds.get("SOPClassUID", "") or "") or str(old.get("MediaStorageSOPClassUID", ""))
    sop_instance = str(ds.get("SOPInstanceUID", "") or "") or str(
        old.get("MediaStorageSOPInstanceUID", "")
    )
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if sop_instance:
        meta.MediaStorageSOPInstanceUID = sop_instance
    syntax = old.get("TransferSyntaxUID")
    if syntax is None:
        implicit, little = _encoding(None, ds)
        syntax = (
            ImplicitVRLittleEndian
            if implicit
            else (ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
        )
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _write_raw(ds: Dataset, path: Path, implicit: bool, little: bool) -> None:
    """Preamble, file meta and data set, for what ``save_as`` refuses: a transfer syntax
    newer than pydicom (Deflated Image Frame Compression...) or missing SOP UIDs."""
    meta = FileMetaDataset()
    meta.FileMetaInformationGroupLength = 0  # computed by write_file_meta_info
    meta.FileMetaInformationVersion = b"\0\1"
    for elem in ds.file_meta:
        if elem.tag not in (0x00020000, 0x00020001):
            meta.add(elem)
    with path.open("wb") as fh:
        fp = DicomFileLike(fh)
        fh.write(b"\0" * 128 + b"DICM")
        write_file_meta_info(fp, meta, enforce_standard=False)
        fp.is_implicit_VR, fp.is_little_endian = implicit, little
        write_dataset(fp, ds)


def write_dicom(ds: Dataset, path: Path) -> list[str]:
    """Write ``ds`` as a DICOM file with fresh file meta (temp file, then rename).

    Returns notes: a data set without SOP Class/Instance UID, or in a transfer syntax
    pydicom does not know, is written with the file meta it can have.
    """
    ds.file_meta = _meta_for(ds)
    syntax = UID(str(ds.file_meta.TransferSyntaxUID))
    implicit, little = _encoding(syntax, ds)
    if not implicit:
        for tag in list(ds.keys()):
            if ds.get_item(tag).VR is None:
                ds[tag]  # decode: read as implicit VR although the meta says explicit
    notes: list[str] = []
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        complete = "MediaStorageSOPInstanceUID" in ds.file_meta and (
            "MediaStorageSOPClassUID" in ds.file_meta
        )
        if complete and syntax.is_transfer_syntax:
            ds.save_as(tmp, enforce_file_format=True)
        else:
            if not complete:
                notes.append("no SOP Class/Instance UID: file meta written without them")
            _write_raw(ds, Path(tmp), implicit, little)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return notes


def process_file(source: Path, target: Path, processor: Processor) -> FileOutcome:
    """Read ``source``, apply ``processor``, write ``target``; failures become outcomes.

    ``NotDicomError`` is returned as ``skipped`` (the caller decides whether that stops).
    """
    try:
        ds = read_dicom(source)
    except NotDicomError as exc:
        return FileOutcome(source, None, "skipped", str(exc), not_dicom=True)
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY:
        return FileOutcome(
            source, None, "skipped", "DICOMDIR: build a new one from the output instead"
        )
    try:
        notes = processor(ds)
        notes += write_dicom(ds, target)
    except AnonymizeError as exc:
        return FileOutcome(source, None, "failed", str(exc))
    except Exception as exc:  # a broken file must not stop a directory run
        logger.debug("processing %s failed", source, exc_info=True)
        return FileOutcome(source, None, "failed", f"{type(exc).__name__}: {exc}")
    return FileOutcome(source, target, "done", notes=notes)


def iter_files(root: Path, recursive: bool) -> Iterator[Path]:
    """Files under ``root`` in a stable order (``recursive``: sub-directories too)."""
    if root.is_file():
        yield root
        return
    if recursive:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                yield Path(dirpath) / name
    else:
        for path in sorted(root.iterdir()):
            if path.is_file():
                yield path


def process_tree(
    source: Path,
    target: Path,
    processor: Processor,
    *,
    recursive: bool = False,
    keep_going: bool = False,
    progress: Callable[[int, int, FileOutcome], None] | None = None,
    jobs: int | None = 1,
) -> Summary:
    """Process a file or a directory into ``target`` (same relative layout).

    A non-DICOM file stops the run unless ``keep_going`` (gdcmanon's ``--continue``);
    other failures are counted and the run goes on.  ``jobs``: worker processes for a
    directory (None: the CPU count); ``processor`` must then give the same result in any
    process (keyed derivations, no shared state to extend).  Outcomes and outputs are
    those of a serial run: when a file stops the run, what workers wrote for the files
    after it is removed again.
    """
    summary = Summary()
    if source.is_file():
        out = target / source.name if target.is_dir() else target
        outcome = process_file(source, out, processor)
        if outcome.not_dicom and not keep_going:
            outcome.status = "failed"
        summary.outcomes.append(outcome)
        if progress:
            progress(1, 1, outcome)
        return summary
    files = list(iter_files(source, recursive))

    def one(path: Path) -> FileOutcome:
        return process_file(path, target / path.relative_to(source), processor)

    outcomes = parallel_map(one, files, jobs)
    for index, outcome in enumerate(outcomes, 1):
        summary.outcomes.append(outcome)
        stop = outcome.not_dicom and not keep_going
        if stop:
            outcome.status = "failed"
            outcome.message += " (use --continue to skip such files)"
        if progress:
            progress(index, len(files), outcome)
        if stop:
            if effective_jobs(jobs, len(files)) > 1:
                _undo_after(outcomes)
            break
    return summary


def _undo_after(outcomes: Iterator[FileOutcome]) -> None:
    """Remove what parallel workers wrote for the files after the one that stopped a run."""
    for outcome in outcomes:
        if outcome.status == "done" and outcome.target is not None:
            outcome.target.unlink(missing_ok=True)
