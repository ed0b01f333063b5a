"""IngestWorkers: worker processes serving the daemon's socket (node/workers.py)."""

from __future__ import annotations

import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

from node import workers as ingest_workers
from node.app import Node
from node.workers import WriteLock
from tests.daemon.test_serve import start, wait_for_port, write_config
from tests.services.helpers import associate, make_ct, scu


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_write_lock_orders_threads_and_processes(tmp_path: Path) -> None:
    lock = WriteLock(tmp_path / "index.sqlite.writelock")
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(1)\n"
    )

    def other_process_can_lock() -> bool:
        args = [sys.executable, "-c", probe, str(lock.path)]
        return subprocess.run(args, check=False).returncode == 0

    inside: list[str] = []
    with lock:
        assert not other_process_can_lock()
        thread = threading.Thread(target=lambda: lock.__enter__() and inside.append("in"))
        thread.start()
        time.sleep(0.1)
        assert inside == []  # another thread of this process waits too
    thread.join(timeout=5)
    assert inside == ["in"]
    lock.__exit__(None, None, None)
    assert other_process_can_lock()


def test_a_worker_serves_the_shared_port(start_node: Callable[..., Node]) -> None:
    node = start_node(ingest_workers=2)
    events: list[tuple[str, dict[str, str]]] = []
    node.context.notify = lambda kind, info: events.append((kind, info))
    workers = ingest_workers.start(node.settings, node)
    try:
        (pid,) = workers.pids
        assert node.server is not None
        # the daemon's node stops accepting (pynetdicom's shutdown() would also shut the
        # shared socket down, as the daemon's stop means to): only the worker accepts now
        socketserver.BaseServer.shutdown(node.server)
        ae = scu(storage=True)
        ae.add_requested_context(StudyRootQueryRetrieveInformationModelFind)
        assoc = associate(ae, node.port)
        ds = make_ct()
        assert assoc.send_c_store(ds).Status == 0x0000
        query = make_ct()
        for keyword in list(query.keys()):
            del query[keyword]
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = ds.StudyInstanceUID
        found = [
            ident
            for status, ident in assoc.send_c_find(
                query, StudyRootQueryRetrieveInformationModelFind
            )
            if status and status.Status == 0xFF00
        ]
        assoc.release()
        assert [f.StudyInstanceUID for f in found] == [ds.StudyInstanceUID]
        # the worker wrote to the daemon's index and store, and told the daemon
        (row,) = node.index.instances("NODE")
        assert node.stores["NODE"].absolute(row.path).exists()
        assert _wait(lambda: len(events) == 1)
        kind, info = events[0]
        assert (kind, info["sop_instance_uid"]) == ("instance-stored", ds.SOPInstanceUID)

        os.kill(pid, signal.SIGKILL)  # a worker that dies is started again
        assert _wait(lambda: bool(workers.pids) and workers.pids != [pid])
    finally:
        workers.stop()
    assert not workers.pids


@pytest.mark.interop
def test_daemon_with_workers_serves_and_stops_them_on_sigterm(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    cfg = write_config(tmp_path, port)
    # (MaxAssociations 4 of the shared config: wait_for_port's probe holds one for a while)
    text = cfg.read_text().replace("MaxAssociations = 4", "MaxAssociations = 16")
    cfg.write_text(text + "IngestWorkers = 2\n")
    proc = start(cfg, tmp_path)
    try:
        wait_for_port(port, proc)
        assert _wait(lambda: len(_children(proc.pid)) == 1)
        children = _children(proc.pid)

        errors: list[int] = []

        def send() -> None:
            assoc = associate(scu(storage=True), port)
            for _ in range(5):
                status = assoc.send_c_store(make_ct(rows=32)).Status
                if status != 0:
                    errors.append(status)
            assoc.release()

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr[-2000:]
    assert stderr.count("C-STORE") == 20
    assert not any(_alive(pid) for pid in children)


@pytest.mark.interop
def test_workers_die_with_the_daemon(tmp_path: Path, free_port: Callable[[], int]) -> None:
    port = free_port()
    cfg = write_config(tmp_path, port)
    cfg.write_text(cfg.read_text() + "IngestWorkers = 3\n")
    proc = start(cfg, tmp_path)
    try:
        wait_for_port(port, proc)
        assert _wait(lambda: len(_children(proc.pid)) == 2)
        children = _children(proc.pid)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert _wait(lambda: not any(_alive(pid) for pid in children), timeout=10)


def _children(pid: int) -> list[int]:
    """Worker processes of the daemon ``pid`` (``python -m node.workers``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"node.workers" in cmdline:
            found.append(int(entry.name))
    return found


def test_max_associations_is_split_so_the_total_never_exceeds_it() -> None:
    from node.workers import association_shares

    assert association_shares(16, 2) == [8, 8]
    assert association_shares(5, 2) == [3, 2]
    assert association_shares(1, 1) == [1]
    for limit in range(1, 40):
        for processes in range(1, min(limit, 8) + 1):
            shares = association_shares(limit, processes)
            assert sum(shares) == limit and min(shares) >= 1
