"""A one-line progress bar on stderr, for store/move/get/scan of many instances.

Why our own: it is twenty lines, and a dependency (tqdm, rich) would be heavier than the
feature.  It draws only when asked (``--progress``) or when stderr is a terminal, so
pipes and logs stay clean.
"""

from __future__ import annotations

import argparse
import sys
from typing import TextIO

_WIDTH = 30


class ProgressBar:
    """``update(done, total)`` redraws ``[#####.....]  12/100 label``; ``close()`` ends it."""

    def __init__(self, label: str, *, enabled: bool, stream: TextIO | None = None):
        self.label = label
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self._drawn = False
        self._last: tuple[int, int] | None = None

    @staticmethod
    def wanted(flag: bool | None, stream: TextIO | None = None) -> bool:
        """``--progress`` forces it, ``--no-progress`` hides it, else only on a terminal."""
        if flag is not None:
            return flag
        stream = stream if stream is not None else sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())

    def update(self, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        total = total if total and total >= done else None
        if self._last == (done, total or 0):
            return
        self._last = (done, total or 0)
        if total:
            filled = int(_WIDTH * done / total)
            bar = "#" * filled + "." * (_WIDTH - filled)
            text = f"\r[{bar}] {done:>{len(str(total))}}/{total} {self.label}"
        else:
            text = f"\r{done} {self.label}"
        self.stream.write(text)
        self.stream.flush()
        self._drawn = True

    def close(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = False


def add_progress_args(p: argparse.ArgumentParser) -> None:
    """``--progress``/``--no-progress``: ``args.progress`` is True, False or None (on a tty)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--progress",
        dest="progress",
        action="store_const",
        const=True,
        default=None,
        help="always draw a progress bar on stderr",
    )
    g.add_argument(
        "--no-progress",
        dest="progress",
        action="store_const",
        const=False,
        help="never draw a progress bar",
    )
