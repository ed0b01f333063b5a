"""node-ctl's SCU commands against our own node (the DCMTK peers are in test_scu.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread

from config.model import HostEntry
from tests.conftest import REPO_ROOT
from tests.services.helpers import make_ct


def ctl(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run node-ctl in its own process, as a user does (pynetdicom's switches are
    process-wide, so an in-process node-ctl and node would change each other's)."""
    proc = subprocess.run(
        [sys.executable, "-m", "node.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def files(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "in"
    folder.mkdir()
    a = make_ct("CTL1", "NODECTL^ONE")
    b = make_ct("CTL1", "NODECTL^ONE", study_uid=a.StudyInstanceUID)
    c = make_ct("CTL2", "OTHER^TWO")
    paths = []
    for i, ds in enumerate((a, b, c)):
        path = folder / f"{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def test_echo_store_find_get_move(
    start_node,
    files,
    tmp_path,
    capsys,
    free_port: Callable[[], int],
) -> None:
    scp_port = free_port()
    node = start_node(
        hosts={"ctl": (HostEntry(ae_title="NODECTL", hostname="127.0.0.1", port=scp_port),)}
    )
    port = str(node.port)
    code, out, err = ctl(capsys, "echo", "-aec", "NODE", "127.0.0.1", port)
    assert code == 0, err

    code, out, err = ctl(
        capsys,
        "store",
        "-aec",
        "NODE",
        "--no-progress",
        "-r",
        "127.0.0.1",
        port,
        str(files[0].parent),
    )
    assert code == 0, err
    assert node.index.counts("NODE")["instances"] == 3

    code, out, err = ctl(
        capsys,
        "find",
        "-aec",
        "NODE",
        "--json",
        "-S",
        "--study",
        "-k",
        "PatientName=nodectl*",
        "-k",
        "StudyInstanceUID",
        "-k",
        "NumberOfStudyRelatedInstances",
        "127.0.0.1",
        port,
    )
    assert code == 0, err
    found = json.loads(out)
    assert len(found) == 1 if isinstance(found, list) else found
    assert "2" in out  # two instances in the matching study

    study_uid = dcmread(files[0]).StudyInstanceUID
    got = tmp_path / "got"
    code, out, err = ctl(
        capsys,
        "get",
        "-aec",
        "NODE",
        "--no-progress",
        "-S",
        "--study",
        "-k",
        f"StudyInstanceUID={study_uid}",
        "-o",
        str(got),
        "127.0.0.1",
        port,
    )
    assert code == 0, err
    assert len([p for p in got.rglob("*") if p.is_file()]) == 2

    moved = tmp_path / "moved"
    code, out, err = ctl(
        capsys,
        "move",
        "-aec",
        "NODE",
        "--no-progress",
        "-P",
        "--patient",
        "-k",
        "PatientID=CTL2",
        "--port-scp",
        str(scp_port),
        "-o",
        str(moved),
        "127.0.0.1",
        port,
    )
    assert code == 0, err
    [received] = [p for p in moved.rglob("*") if p.is_file()]
    assert dcmread(received).PatientID == "CTL2"


def test_move_to_unknown_destination_explains(start_node, files, capsys) -> None:
    node = start_node()
    port = str(node.port)
    assert (
        ctl(capsys, "store", "-aec", "NODE", "--no-progress", "127.0.0.1", port, str(files[2]))[0]
        == 0
    )
    code, out, err = ctl(
        capsys,
        "move",
        "-aec",
        "NODE",
        "--no-progress",
        "-aem",
        "NOWHERE",
        "-P",
        "--patient",
        "-k",
        "PatientID=CTL2",
        "127.0.0.1",
        port,
    )
    assert code != 0
    assert len(err.strip().splitlines()) == 1
    assert "NOWHERE" in err or "destination" in err.lower()
