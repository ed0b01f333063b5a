"""kill -9 of ``node-ctl serve`` while a forward runs: the restarted node finishes the job,
the peer has every instance, and at most the one in flight at the kill twice."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread

from config.settings import load
from node.app import open_storage
from node.jobs import submit_job
from storage.ingest import Ingestor
from storage.jobs import JobQueue
from tests.conftest import REPO_ROOT
from tests.daemon.test_serve import NODE_CTL, wait_for_port
from tests.interop.conftest import StoreSCP
from tests.jobs.conftest import encode
from tests.services.helpers import make_ct

pytestmark = pytest.mark.interop

N = 200


def _config(tmp_path: Path, port: int, peer_port: int) -> Path:
    cfg = tmp_path / "node.cfg"
    cfg.write_text(
        f"""NetworkTCPPort = {port}
DataDir = var
BindAddress = 127.0.0.1
JobWorkers = 2
JobLease = 2
ShutdownGrace = 0.5

HostTable BEGIN
dest = (DEST, 127.0.0.1, {peer_port})
HostTable END

AETable BEGIN
NODE   store/NODE   RW  (100, 1gb)  ANY
AETable END
"""
    )
    return cfg


def _serve(cfg: Path, tmp_path: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    return subprocess.Popen(
        [*NODE_CTL, "serve", "--config", str(cfg)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),
    )


def _wait(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_kill_9_during_forward_then_restart_completes_without_duplicates(
    tmp_path: Path, free_port: Callable[[], int], require_binary: Callable[[str], str]
) -> None:
    scp = StoreSCP(require_binary("storescp"), free_port(), tmp_path / "scp", ["+uf"])
    port = free_port()
    cfg = _config(tmp_path, port, scp.port)
    settings = load(cfg, environ={})
    index, stores = open_storage(settings)
    ingestor = Ingestor(index, stores)
    entry = settings.ae("NODE")
    assert entry is not None
    study = "1.2.826.0.1.3680043.10.999.1"
    sops = []
    for i in range(N):
        ds = make_ct(study_uid=study, series_uid=study + ".1", rows=64)
        ds.InstanceNumber = i + 1
        ingestor.store(entry, encode(ds), str(ds.file_meta.TransferSyntaxUID))
        sops.append(str(ds.SOPInstanceUID))
    queue = JobQueue(index.engine)
    pk = submit_job(queue, settings, "forward", {"studies": [study], "destination": "DEST"}, "t")
    log = tmp_path / "node.log"
    proc = _serve(cfg, tmp_path, log)
    try:
        wait_for_port(port, proc)
        _wait(lambda: queue.get(pk).progress_done >= 30, 60, "30 instances acknowledged")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        killed = queue.get(pk)
        assert killed.state == "running", killed  # nobody released it: the node died
        assert len(killed.checkpoint["done"]) < N, "finished before the kill: use more instances"

        proc = _serve(cfg, tmp_path, log)
        wait_for_port(port, proc)
        _wait(lambda: queue.get(pk).final, 60, "the job to finish after the restart")
        done = queue.get(pk)
        assert done.state == "succeeded", (done.error, log.read_text()[-3000:])
        assert done.attempts == 2
        assert done.result["sent"] == N
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        scp.stop()
        index.engine.dispose()
    received = Counter(str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in scp.files())
    assert set(received) == set(sops)
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= 1, received.most_common(3)
