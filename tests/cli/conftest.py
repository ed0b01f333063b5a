"""Reference DICOM peers for CLI tests: DCMTK ``dcmqrscp`` and ``storescp`` on free ports.

``dcmqrscp_factory(...)`` writes a ``dcmqrscp.cfg`` in a temporary directory (one AE with
its own storage area, a HostTable with the move destinations the test needs), starts
``dcmqrscp`` on a free loopback port and stops it at teardown.  ``qrscp`` is a
session-wide one already loaded (with DCMTK ``storescu``) with :data:`QR_SERIES`: two
patients, two studies, five series, 22 instances.  ``storescp_factory`` starts a
promiscuous ``storescp`` writing into a directory.

Anyone may reuse these: they depend only on the DCMTK binaries and the shared corpus.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

#: Series of the shared corpus loaded into ``qrscp`` (all Explicit VR Little Endian).
QR_SERIES = (
    "dcm_qa_ge/In/01_Ax_DWI_TENSOR_R2",  # patient "dicom": one study, one series, 14 images
    "dcm_qa_nih/In/20180918Si",  # patient "DEV": one study, four series of two images
)

QR_AET = "QRSCP"


def _port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """Block until something accepts on 127.0.0.1:port (or the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class DcmQrScp:
    """A running dcmqrscp: where it listens, its storage area, its config and log."""

    port: int
    aet: str
    storage: Path
    config: Path
    log: Path
    destinations: dict[str, int]
    process: subprocess.Popen[bytes] = field(repr=False)
    host: str = "127.0.0.1"

    def load(self, paths: Sequence[Path], storescu: str = "storescu") -> None:
        """Store files into it with DCMTK storescu (fails the test if one is refused)."""
        result = subprocess.run(
            [storescu, "-aet", "LOADER", "-aec", self.aet, self.host, str(self.port)]
            + [str(p) for p in paths],
            capture_output=True,
            text=True,
            env={**os.environ, "TCP_NODELAY": "1"},
            timeout=120,
        )
        if result.returncode != 0:
            raise RuntimeError(f"storescu into dcmqrscp failed: {result.stderr}")


def _write_config(path: Path, port: int, aet: str, storage: Path, dests: dict[str, int]) -> None:
    hosts = "\n".join(
        f"dest{i} = ({ae}, 127.0.0.1, {p})" for i, (ae, p) in enumerate(sorted(dests.items()))
    )
    path.write_text(
        f"""# written by tests/cli/conftest.py
NetworkTCPPort = {port}
MaxPDUSize = 16384
MaxAssociations = 16

HostTable BEGIN
{hosts}
HostTable END

VendorTable BEGIN
VendorTable END

AETable BEGIN
{aet} {storage} RW (200, 1024mb) ANY
AETable END
""",
        encoding="utf-8",
    )


@pytest.fixture(scope="session")
def dcmqrscp_factory(
    require_binary: Callable[[str], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., DcmQrScp]]:
    """``factory(aet="QRSCP", destinations={"AE": port}, extra_args=())`` -> DcmQrScp."""
    binary = require_binary("dcmqrscp")
    running: list[subprocess.Popen[bytes]] = []

    def _start(
        aet: str = QR_AET,
        destinations: dict[str, int] | None = None,
        extra_args: Sequence[str] = (),
    ) -> DcmQrScp:
        root = tmp_path_factory.mktemp("dcmqrscp")
        storage = root / "db"
        storage.mkdir()
        port = _port()
        dests = dict(destinations or {})
        config = root / "dcmqrscp.cfg"
        _write_config(config, port, aet, storage, dests)
        log = root / "dcmqrscp.log"
        with log.open("wb") as fh:
            process = subprocess.Popen(
                [binary, "-c", str(config), *extra_args, str(port)],
                stdout=fh,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TCP_NODELAY": "1"},
            )
        running.append(process)
        wait_for_port(port, process)
        return DcmQrScp(port, aet, storage, config, log, dests, process)

    yield _start
    for process in running:
        _stop(process)


@pytest.fixture(scope="session")
def qr_files(corpus_dir: Path) -> list[Path]:
    files: list[Path] = []
    for series in QR_SERIES:
        files += sorted(p for p in (corpus_dir / series).rglob("*") if p.is_file())
    return files


@pytest.fixture(scope="session")
def qrscp(
    dcmqrscp_factory: Callable[..., DcmQrScp],
    qr_files: list[Path],
    require_binary: Callable[[str], str],
) -> DcmQrScp:
    """A dcmqrscp loaded with :data:`QR_SERIES`; it knows two move destinations.

    ``NODECTL`` (our built-in receiver; the port is in ``destinations``) and ``STORESCP``
    (for third-party moves).  Tests must not store into it (use the factory for that).
    """
    server = dcmqrscp_factory(destinations={"NODECTL": _port(), "STORESCP": _port()})
    server.load(qr_files, require_binary("storescu"))
    return server


@dataclass
class StoreScp:
    port: int
    aet: str
    directory: Path
    process: subprocess.Popen[bytes] = field(repr=False)
    host: str = "127.0.0.1"

    def files(self) -> list[Path]:
        return sorted(p for p in self.directory.rglob("*") if p.is_file())


@pytest.fixture
def storescp_factory(
    require_binary: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., StoreScp]]:
    """``factory(port=None, aet="STORESCP", extra_args=())``: promiscuous, all syntaxes.

    ``extra_args`` replace the default transfer syntax policy (``+xa``, accept all), e.g.
    ``["+xi"]`` for implicit VR little endian only.
    """
    binary = require_binary("storescp")
    running: list[subprocess.Popen[bytes]] = []

    def _start(
        port: int | None = None, aet: str = "STORESCP", extra_args: Sequence[str] | None = None
    ) -> StoreScp:
        port = port or _port()
        directory = tmp_path / f"storescp-{port}"
        directory.mkdir()
        args = ["+xa"] if extra_args is None else list(extra_args)
        process = subprocess.Popen(
            [binary, "-aet", aet, "-pm", "-od", str(directory), *args, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        running.append(process)
        wait_for_port(port, process)
        return StoreScp(port, aet, directory, process)

    yield _start
    for process in running:
        _stop(process)


# The real node on a free port, for the tests of node-ctl against our own node.
from tests.services.conftest import start_node  # noqa: E402, F401
