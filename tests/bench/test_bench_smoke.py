"""Smoke test of the benchmark suite: ``python -m bench.run --quick`` with tiny counts.

It runs the real command (node-ctl serve, DCMTK storescu/storescp, Orthanc when installed)
and checks that the table and the JSON come out with figures for us and for a peer.  It
asserts no time: the figures of a busy CI machine mean nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.interop


def _row(table: str, title: str) -> list[str]:
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == title:
            return cells
    raise AssertionError(f"no table row {title!r} in:\n{table}")


def _number(cell: str) -> float:
    return float(cell.split("/")[0].replace(",", "").strip())


def test_quick_run_produces_table_and_json(
    tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    for name in ("storescu", "storescp", "findscu", "movescu"):
        require_binary(name)
    orthanc = shutil.which("Orthanc") is not None
    out = tmp_path / "results" / "latest.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--workloads",
            "ingest,find,move",
            "--associations",
            "1",
            "--count",
            "5",
            "--find-studies",
            "3",
            "--find-reps",
            "2",
            "--move-count",
            "3",
            "--peers",
            "storescp,orthanc" if orthanc else "storescp",
            "--postgres-url",
            "none",
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]

    document = json.loads(out.read_text())
    figures = {fig["key"]: fig for fig in document["figures"]}
    ingest = figures["ingest-ct-1"]
    assert ingest["error"] == ""
    assert ingest["notes"] == []  # every system stored the 5 instances it was sent
    assert ingest["details"]["instances"] == 5
    for system in ("dicom-node", "storescp", *(["orthanc"] if orthanc else [])):
        assert len(ingest["values"][system]) == 1
        assert ingest["values"][system][0] > 0
        assert ingest["summary"]["ratio"].get(system, 1) > 0
    assert ingest["summary"]["ratio"]["storescp"] > 0

    move = figures["move-study"]
    assert move["error"] == "" and move["notes"] == []
    assert move["values"]["dicom-node"][0] > 0
    finds = [fig for key, fig in figures.items() if key.startswith("find-")]
    assert len(finds) == 8
    for fig in finds:
        assert fig["error"] == "" and fig["notes"] == [], fig
        assert set(fig["details"]["matches"]["dicom-node"]) == {fig["details"]["expected_matches"]}
    if orthanc:
        assert move["values"]["orthanc"][0] > 0
        assert move["summary"]["ratio"]["orthanc"] > 0
        for fig in finds:
            assert fig["values"]["orthanc"][0] > 0 and fig["secondary"]["orthanc"][0] > 0

    environment = document["environment"]
    assert environment["cpus"] >= 1 and environment["packages"]["pynetdicom"]
    assert environment["dcmtk"]

    table = proc.stdout
    assert table == out.with_suffix(".md").read_text()
    assert table.startswith("| Workload | Metric | dicom-node | Orthanc | storescp |")
    row = _row(table, "Ingest 0.5 MB CT, 1 association")
    assert _number(row[2]) > 0 and _number(row[4]) > 0  # dicom-node and storescp columns
    assert row[6].endswith("x")  # ratio against storescp
    if orthanc:
        assert _number(_row(table, "C-MOVE of a 3-instance study into storescp")[3]) > 0
    assert "Environment:" in table


def test_quick_tools_run_compares_with_the_cpp_tools(
    tmp_path: Path, require_binary: Callable[[str], str]
) -> None:
    for name in ("gdcmanon", "gdcmconv", "dcm2pnm", "dcmmkdir", "gdcmgendir", "openssl"):
        require_binary(name)
    out = tmp_path / "results" / "latest.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.run",
            "--quick",
            "--workloads",
            "tools",
            "--tools-count",
            "4",
            "--postgres-url",
            "none",
            "--workdir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    figures = {fig["key"]: fig for fig in json.loads(out.read_text())["figures"]}
    assert set(figures) == {
        "tools-anonymize",
        "tools-convert-jpegls",
        "tools-render-png",
        "tools-dicomdir-dcmmkdir",
        "tools-dicomdir-gdcmgendir",
    }
    for fig in figures.values():
        assert fig["error"] == "" and fig["notes"] == [], fig
        assert fig["values"]["dicom-node"][0] > 0 and fig["values"]["cxx-tool"][0] > 0
        assert fig["summary"]["ratio"]["cxx-tool"] > 0
        assert fig["details"]["files"] == 4
    table = proc.stdout
    assert "| Tool workload | Metric | dicom-node | C++ tool | Tool | vs tool |" in table
    assert _row(table, "Render to PNG (file's first window), 4 CT files: node-ctl vs dcm2pnm")[
        4
    ] == ("dcm2pnm")
