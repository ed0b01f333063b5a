"""DICOMDIR: reference files in place (gdcmgendir, dcmmkdir) or build a media folder.

Public API::

    make_dicomdir(inputs, output=..., map_filenames=..., fileset_id=..., descriptor=...)
    export_files(inputs, out_dir, profile="STD-GEN-CD", ...)
    export_media(instances, out_dir, ...)      # instances: SourceInstance(path, header, syntax)

Each returns a :class:`Report` (referenced, converted, skipped files with reasons, invented
Type 1 values, warnings).  Records exist for every SOP class a node can hold (PS3.3 F.4);
missing Type 1 keys are invented as ``dcmmkdir +I`` does (see ``_invent``).  The record tree
is built with dictionary lookups and written in one linear pass (``_tree``, ``_writer``), so
the time grows linearly with the number of files.

Errors (all subclasses of :class:`DicomdirError`, see ``_errors``): :class:`InvalidFileID`,
:class:`UnknownProfile`, :class:`InvalidValue`, :class:`NothingToWrite`, :class:`OutputError`.
"""

from __future__ import annotations

from node.tools.dicomdir._build import Report, export_files, export_media, make_dicomdir
from node.tools.dicomdir._errors import (
    DicomdirError,
    InvalidFileID,
    InvalidValue,
    NothingToWrite,
    OutputError,
    UnknownProfile,
)
from node.tools.dicomdir._fileid import FileIdAllocator, file_id_for, is_conformant
from node.tools.dicomdir._invent import Invention
from node.tools.dicomdir._media import PROFILES
from node.tools.dicomdir._records import record_type_for
from node.tools.dicomdir._scan import read_instance, scan, slim_header
from node.tools.dicomdir._tree import Skipped, SourceInstance

__all__ = [
    "PROFILES",
    "DicomdirError",
    "FileIdAllocator",
    "InvalidFileID",
    "InvalidValue",
    "Invention",
    "NothingToWrite",
    "OutputError",
    "Report",
    "Skipped",
    "SourceInstance",
    "UnknownProfile",
    "export_files",
    "export_media",
    "file_id_for",
    "is_conformant",
    "make_dicomdir",
    "read_instance",
    "record_type_for",
    "scan",
    "slim_header",
]
