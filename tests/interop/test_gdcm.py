"""GDCM's gdcmscu against the node, with the command lines of its manual.

Debian's gdcmscu (gdcm 3.0.21) aborts at exit after every operation, against any peer
(DCMTK's storescp too); ``run_gdcmscu`` tolerates exactly that crash, and each test checks
the operation's effect on the node's side.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from config.model import HostEntry
from tests.interop.conftest import run_gdcmscu
from tests.services.helpers import make_ct

pytestmark = pytest.mark.interop


def test_gdcmscu_echo(interop_node, require_binary, caplog) -> None:
    node = interop_node()
    caplog.set_level("INFO", logger="node.services.echo")
    run_gdcmscu(
        [require_binary("gdcmscu"), "--echo", "--call", "NODE", "127.0.0.1", str(node.port)]
    )
    assert any("GDCMSCU" in r.getMessage() and "C-ECHO" in r.getMessage() for r in caplog.records)


def _find_matches(caplog) -> list[int]:
    """Match counts the node logged for each C-FIND (gdcmscu prints its results only after
    the release, where Debian's build aborts, so the node's side is what can be checked)."""
    counts = []
    for record in caplog.records:
        message = record.getMessage()
        if "C-FIND done:" in message:
            counts.append(int(message.split("C-FIND done:")[1].split()[0]))
    return counts


def test_gdcmscu_store_find_move(
    interop_node, require_binary, tmp_path: Path, free_port, caplog
) -> None:
    caplog.set_level("INFO", logger="node.services.find")
    gdcmscu = require_binary("gdcmscu")
    scp_port = free_port()
    node = interop_node(
        hosts={"gdcm": (HostEntry(ae_title="GDCMSCU", hostname="127.0.0.1", port=scp_port),)}
    )
    folder = tmp_path / "in"
    folder.mkdir()
    first = make_ct("GDCM1", "ANDERSON^A")
    second = make_ct("GDCM2", "BAKER^B")
    for i, ds in enumerate((first, second)):
        ds.save_as(folder / f"{i}.dcm", enforce_file_format=True)

    run_gdcmscu(
        [gdcmscu, "--store", "--call", "NODE", "127.0.0.1", str(node.port), "-r", "-i", str(folder)]
    )
    assert node.index.counts("NODE")["instances"] == 2

    run_gdcmscu(
        [
            gdcmscu,
            "--find",
            "--patient",
            "--patientroot",
            "--call",
            "NODE",
            "--key",
            "10,10=A*",
            "--key",
            "10,20=",
            "127.0.0.1",
            str(node.port),
        ]
    )
    run_gdcmscu(
        [
            gdcmscu,
            "--find",
            "--image",
            "--studyroot",
            "--call",
            "NODE",
            "--key",
            f"8,18={second.SOPInstanceUID}",
            "--key",
            "10,10=",
            "127.0.0.1",
            str(node.port),
        ]
    )
    assert _find_matches(caplog) == [1, 1]

    out = tmp_path / "moved"
    out.mkdir()
    run_gdcmscu(
        [
            gdcmscu,
            "--move",
            "--patient",
            "--patientroot",
            "--call",
            "NODE",
            "--key",
            "10,20=GDCM1",
            "--port-scp",
            str(scp_port),
            "-o",
            str(out),
            "127.0.0.1",
            str(node.port),
        ]
    )
    received = [p for p in out.rglob("*") if p.is_file()]
    assert len(received) == 1
    assert dcmread(received[0]).SOPInstanceUID == first.SOPInstanceUID
    # gdcmscu's storage SCP accepts only Implicit VR: same elements, other encoding
    got, sent = dcmread(received[0]), dcmread(folder / "0.dcm")
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    assert [(e.tag, e.value) for e in got] == [(e.tag, e.value) for e in sent]
