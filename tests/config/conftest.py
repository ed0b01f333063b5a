"""Fixtures for the config tests.

- ``write_cfg(text, name="node.cfg")``: writes a configuration file into ``tmp_path``.
- ``dcmtk_reading(path)``: how DCMTK itself reads a file.  ``dcmqrti -v`` calls DCMTK's
  ``DcmQueryRetrieveConfig::printConfig()`` after reading its configuration; given a peer
  name that is in no table it then stops without opening a connection, so it is an
  oracle for DCMTK's parser that never touches the network.  ``None`` means DCMTK
  refused the file.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
REPO_ROOT = Path(__file__).resolve().parents[2]

Peer = tuple[str, str, int]


@dataclass
class DcmtkAE:
    title: str
    storage_area: str
    access: str
    quota: tuple[int, int]
    peers: list[Peer] | None  # None: ANY


@dataclass
class DcmtkReading:
    hosts: dict[str, list[Peer]] = field(default_factory=dict)
    vendors: dict[str, list[Peer]] = field(default_factory=dict)
    network_tcp_port: int = 0
    max_pdu_size: int = 0
    max_associations: int = 0
    ae_table: list[DcmtkAE] = field(default_factory=list)


def _peer(line: str) -> Peer:
    ae_title, host, port = line.split(" ")
    return ae_title, host, int(port)


def _parse_print_config(lines: list[str]) -> DcmtkReading:
    """Parse the output of printConfig() (the 'I: ' prefix already removed)."""
    reading = DcmtkReading()
    it = iter(lines)

    def next_nonblank() -> str:
        for line in it:
            if line.strip():
                return line
        raise AssertionError("printConfig output ended early")

    def table(header: str) -> dict[str, list[Peer]]:
        line = next_nonblank()
        assert line.startswith(header + ": "), line
        entries: dict[str, list[Peer]] = {}
        for _ in range(int(line.split(": ")[1])):
            name, count = next(it).rsplit(" ", 1)
            peers = [_peer(next(it)) for _ in range(int(count))]
            entries.setdefault(name, peers)  # DCMTK resolves names to the first one
        return entries

    reading.hosts = table("HostTable")
    reading.vendors = table("VendorTable")
    assert next_nonblank() == "Global Parameters:"
    reading.network_tcp_port = int(next(it))
    reading.max_pdu_size = int(next(it))
    reading.max_associations = int(next(it))
    line = next_nonblank()
    assert line.startswith("AEEntries: "), line
    for _ in range(int(line.split(": ")[1])):
        title = next_nonblank()
        storage_area, access = next(it), next(it)
        studies, size = (int(v) for v in next(it).split(", "))
        peers_line = next(it)
        peers: list[Peer] | None = None
        if peers_line != "Peers: ANY":
            peers = [_peer(next(it)) for _ in range(int(peers_line.split(": ")[1]))]
        assert next(it).startswith("-----")
        reading.ae_table.append(DcmtkAE(title, storage_area, access, (studies, size), peers))
    return reading


@pytest.fixture
def write_cfg(tmp_path: Path) -> Callable[..., Path]:
    def _write(text: str, name: str = "node.cfg") -> Path:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return path

    return _write


@pytest.fixture(scope="session")
def dcmtk_reading(require_binary: Callable[[str], str]) -> Callable[[Path], DcmtkReading | None]:
    dcmqrti = require_binary("dcmqrti")

    def _read(path: Path) -> DcmtkReading | None:
        proc = subprocess.run(
            [dcmqrti, "-v", "-c", str(path), "NO_SUCH_PEER_NAME"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        output = proc.stdout + proc.stderr
        if "with errors" in output or "cannot read configuration file" in output:
            return None
        lines = [line[3:] for line in output.splitlines() if line.startswith("I: ")]
        assert lines, f"no printConfig output from dcmqrti:\n{output}"
        return _parse_print_config(lines)

    return _read
