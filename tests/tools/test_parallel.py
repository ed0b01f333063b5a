"""``node.tools._parallel``: worker processes keep the order and the closure's state."""

from __future__ import annotations

import os

import pytest

from node.tools._parallel import MIN_ITEMS, effective_jobs, parallel_map


def test_results_in_input_order_from_other_processes() -> None:
    offset = 1000  # a closure: forked workers inherit it, nothing is pickled

    def work(n: int) -> tuple[int, int]:
        return n + offset, os.getpid()

    results = list(parallel_map(work, list(range(40)), 2))
    assert [value for value, _pid in results] == [n + 1000 for n in range(40)]
    assert os.getpid() not in {pid for _value, pid in results}


def test_small_inputs_and_one_job_run_here() -> None:
    assert effective_jobs(4, MIN_ITEMS - 1) == 1
    assert effective_jobs(1, 100) == 1
    assert effective_jobs(None, 100) >= 1
    assert [pid for pid in parallel_map(lambda _n: os.getpid(), [1, 2], 2)] == [os.getpid()] * 2


def test_an_exception_ends_the_map() -> None:
    def work(n: int) -> int:
        if n == 5:
            raise ValueError("five")
        return n

    with pytest.raises(ValueError, match="five"):
        list(parallel_map(work, list(range(10)), 2))
