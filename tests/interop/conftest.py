"""Real DCMTK/GDCM peers around a real node: the node in-process, the peers as processes.

Every DCMTK process gets ``TCP_NODELAY=1`` in its environment (DCMTK reads it), as a site
would configure it.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from config.model import AEEntry, HostEntry
from node.app import Node
from tests.services.conftest import make_settings

PEER_ENV = {**os.environ, "TCP_NODELAY": "1"}


def run(args: list[str], timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=PEER_ENV, errors="replace"
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
            f"stderr:\n{proc.stderr}"
        )
    return proc


GDCM_TEARDOWN_CRASH = "ProtocolStream as nullptr is invalid"


def run_gdcmscu(args: list[str], timeout: float = 30) -> subprocess.CompletedProcess:
    """Run gdcmscu; tolerate only the teardown crash of Debian's gdcm 3.0.21.

    The timeout is a hang detector, not a speed check: each operation here takes well under
    a second, and gdcmscu waits 60 s for a response it cannot read (it did, for C-FIND
    responses sent with the command and the identifier in one P-DATA-TF), then exits as if
    nothing happened.

    That gdcmscu aborts with ``ProtocolStream as nullptr is invalid`` when it exits, after
    the operation completed, against any peer (DCMTK storescp too).  The caller checks the
    operation's effect on our side, so the crash is accepted only with that exact message.
    """
    proc = run(args, timeout=timeout, check=False)
    if proc.returncode != 0 and not (
        proc.returncode in (134, -6) and GDCM_TEARDOWN_CRASH in proc.stderr
    ):
        raise AssertionError(
            f"{' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


@pytest.fixture
def interop_node(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Callable[..., Node]]:
    started: list[Node] = []

    def _start(hosts: dict[str, tuple[HostEntry, ...]] | None = None, **overrides: object) -> Node:
        settings = make_settings(tmp_path, free_port(), hosts=hosts or {}, **overrides)
        node = Node(settings)
        node.start()
        started.append(node)
        return node

    yield _start
    for node in started:
        node.stop(grace=1.0)


class StoreSCP:
    """DCMTK storescp writing what it receives to a folder."""

    def __init__(self, binary: str, port: int, folder: Path, extra: list[str]) -> None:
        self.port = port
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "-aet", "DEST", "-od", str(folder), *extra, str(port)],
            env=PEER_ENV,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        import socket

        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError("storescp did not start")

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def storescp(
    require_binary: Callable[[str], str], tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[Callable[..., StoreSCP]]:
    started: list[StoreSCP] = []

    def _start(*extra: str) -> StoreSCP:
        scp = StoreSCP(
            require_binary("storescp"), free_port(), tmp_path / f"scp{len(started)}", list(extra)
        )
        started.append(scp)
        return scp

    yield _start
    for scp in started:
        scp.stop()


def dataset_bytes(path: Path) -> bytes:
    """The dataset part of a DICOM file (everything after the file meta)."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    with open(path, "rb") as fh:
        read_preamble(fh, False)
        _read_file_meta_info(fh)
        return fh.read()


__all__ = ["AEEntry", "HostEntry", "run", "run_gdcmscu", "dataset_bytes", "StoreSCP"]
