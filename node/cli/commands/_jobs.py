"""``-j/--jobs N``: worker processes for the offline tools' directory runs."""

from __future__ import annotations

import argparse

from node.tools._parallel import default_jobs


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def add_jobs_arg(p: argparse.ArgumentParser) -> None:
    """``-j N``: ``args.jobs`` is N, or None for the CPU count."""
    p.add_argument(
        "-j",
        "--jobs",
        type=_positive,
        default=None,
        metavar="N",
        help=f"worker processes for a directory (default: the CPU count, {default_jobs()} "
        "here; 1: no workers)",
    )
