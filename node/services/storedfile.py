"""The dataset bytes of a stored file, read once, without decoding an element.

Why: a retrieve sends a stored instance as it is whenever the peer accepted its transfer
syntax.  All the sender needs is where the dataset starts (after the preamble and the
group 0002 file meta) and the file meta's Transfer Syntax UID; pydicom's reader (what
pynetdicom's chunked send uses) parses the meta into a ``Dataset`` and re-opens the file for
every fragment.  Here the whole file is read with one ``readinto`` and the dataset is a
``memoryview`` into it, sliced into P-DATA fragments without a copy.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

_PREAMBLE = 128
_MAGIC = b"DICM"
_SHORT = struct.Struct("<HH2sH")
_LONG_LENGTH = struct.Struct("<L")
#: Explicit VR elements whose length is 4 bytes after 2 reserved ones (PS3.5 7.1.2)
_LONG_VRS = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV")
)


class StoredFileError(ValueError):
    """A stored file whose file meta cannot be walked (not Part 10, or truncated)."""


@dataclass(frozen=True)
class StoredDataset:
    """A stored file's dataset bytes and the transfer syntax they are encoded in."""

    path: str
    transfer_syntax: str
    data: memoryview

    @classmethod
    def read(cls, path: str) -> StoredDataset:
        """Read ``path`` (a Part 10 file: preamble, ``DICM``, file meta, dataset)."""
        with open(path, "rb", buffering=0) as fh:
            size = os.fstat(fh.fileno()).st_size
            buf = bytearray(size)
            view = memoryview(buf)
            got = 0
            while got < size:
                n = fh.readinto(view[got:])
                if not n:
                    break
                got += n
        view = view[:got]
        offset, syntax = dataset_offset(view)
        return cls(path=path, transfer_syntax=syntax, data=view[offset:])


def dataset_offset(data: bytes | bytearray | memoryview) -> tuple[int, str]:
    """Where the dataset starts in a Part 10 file, and the file meta's Transfer Syntax UID.

    The file meta is Explicit VR Little Endian (PS3.10 7.1); it is walked element by element
    rather than trusted for its group length, which some writers get wrong.
    """
    view = memoryview(data)
    if len(view) < _PREAMBLE + 4 or bytes(view[_PREAMBLE : _PREAMBLE + 4]) != _MAGIC:
        raise StoredFileError("not a DICOM Part 10 file (no DICM prefix)")
    offset = _PREAMBLE + 4
    syntax: str | None = None
    end = len(view)
    while offset + 8 <= end:
        group, element, vr, short_length = _SHORT.unpack_from(view, offset)
        if group != 0x0002:
            break
        if vr in _LONG_VRS:
            if offset + 12 > end:
                raise StoredFileError("truncated file meta element")
            (length,) = _LONG_LENGTH.unpack_from(view, offset + 8)
            value_at = offset + 12
        else:
            length = short_length
            value_at = offset + 8
        if length == 0xFFFFFFFF or value_at + length > end:
            raise StoredFileError(f"bad file meta element (0002,{element:04X})")
        if element == 0x0010:
            syntax = bytes(view[value_at : value_at + length]).decode("ascii").rstrip("\0 ")
        offset = value_at + length
    if not syntax:
        raise StoredFileError("file meta without a Transfer Syntax UID")
    return offset, syntax
