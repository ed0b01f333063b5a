"""Run a per-file function over many files in worker processes (``node-ctl ... -j N``).

Why processes: the per-file work (pydicom parsing and writing, pixel codecs, numpy) holds
the GIL most of the time, so threads would not use a second core.  Why ``fork``: the
function is usually a closure over options already checked and objects already built
(a de-identifier with its secret, a transcoding plan), which cannot be pickled; forked
workers inherit it as it is.  Where ``fork`` is not offered the work runs in this process.

Results come back in input order, so output and summaries are the same as a serial run.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

__all__ = ["default_jobs", "effective_jobs", "parallel_map"]

T = TypeVar("T")
R = TypeVar("R")

#: The function of the current ``parallel_map`` call, inherited by the forked workers.
_WORK: Callable[[Any], Any] | None = None


def default_jobs() -> int:
    """The number of CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


#: Fewer items than this are not worth starting workers for.
MIN_ITEMS = 4


def effective_jobs(jobs: int | None, items: int) -> int:
    """How many processes ``parallel_map`` uses for ``items`` items (1: this process)."""
    jobs = default_jobs() if jobs is None else jobs
    if items < MIN_ITEMS or "fork" not in multiprocessing.get_all_start_methods():
        return 1
    return max(1, min(jobs, items))


def _call(item: Any) -> Any:
    assert _WORK is not None
    return _WORK(item)


def parallel_map(func: Callable[[T], R], items: Sequence[T], jobs: int | None) -> Iterator[R]:
    """``map(func, items)`` with ``jobs`` worker processes (None: the CPU count).

    ``func`` must catch what it can expect per item (an exception ends the whole map, as it
    would in a loop) and return something picklable.  With one job, fewer than
    :data:`MIN_ITEMS` items, or no ``fork`` start method, it runs here.
    """
    global _WORK
    jobs = effective_jobs(jobs, len(items))
    if jobs <= 1:
        yield from map(func, items)
        return
    chunk = max(1, min(8, len(items) // (jobs * 8)))
    # a forked worker flushes the stdio buffers it inherited when it exits: empty them first
    sys.stdout.flush()
    sys.stderr.flush()
    previous, _WORK = _WORK, func
    try:
        with multiprocessing.get_context("fork").Pool(jobs) as pool:
            yield from pool.imap(_call, items, chunk)
    finally:
        _WORK = previous
