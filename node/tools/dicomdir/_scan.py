"""Reading the headers of the files a DICOMDIR will reference.

Only the attributes a directory record needs are kept (:func:`slim_header`), which is also the
shape a node's index can supply without touching the files: memory stays small for large
file-sets and the two sources are interchangeable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from node.tools._parallel import parallel_map
from node.tools.dicomdir._invent import has_value
from node.tools.dicomdir._records import RECORD_KEYS
from node.tools.dicomdir._tree import Skipped, SourceInstance

logger = logging.getLogger(__name__)

#: Attributes kept from a header: every record key, plus what the inventor and grouping read.
HEADER_KEYWORDS = frozenset(
    {key.keyword for keys in RECORD_KEYS.values() for key in keys}
    | {
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "IssuerOfPatientID",
        "SeriesDate",
        "SeriesTime",
        "AcquisitionDate",
        "AcquisitionTime",
        "ContentDate",
        "ContentTime",
        "InstanceCreationDate",
        "InstanceCreationTime",
        "StudyDate",
        "StudyTime",
        "VerifyingObserverSequence",
    }
)


#: The same attributes as tags, in tag order (looking keywords up per file is slow).
HEADER_TAGS = sorted(int(tag_for_keyword(k) or 0) for k in HEADER_KEYWORDS)


def slim_header(ds: Dataset) -> Dataset:
    """A copy of ``ds`` with only the attributes in :data:`HEADER_KEYWORDS`."""
    out = Dataset()
    for tag in HEADER_TAGS:
        if tag in ds:
            out.add(ds[tag])
    return out


def iter_files(inputs: Sequence[Path], *, recursive: bool = True) -> Iterator[Path]:
    """Files named by ``inputs`` (folders expanded, in sorted order for a stable result)."""
    for item in inputs:
        if item.is_dir():
            if recursive:
                for dirpath, dirnames, filenames in os.walk(item):
                    dirnames.sort()
                    for name in sorted(filenames):
                        yield Path(dirpath) / name
            else:
                for child in sorted(item.iterdir()):
                    if child.is_file():
                        yield child
        else:
            yield item


def read_instance(path: Path, *, allow_non_part10: bool = False) -> SourceInstance | Skipped:
    """The header of ``path`` as a :class:`SourceInstance`, or why it cannot be one.

    A file without the Part 10 preamble and meta header can be read (``allow_non_part10``) when
    it will be rewritten (media export); referencing it in place would break the DICOMDIR.
    """
    part10 = True
    try:
        ds = dcmread(path, stop_before_pixels=True, defer_size="1 MB", specific_tags=HEADER_TAGS)
    except InvalidDicomError:
        if not allow_non_part10:
            return Skipped(str(path), "not a DICOM Part 10 file (no preamble/meta header)")
        part10 = False
        try:
            ds = dcmread(
                path,
                stop_before_pixels=True,
                defer_size="1 MB",
                force=True,
                specific_tags=HEADER_TAGS,
            )
        except Exception as exc:
            return Skipped(str(path), f"not a DICOM file ({type(exc).__name__})")
    except (OSError, ValueError, EOFError, KeyError, TypeError) as exc:
        return Skipped(str(path), f"unreadable: {exc}")
    try:
        header = slim_header(ds)
    except Exception as exc:
        return Skipped(str(path), f"unreadable header: {exc}")
    meta = getattr(ds, "file_meta", None)
    if not has_value(header, "SOPClassUID") and meta is not None:
        if "MediaStorageSOPClassUID" in meta:
            header.SOPClassUID = meta.MediaStorageSOPClassUID
    if not has_value(header, "SOPInstanceUID") and meta is not None:
        if "MediaStorageSOPInstanceUID" in meta:
            header.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    if not part10 and not (
        has_value(header, "SOPClassUID")
        and has_value(header, "SOPInstanceUID")
        and UID(str(header.SOPInstanceUID)).is_valid
    ):
        return Skipped(str(path), "not a DICOM file (no valid SOP Instance UID)")
    syntax = ""
    if part10 and meta is not None and "TransferSyntaxUID" in meta:
        syntax = str(meta.TransferSyntaxUID)
    return SourceInstance(path=path, header=header, transfer_syntax_uid=syntax, part10=part10)


def iter_scan(
    inputs: Iterable[Path],
    *,
    recursive: bool = True,
    allow_non_part10: bool = False,
    jobs: int | None = 1,
) -> Iterator[SourceInstance | Skipped]:
    """Read every file under ``inputs``, yielding each result in file order as it comes.

    Why a generator: with worker processes the caller builds the record tree from the
    headers already read while the workers read the next ones.
    """
    paths = list(iter_files(list(inputs), recursive=recursive))

    def one(path: Path) -> SourceInstance | Skipped:
        return read_instance(path, allow_non_part10=allow_non_part10)

    for result in parallel_map(one, paths, jobs):
        if isinstance(result, Skipped):
            logger.debug("skipping %s: %s", result.source, result.reason)
        yield result


def scan(
    inputs: Iterable[Path],
    *,
    recursive: bool = True,
    allow_non_part10: bool = False,
    jobs: int | None = 1,
) -> tuple[list[SourceInstance], list[Skipped]]:
    """Read every file under ``inputs``: the instances found and the files skipped.

    ``jobs``: worker processes reading headers (None: the CPU count); same result.
    """
    found: list[SourceInstance] = []
    skipped: list[Skipped] = []
    for result in iter_scan(
        inputs, recursive=recursive, allow_non_part10=allow_non_part10, jobs=jobs
    ):
        if isinstance(result, Skipped):
            skipped.append(result)
        else:
            found.append(result)
    return found, skipped
