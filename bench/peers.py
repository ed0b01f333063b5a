"""The systems under test, each a real process: our node, DCMTK ``storescp``, Orthanc.

Why processes and not objects: the figures must include everything a user gets (process
start-up aside), and the peers' figures must come from their own binaries.  Every DCMTK and
Orthanc process gets ``TCP_NODELAY=1`` in its environment (DCMTK reads it; without it a
loopback C-STORE stream waits on delayed ACKs and its figures are ten times too low).

Each system starts on a free loopback port with its own empty storage under a work folder,
answers ``stored_count()`` (after ``stop()`` for Orthanc, whose SQLite index is locked while
it runs) and ``peak_rss_mb()`` (VmHWM of its process tree, read from ``/proc``).

Binding: our node listens on 127.0.0.1 only.  DCMTK 3.6.7's ``storescp`` and Orthanc 1.10
cannot be told an address and listen on every interface, on a random high port, for the
seconds a measurement lasts; Orthanc's HTTP server is switched off.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar

logger = logging.getLogger(__name__)

#: AE title of every client the suite runs (storescu, findscu, movescu, our SCU).
CLIENT_AET = "BENCH"
#: AE title of the storescp that receives C-MOVE sub-operations.
MOVE_DEST_AET = "DEST"

US = "dicom-node"
ORTHANC = "orthanc"
STORESCP = "storescp"


def peer_env() -> dict[str, str]:
    """Environment of DCMTK and Orthanc processes."""
    return {**os.environ, "TCP_NODELAY": "1"}


def node_env() -> dict[str, str]:
    """Environment of ``node-ctl serve``: no ``NODE_*`` variable may override the bench config."""
    return {k: v for k, v in os.environ.items() if not k.upper().startswith("NODE_")}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/<pid>/task/<tid>/children``)."""
    out = [pid]
    index = 0
    while index < len(out):
        current = out[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{current}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            out.extend(int(c) for c in children if int(c) not in out)
    return out


def status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Server:
    """A peer process on a free port with its own work folder."""

    workdir: Path
    name: str = ""
    aet: str = ""
    port: int = 0
    startup_timeout: float = 60.0
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return peer_env()

    def prepare(self) -> None:
        """Write config files and create folders before the process starts."""

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.prepare()
        self._log = (self.workdir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(
            self.command(),
            env=self.environment(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
        )
        began = time.perf_counter()
        try:
            self.wait_ready()
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}; log: {self.log_tail()}") from exc
        logger.debug("%s listening after %.1f s", self.name, time.perf_counter() - began)

    def wait_ready(self) -> None:
        assert self.proc is not None
        wait_for_port(self.port, self.proc, self.startup_timeout, self.name)

    def stop(self, timeout: float = 30.0) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.workdir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def peak_rss_mb(self) -> float:
        """Largest VmHWM among the process tree (MB): what the biggest process ever held."""
        return max(status_kb(p, "VmHWM") for p in process_tree(self.pid)) / 1024

    def rss_mb(self) -> float:
        return sum(status_kb(p, "VmRSS") for p in process_tree(self.pid)) / 1024

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the process tree so far, children that ended and were
        reaped included (``storescp --fork``'s): ``/proc/<pid>/stat`` fields 14-17."""
        ticks = 0
        for pid in process_tree(self.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            ticks += sum(int(v) for v in fields[11:15])
        return ticks / os.sysconf("SC_CLK_TCK")

    def stored_count(self) -> int:
        raise NotImplementedError

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def node_ctl() -> str:
    """The ``node-ctl`` console script of the interpreter running the bench."""
    beside = Path(sys.executable).parent / "node-ctl"
    if beside.exists():
        return str(beside)
    found = shutil.which("node-ctl")
    if not found:
        raise RuntimeError("node-ctl not found: install the project (pip install -e .)")
    return found


#: What ``node.daemon`` logs (at INFO) once the listener is up.
READY_LINE = "dicom-node ready on port"


@dataclass
class NodePeer(Server):
    """``node-ctl serve --config node.cfg``, its config written for this run."""

    name: str = US
    aet: str = "NODE"
    database_url: str | None = None
    move_destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    #: INFO is the node's default (and needed for the ready line)
    log_level: str = "INFO"
    max_pdu_size: int = 16384
    extra_config: str = ""
    #: Lines added to every node config of a run (``python -m bench.run --node-config``).
    run_config: ClassVar[str] = ""

    @property
    def config_path(self) -> Path:
        return self.workdir / "node.cfg"

    @property
    def index_url(self) -> str:
        return self.database_url or f"sqlite:///{self.workdir / 'var' / 'index.sqlite'}"

    def prepare(self) -> None:
        hosts = "\n".join(
            f"{name.lower()} = ({aet}, 127.0.0.1, {port})"
            for name, (aet, port) in self.move_destinations.items()
        )
        database = f"DatabaseURL = {self.database_url}\n" if self.database_url else ""
        self.config_path.write_text(
            "# written by bench/peers.py\n"
            f"NetworkTCPPort = {self.port}\n"
            f"MaxPDUSize = {self.max_pdu_size}\n"
            "MaxAssociations = 16\n"
            f"DataDir = {self.workdir / 'var'}\n"
            f"{database}"
            "BindAddress = 127.0.0.1\n"
            f"LogLevel = {self.log_level}\n"
            "ShutdownGrace = 5\n"
            f"{self.extra_config}"
            f"{self.run_config}"
            "HostTable BEGIN\n"
            f"{hosts}\n"
            "HostTable END\n"
            "AETable BEGIN\n"
            f"{self.aet} {self.workdir / 'store'} RW (1000000, 1000gb) ANY\n"
            "AETable END\n"
        )

    def command(self) -> list[str]:
        return [node_ctl(), "serve", "--config", str(self.config_path)]

    def wait_ready(self) -> None:
        """Wait for the daemon's "ready" log line rather than probing the port.

        A probe connection would leave an association thread waiting for an
        A-ASSOCIATE-RQ until the ACSE timeout, and the node's shutdown would wait for it.
        """
        assert self.proc is not None
        log = self.workdir / f"{self.name}.log"
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"node-ctl serve exited with code {self.proc.returncode}")
            if READY_LINE in log.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise RuntimeError(f"node-ctl serve not ready within {self.startup_timeout:.0f} s")

    def environment(self) -> dict[str, str]:
        return node_env()

    def stored_count(self) -> int:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.index_url)
        try:
            with engine.connect() as conn:
                return int(conn.execute(text("SELECT count(*) FROM instances")).scalar() or 0)
        finally:
            engine.dispose()


@dataclass
class StoreSCPPeer(Server):
    """DCMTK ``storescp`` writing files (no index): the practical upper limit of ingest.

    ``--fork`` (one process per association) unless ``fork=False``: in its default single
    process mode storescp serves one association at a time, which would make the
    four-association figure meaningless.
    """

    name: str = STORESCP
    aet: str = "STORESCP"
    fork: bool = True
    extra: tuple[str, ...] = ()

    @property
    def folder(self) -> Path:
        return self.workdir / "received"

    def prepare(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)

    def command(self) -> list[str]:
        binary = shutil.which("storescp") or "storescp"
        mode = ["--fork"] if self.fork else []
        return [
            binary,
            *mode,
            "-aet",
            self.aet,
            "-od",
            str(self.folder),
            "+xa",  # accept every transfer syntax it knows (the corpus has compressed ones)
            "-pm",  # promiscuous: private and unknown SOP classes too
            *self.extra,
            str(self.port),
        ]

    def stop(self, timeout: float = 30.0) -> None:
        # with --fork, children serving an association must finish their files first
        if self.proc is not None:
            deadline = time.monotonic() + timeout
            while len(process_tree(self.proc.pid)) > 1 and time.monotonic() < deadline:
                time.sleep(0.05)
        super().stop(timeout)

    def stored_count(self) -> int:
        return sum(1 for p in self.folder.rglob("*") if p.is_file())


@dataclass
class OrthancPeer(Server):
    """Orthanc (Debian package) with its default SQLite index and our own JSON config."""

    name: str = ORTHANC
    aet: str = "ORTHANC"
    move_destinations: dict[str, tuple[str, int]] = field(default_factory=dict)
    overrides: dict[str, object] = field(default_factory=dict)

    @property
    def config_path(self) -> Path:
        return self.workdir / "orthanc.json"

    def prepare(self) -> None:
        modalities: dict[str, list[object]] = {"bench": [CLIENT_AET, "127.0.0.1", 104]}
        for name, (aet, port) in self.move_destinations.items():
            modalities[name.lower()] = [aet, "127.0.0.1", port]
        config: dict[str, object] = {
            "Name": "bench-orthanc",
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "StorageCompression": False,
            "Plugins": [],
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomModalities": modalities,
            # HTTP is not needed (counts are read from the index after stop) and would
            # listen on every interface.
            "HttpServerEnabled": False,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "SaveJobs": False,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
        }
        config.update(self.overrides)
        self.config_path.write_text(json.dumps(config, indent=2))

    def command(self) -> list[str]:
        binary = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
        return [binary, str(self.config_path)]

    def stored_count(self) -> int:
        """Instances in Orthanc's index (call after ``stop()``: it locks the database)."""
        path = self.workdir / "index" / "index"
        if not path.exists():
            return 0
        with sqlite3.connect(path) as conn:
            row = conn.execute("SELECT count(*) FROM Resources WHERE resourceType = 4").fetchone()
        return int(row[0])


def available(name: str) -> str | None:
    """Why a system cannot run here, or None when it can."""
    if name == US:
        try:
            node_ctl()
        except RuntimeError as exc:
            return str(exc)
        return None
    binary = {STORESCP: "storescp", ORTHANC: "Orthanc"}[name]
    if shutil.which(binary) is None and not (
        name == ORTHANC and Path("/usr/sbin/Orthanc").exists()
    ):
        package = {STORESCP: "dcmtk", ORTHANC: "orthanc"}[name]
        return f"{binary} not installed (apt-get install {package})"
    return None


def make_server(name: str, workdir: Path, **kwargs: object) -> Server:
    cls: type[Server] = {US: NodePeer, STORESCP: StoreSCPPeer, ORTHANC: OrthancPeer}[name]
    return cls(workdir=workdir, **kwargs)  # type: ignore[arg-type]
