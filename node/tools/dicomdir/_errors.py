"""Errors raised by the DICOMDIR tool.

Why a tree: callers (the CLI, a job, the admin API) map each kind to one message or status, and
skipped files are not errors at all (they are listed in the report), so only whole-operation
failures raise::

    DicomdirError
     +-- InvalidFileID        a path cannot be expressed as an ISO 9660 / PS3.10 file ID
     +-- UnknownProfile       --profile names no media application profile we know
     +-- InvalidValue         a file-set ID, character set or root UID that is not valid
     +-- NothingToWrite       no input file could be referenced
     +-- OutputError          the DICOMDIR or a media file cannot be written
"""

from __future__ import annotations


class DicomdirError(Exception):
    """Base of every error raised by :mod:`node.tools.dicomdir`."""


class InvalidFileID(DicomdirError):
    """A path is not a conformant file ID (8 components of 8 characters in ``A-Z0-9_``)."""


class UnknownProfile(DicomdirError):
    """The requested media storage application profile is not supported."""


class InvalidValue(DicomdirError):
    """A file-set ID, descriptor character set or root UID that the DICOMDIR cannot carry."""


class NothingToWrite(DicomdirError):
    """Every input was skipped: an empty file-set is refused rather than written."""


class OutputError(DicomdirError):
    """Writing the DICOMDIR or a file of the media folder failed."""
