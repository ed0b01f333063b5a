"""A large instance streams through the node: its memory does not grow with the instance."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.daemon.test_serve import start, wait_for_port, write_config
from tests.services.helpers import make_ct

pytestmark = pytest.mark.interop

FRAMES = int(os.environ.get("NODE_TEST_LARGE_FRAMES", "150"))  # 75 MiB (quota: 100 MiB)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def test_large_multiframe_instance_does_not_sit_in_memory(
    tmp_path: Path, free_port: Callable[[], int], require_binary: Callable[[str], str]
) -> None:
    storescu = require_binary("storescu")
    big = make_ct(rows=512)
    big.NumberOfFrames = FRAMES
    big.PixelData = os.urandom(512 * 512 * 2) * FRAMES
    source = tmp_path / "big.dcm"
    big.save_as(source, enforce_file_format=True)
    del big
    size_kib = source.stat().st_size // 1024

    port = free_port()
    node = start(write_config(tmp_path, port), tmp_path)
    try:
        wait_for_port(port, node)
        # warm up: one small instance, so the baseline includes every import and thread
        small = tmp_path / "small.dcm"
        make_ct(rows=64).save_as(small, enforce_file_format=True)
        subprocess.run(
            [storescu, "-aec", "NODE", "127.0.0.1", str(port), str(small)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        baseline = peak_rss_kib(node.pid)
        sent = subprocess.run(
            [storescu, "-aec", "NODE", "127.0.0.1", str(port), str(source)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert sent.returncode == 0, sent.stderr
        peak = peak_rss_kib(node.pid)
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=60)
    stored = list((tmp_path / "store" / "NODE").glob("*/*/*.dcm"))
    assert any(p.stat().st_size >= source.stat().st_size for p in stored)
    growth = peak - baseline
    assert growth < size_kib / 4, f"peak RSS grew by {growth} KiB for a {size_kib} KiB instance"
