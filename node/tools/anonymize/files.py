"""Files and directories: read each file once, apply a processor, write it once.

Why a processor callable: de-identification, re-identification and dumb mode differ only
in what happens to the dataset; reading (with the same tolerance as gdcmanon for files
without preamble), writing (fresh file meta, atomic rename) and walking a tree with a
summary are the same, and the job runner reuses ``process_file`` as is.
"""

from __future__ import annotations

import logging
import os
import struct
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydicom import dcmread
from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomFileLike
from pydicom.filewriter import write_data_element, write_dataset, write_file_meta_info
from pydicom.tag import tag_in_exception
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

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


_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)


#: VRs whose str value pydicom writes as its ASCII bytes padded with a space (UI: a NUL).
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI", "UR"})
#: Text VRs: encoded with the data set's character set, which leaves ASCII as it is for
#: the codecs below (not for every ISO 2022 one: those go to pydicom).
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_ASCII_CODECS = frozenset({"iso8859", "latin_1", "utf_8", "gb18030", "gbk"})
_NUMBER_FORMATS = {"US": "H", "UL": "L", "SS": "h", "SL": "l"}


def _simple_value(vr: str, value: object, text_ok: bool, end: str) -> bytes | None:
    """The encoded value of a decoded element as pydicom writes it, for plain ASCII strings
    and single integers; None for anything else (pydicom writes it)."""
    if type(value) is str or type(value) is UID:
        text = str(value)
    elif type(value) is int and vr in _NUMBER_FORMATS:
        try:
            return struct.pack(end + _NUMBER_FORMATS[vr], value)
        except struct.error:
            return None
    else:
        return None
    if not text.isascii() or not (vr in _STRING_VRS or (text_ok and vr in _TEXT_VRS)):
        return None
    data = text.encode("ascii")
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return data


def _can_write_fast(ds: Dataset, syntax: UID, implicit: bool, little: bool) -> bool:
    """True when :func:`_write_fast` writes what ``save_as`` would: the data set is kept in
    the encoding and character set it was read in (pydicom would otherwise re-encode every
    element) and holds no command or file meta element (``save_as`` refuses those)."""
    return (
        syntax.is_transfer_syntax
        and not syntax.is_private
        and syntax != DeflatedExplicitVRLittleEndian
        and ds.original_encoding == (implicit, little)
        and ds.original_character_set == ds._character_set
        and not any(tag >> 16 in (0, 2) for tag in ds._dict)
    )


def _write_fast(ds: Dataset, path: str, syntax: UID, implicit: bool, little: bool) -> None:
    """``ds.save_as(path, enforce_file_format=True)``, byte for byte, in a fraction of the time.

    Why: most top-level elements of a de-identified file are the raw elements read from
    the source, which pydicom writes as they are but through a per-element buffer (about
    40 us each, most of the time of a file).  Here each raw element is one header packed
    with ``struct`` plus its value bytes; every element that was decoded or changed, and
    the Pixel Data (whose length form follows the transfer syntax), goes through pydicom's
    own ``write_data_element``.  Only for data sets ``_can_write_fast`` accepts.
    """
    meta = ds.file_meta
    validate_file_meta(meta, enforce_standard=True)
    preamble = getattr(ds, "preamble", None) or b"\0" * 128
    if len(preamble) != 128:
        raise ValueError(f"'{type(ds).__name__}.preamble' must be 128-bytes long")
    if "PixelData" in ds:
        ds["PixelData"].is_undefined_length = syntax.is_compressed
    end = "<" if little else ">"
    short = struct.Struct(end + "HH2sH")
    long = struct.Struct(end + "HH2sHI")
    bare = struct.Struct(end + "HHI")
    delimiter = bare.pack(0xFFFE, 0xE0DD, 0)
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    text_ok = all(codec in _ASCII_CODECS for codec in convert_encodings(encodings))
    with open(path, "wb") as fh:
        fp = DicomFileLike(fh)
        fp.is_implicit_VR, fp.is_little_endian = implicit, little
        fh.write(preamble)
        fh.write(b"DICM")
        write_file_meta_info(fp, meta, enforce_standard=True)
        write = fh.write
        get_item = ds.get_item
        for tag in sorted(ds._dict):
            if not tag & 0xFFFF and tag >> 16 > 6:
                continue  # retired group lengths are not written (PS3.5 7.2)
            elem = get_item(tag)
            if type(elem) is RawDataElement and tag != _PIXEL_DATA:
                value = elem.value
                vr = elem.VR
                if (
                    value is not None
                    and elem.is_little_endian == little
                    and elem.is_implicit_VR == implicit
                ):
                    undefined = elem.length == _UNDEFINED
                    length = _UNDEFINED if undefined else len(value)
                    header: bytes | None = None
                    if implicit:
                        header = bare.pack(tag >> 16, tag & 0xFFFF, length)
                    elif vr is not None and len(vr) == 2:
                        if vr in _LONG_VRS:
                            header = long.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
                        elif not undefined and length <= 0xFFFF:
                            header = short.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)
                    if header is not None:
                        write(header)
                        write(value)
                        if undefined:
                            write(delimiter)
                        continue
            elif type(elem) is DataElement and elem.VR is not None:
                vr = str(elem.VR)
                data = _simple_value(vr, elem.value, text_ok, end)
                if data is not None:
                    if implicit:
                        write(bare.pack(tag >> 16, tag & 0xFFFF, len(data)))
                        write(data)
                        continue
                    if len(data) <= 0xFFFF and vr not in _LONG_VRS:
                        write(short.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(data)))
                        write(data)
                        continue
                    if vr in _LONG_VRS:
                        write(long.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(data)))
                        write(data)
                        continue
            with tag_in_exception(tag):
                write_data_element(fp, elem, encodings)


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
        if complete and _can_write_fast(ds, syntax, implicit, little):
            _write_fast(ds, tmp, syntax, implicit, little)
        elif complete and syntax.is_transfer_syntax:
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
