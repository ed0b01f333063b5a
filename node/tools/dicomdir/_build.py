"""The two ways to make a file-set: reference files where they are, or build a media folder.

``make_dicomdir`` is gdcmgendir / dcmmkdir: the files stay, their paths must already be file
IDs.  ``export_media`` builds a new folder (``DICOMDIR`` + ``DICOM/PA000001/ST000001/...``)
from any :class:`SourceInstance` list: from files today (:func:`export_files`), from a node's
index later (paths and index headers, no file read before the copy).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from node.tools.dicomdir._errors import (
    InvalidFileID,
    InvalidValue,
    NothingToWrite,
    OutputError,
)
from node.tools.dicomdir._fileid import FileIdAllocator, Resolver, file_id_for
from node.tools.dicomdir._invent import Invention, Inventor
from node.tools.dicomdir._media import ConversionError, allowed_syntaxes, write_media_file
from node.tools.dicomdir._scan import iter_scan, scan
from node.tools.dicomdir._tree import Record, Skipped, SourceInstance, TreeBuilder
from node.tools.dicomdir._writer import write_dicomdir

logger = logging.getLogger(__name__)

DEFAULT_DESCRIPTOR_CHARSET = "ISO_IR 100"

_FILESET_ID = re.compile(r"[A-Z0-9 _]{0,16}")
_CHARSET = re.compile(r"ISO_IR \d{1,3}|ISO 2022 IR \d{1,3}|GB18030|GBK")
_ROOT_UID = re.compile(r"(0|[1-9]\d*)(\.(0|[1-9]\d*))*\.?")


def check_values(fileset_id: str, descriptor_charset: str | None, root_uid: str | None) -> None:
    """Refuse values the DICOMDIR cannot carry (before any file is read or written).

    Raises
    ------
    InvalidValue
        File-set ID not a CS of 16 characters, unknown character set term, bad UID root.
    """
    if not _FILESET_ID.fullmatch(fileset_id):
        raise InvalidValue(
            f"file-set ID {fileset_id!r} must be at most 16 characters A-Z, 0-9, space or _"
        )
    if descriptor_charset and not _CHARSET.fullmatch(descriptor_charset):
        raise InvalidValue(f"unknown character set {descriptor_charset!r} (e.g. ISO_IR 100)")
    if root_uid and (not _ROOT_UID.fullmatch(root_uid) or len(root_uid.rstrip(".")) > 40):
        raise InvalidValue(f"root UID {root_uid!r} is not a UID prefix of at most 40 characters")


@dataclass
class Report:
    """What a run did: enough for the CLI to print and for a job to store as its result."""

    dicomdir: Path
    referenced: int = 0
    converted: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    inventions: list[Invention] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    size: int = 0


def make_dicomdir(
    inputs: Sequence[Path],
    *,
    output: Path | None = None,
    recursive: bool = True,
    map_filenames: bool = False,
    fileset_id: str = "",
    descriptor: Path | None = None,
    descriptor_charset: str | None = DEFAULT_DESCRIPTOR_CHARSET,
    root_uid: str | None = None,
    jobs: int | None = 1,
) -> Report:
    """Write a DICOMDIR referencing the DICOM files under ``inputs`` where they are.

    ``jobs``: worker processes reading the headers (None: the CPU count).

    The file-set root is the folder of ``output`` (default: ``DICOMDIR`` in the single input
    folder, else in the current folder).  Files outside the root, files whose relative path is
    not a file ID (unless ``map_filenames`` fixes it) and files without a Part 10 header are
    skipped and reported, as dcmmkdir does.

    Raises
    ------
    NothingToWrite
        No file could be referenced.
    OutputError
        The DICOMDIR cannot be written.
    InvalidFileID
        ``descriptor`` is not a file ID inside the root.
    """
    if output is None:
        if len(inputs) == 1 and inputs[0].is_dir():
            output = inputs[0] / "DICOMDIR"
        else:
            output = Path("DICOMDIR")
    check_values(fileset_id, descriptor_charset, root_uid)
    root = output.parent
    output_resolved = output.resolve()
    descriptor_id = (
        file_id_for(descriptor, root, map_filenames=map_filenames) if descriptor else None
    )
    inventor = Inventor(root_uid)
    builder = TreeBuilder(inventor)
    resolve = Resolver()
    # The tree is built from each header as it arrives (workers read the next ones); files
    # the scan skipped are listed first, as if the scan had finished before.
    skipped: list[Skipped] = []
    for found in iter_scan(inputs, recursive=recursive, jobs=jobs):
        if isinstance(found, Skipped):
            skipped.append(found)
            continue
        resolved = resolve(found.path)
        if resolved == output_resolved:
            continue
        try:
            file_id = file_id_for(found.path, root, map_filenames=map_filenames, resolver=resolve)
        except InvalidFileID as exc:
            builder.skipped.append(Skipped(str(found.path), str(exc)))
            continue
        builder.add(found, file_id)
    own = {output_resolved, descriptor.resolve() if descriptor else output_resolved}
    builder.skipped[:0] = [s for s in skipped if Path(s.source).resolve() not in own]
    return _finish(
        builder, output, fileset_id, descriptor_id, descriptor_charset, inventor, converted=0
    )


def export_files(
    inputs: Sequence[Path],
    out_dir: Path,
    *,
    recursive: bool = True,
    profile: str = "STD-GEN-CD",
    fileset_id: str = "",
    descriptor: Path | None = None,
    descriptor_charset: str | None = DEFAULT_DESCRIPTOR_CHARSET,
    root_uid: str | None = None,
    jobs: int | None = 1,
) -> Report:
    """Build a media folder from the DICOM files under ``inputs`` (see :func:`export_media`).

    ``jobs``: worker processes reading the headers (None: the CPU count).
    """
    allowed_syntaxes(profile)  # fail on a bad profile before reading anything
    check_values(fileset_id, descriptor_charset, root_uid)
    instances, skipped = scan(inputs, recursive=recursive, allow_non_part10=True, jobs=jobs)
    report = export_media(
        instances,
        out_dir,
        profile=profile,
        fileset_id=fileset_id,
        descriptor=descriptor,
        descriptor_charset=descriptor_charset,
        root_uid=root_uid,
        skipped=skipped,
    )
    return report


def export_media(
    instances: Iterable[SourceInstance],
    out_dir: Path,
    *,
    profile: str = "STD-GEN-CD",
    fileset_id: str = "",
    descriptor: Path | None = None,
    descriptor_charset: str | None = DEFAULT_DESCRIPTOR_CHARSET,
    root_uid: str | None = None,
    skipped: Sequence[Skipped] = (),
) -> Report:
    """Build a media folder in ``out_dir``: conformant file IDs, files in the profile's syntaxes.

    ``instances`` may come from files (:func:`export_files`) or from a node's index: each is a
    path and a header with the record keys.  ``out_dir`` must not exist or be empty.  Files
    that cannot be converted for the profile are skipped and reported.

    Raises
    ------
    UnknownProfile
        ``profile`` is not one of :data:`PROFILES`.
    NothingToWrite
        No instance could be written.
    OutputError
        ``out_dir`` is not empty, or a file cannot be written.
    """
    allowed = allowed_syntaxes(profile)
    check_values(fileset_id, descriptor_charset, root_uid)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise OutputError(f"{out_dir} exists and is not an empty folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {out_dir}: {exc.strerror or exc}") from exc
    inventor = Inventor(root_uid)
    builder = TreeBuilder(inventor, FileIdAllocator())
    builder.skipped.extend(skipped)
    builder.add_all(instances)

    converted = 0
    failed: set[int] = set()
    for leaf in builder.leaves:
        instance = leaf.instance
        assert instance is not None and leaf.file_id is not None
        dest = out_dir.joinpath(*leaf.file_id)
        # The kept file first, then any other copy of the same instance (a store may hold one
        # copy that no decoder reads and another that is fine).
        candidates = [instance, *builder.alternates.get(instance.sop_instance_uid, [])]
        for candidate in candidates:
            try:
                syntax = write_media_file(candidate, dest, allowed)
            except ConversionError as exc:
                builder.skipped.append(Skipped(str(candidate.path), str(exc)))
                continue
            if candidate is not instance:
                builder.skipped = [
                    s
                    for s in builder.skipped
                    if not (s.source == str(candidate.path) and s.reason.startswith("duplicate"))
                ]
            if syntax != candidate.transfer_syntax_uid or not candidate.part10:
                converted += 1
            leaf.instance = dataclasses.replace(candidate, transfer_syntax_uid=syntax, part10=True)
            break
        else:
            failed.add(id(leaf))
    if failed:
        builder.roots = _prune(builder.roots, failed)

    descriptor_id: tuple[str, ...] | None = None
    if descriptor is not None:
        name = _descriptor_name(descriptor)
        try:
            shutil.copyfile(descriptor, out_dir / name)
        except OSError as exc:
            raise OutputError(
                f"cannot copy descriptor {descriptor}: {exc.strerror or exc}"
            ) from exc
        descriptor_id = (name,)
    return _finish(
        builder,
        out_dir / "DICOMDIR",
        fileset_id,
        descriptor_id,
        descriptor_charset,
        inventor,
        converted=converted,
    )


def _finish(
    builder: TreeBuilder,
    output: Path,
    fileset_id: str,
    descriptor_id: tuple[str, ...] | None,
    descriptor_charset: str | None,
    inventor: Inventor,
    *,
    converted: int,
) -> Report:
    referenced = _count_leaves(builder.roots)
    report = Report(
        dicomdir=output,
        referenced=referenced,
        converted=converted,
        skipped=builder.skipped,
        inventions=inventor.inventions,
        warnings=builder.warnings,
    )
    if referenced == 0:
        raise NothingToWrite(
            f"no DICOM file to reference ({len(builder.skipped)} input(s) skipped)"
        )
    report.size = write_dicomdir(
        builder.roots,
        output,
        sop_instance_uid=inventor.new_uid(),
        fileset_id=fileset_id,
        descriptor=descriptor_id,
        descriptor_charset=descriptor_charset if descriptor_id else None,
    )
    logger.info(
        "wrote %s: %d instance(s), %d skipped, %d invented value(s)",
        output,
        referenced,
        len(report.skipped),
        len(report.inventions),
    )
    return report


def _count_leaves(roots: list[Record]) -> int:
    count = 0
    stack = list(roots)
    while stack:
        record = stack.pop()
        if record.instance is not None:
            count += 1
        stack.extend(record.children)
    return count


def _prune(records: list[Record], failed: set[int]) -> list[Record]:
    """Drop failed leaves, then any patient, study or series left without children."""
    kept: list[Record] = []
    for record in records:
        if id(record) in failed:
            continue
        if record.instance is None:
            record.children = _prune(record.children, failed)
            if not record.children:
                continue
        kept.append(record)
    return kept


def _descriptor_name(path: Path) -> str:
    """A file ID component for the descriptor copied into the media folder (README...)."""
    name = re.sub(r"[^A-Z0-9_]", "", path.stem.upper())[:8]
    return name or "README"
