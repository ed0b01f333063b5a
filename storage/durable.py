"""Making written bytes durable: fsync of a file, and of a folder after a new entry.

Why a module of its own: these are the only two places where ingest waits for the disk
(the profiles in ``bench/README.md`` name them), and a folder's fsync needs
``O_DIRECTORY``, which ``Path`` does not give.
"""

from __future__ import annotations

import os


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
