"""kill -9 during a storescu ingest: everything acknowledged survives, nothing else remains.

The manual soak (more rounds, more instances) is the same test with NODE_TEST_CRASH_ROUNDS
and NODE_TEST_CRASH_INSTANCES raised; CI runs a few rounds.
"""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread

from config import load
from node.app import open_storage
from storage.integrity import check
from tests.daemon.test_serve import start, wait_for_port, write_config
from tests.services.helpers import make_ct

pytestmark = pytest.mark.interop

ROUNDS = int(os.environ.get("NODE_TEST_CRASH_ROUNDS", "3"))
INSTANCES = int(os.environ.get("NODE_TEST_CRASH_INSTANCES", "150"))


def acknowledged(storescu_log: str) -> list[str]:
    """Files storescu saw answered with Success, from its verbose log."""
    done, current = [], None
    for line in storescu_log.splitlines():
        sending = re.search(r"Sending file: (.+)$", line)
        if sending:
            current = sending.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            done.append(current)
            current = None
    return done


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "ingest-workers"])
def test_kill_9_during_ingest_loses_nothing_acknowledged(
    tmp_path: Path,
    free_port: Callable[[], int],
    require_binary: Callable[[str], str],
    workers: int,
) -> None:
    storescu = require_binary("storescu")
    source = tmp_path / "source"
    source.mkdir()
    study = make_ct().StudyInstanceUID
    for i in range(INSTANCES):
        make_ct(patient_id=f"P{i % 7}", study_uid=study if i % 2 else None, rows=64).save_as(
            source / f"{i:05d}.dcm", enforce_file_format=True
        )
    files = sorted(str(p) for p in source.iterdir())
    rng = random.Random(1234)
    port = free_port()
    cfg = write_config(tmp_path, port)
    # IngestWorkers 2: the daemon's worker dies with it (PR_SET_PDEATHSIG), mid-ingest too
    cfg.write_text(cfg.read_text() + f"IngestWorkers = {workers}\n")
    all_acknowledged: dict[str, str] = {}
    for _ in range(ROUNDS):
        node = start(cfg, tmp_path)
        wait_for_port(port, node)
        sender = subprocess.Popen(
            [storescu, "-v", "-aec", "NODE", "127.0.0.1", str(port), *files],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        time.sleep(rng.uniform(0.3, 2.0))
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=30)
        log, _ = sender.communicate(timeout=60)
        for path in acknowledged(log):
            all_acknowledged[dcmread(path, stop_before_pixels=True).SOPInstanceUID] = path

    # Restart once more: recovery runs, then everything acknowledged must be there.
    node = start(cfg, tmp_path)
    try:
        wait_for_port(port, node)
    finally:
        node.send_signal(signal.SIGTERM)
        node.communicate(timeout=30)
    settings = load(cfg, environ={})
    index, stores = open_storage(settings)
    report = check(index, stores)
    assert report.ok, report.summary()
    stored = {i.sop_instance_uid: i for i in index.instances("NODE")}
    missing = set(all_acknowledged) - set(stored)
    assert not missing, f"{len(missing)} acknowledged instance(s) lost"
    for uid in all_acknowledged:
        path = stores["NODE"].absolute(stored[uid].path)
        assert dcmread(path).SOPInstanceUID == uid
    assert not list(stores["NODE"].tmp.iterdir()), "markers left after recovery"
    index.engine.dispose()
    assert len(all_acknowledged) > 0
