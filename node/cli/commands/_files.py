"""Expand FILE|DIR arguments the way the inspection commands take them (``-r`` recurses)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path


class MissingPath(Exception):
    """A path on the command line does not exist."""


def expand(paths: Sequence[str], recursive: bool) -> Iterator[Path]:
    """Files as given, and the files of each directory (all levels with ``recursive``)."""
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            yield from sorted(p for p in found if p.is_file())
        elif path.is_file():
            yield path
        else:
            raise MissingPath(f"no such file or directory: {text}")
