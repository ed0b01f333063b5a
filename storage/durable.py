"""Making written bytes durable: fsync of files and folders, and early write-back.

Why a module: the file store fsyncs every instance before the index records it, and that
fsync is on the path between a C-STORE's last fragment and its response.  Asking the
kernel to start writing a file back while it is still being received
(``sync_file_range(SYNC_FILE_RANGE_WRITE)``, Linux) leaves the final fsync only the tail
to wait for.  Elsewhere ``start_writeback`` does nothing and the fsync does all the work.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable

#: SYNC_FILE_RANGE_WRITE (linux/fs.h): start write-out of dirty pages, do not wait.
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _sync_file_range()


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing ``length`` bytes of ``fd`` from ``offset`` back to disk; no waiting.

    A hint only: durability still comes from ``fsync_file``, and a failure here (a
    filesystem that does not support it) is ignored.
    """
    if _SYNC_FILE_RANGE is not None:
        _SYNC_FILE_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def fsync_file(path: os.PathLike[str] | str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: os.PathLike[str] | str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
