"""``-j/--jobs`` of the offline tools: worker processes give what one process gives."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from node.cli.main import main
from tests.services.helpers import make_ct


def ctl(*args: str | Path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main([*map(str, args)])


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """in/S0/IM000001.. and in/S1/..: two studies of five 16x16 CT images each."""
    root = tmp_path / "in"
    for s in range(2):
        study, series = generate_uid(), generate_uid()
        (root / f"S{s}").mkdir(parents=True)
        for n in range(5):
            ds = make_ct(f"P{s}", f"DOE^{s}", study_uid=study, series_uid=series, rows=16)
            ds.InstanceNumber = n + 1
            ds.WindowCenter, ds.WindowWidth = "100", "400"
            ds.save_as(root / f"S{s}" / f"IM{n + 1:06d}", enforce_file_format=True)
    return root


def outputs(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_anonymize_workers_write_what_one_process_writes(folder: Path, tmp_path: Path) -> None:
    for jobs in ("1", "2"):
        assert ctl("anonymize", "-r", "--secret", "k", "-j", jobs, folder, tmp_path / jobs) == 0
    assert outputs(tmp_path / "1") == outputs(tmp_path / "2")
    assert len(outputs(tmp_path / "2")) == 10


def test_anonymize_without_secret_is_consistent_across_workers(
    folder: Path, tmp_path: Path
) -> None:
    assert ctl("anonymize", "-r", "-j", "2", folder, tmp_path / "out") == 0
    for study in ("S0", "S1"):
        files = sorted((tmp_path / "out" / study).iterdir())
        uids = {str(dcmread(p).StudyInstanceUID) for p in files}
        names = {str(dcmread(p).PatientName) for p in files}
        assert len(files) == 5 and len(uids) == 1 and len(names) == 1


def test_anonymize_stop_leaves_what_a_serial_run_leaves(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (folder / "S0" / "IM000003").write_text("not DICOM")
    assert ctl("anonymize", "-r", "-j", "2", folder, tmp_path / "out") == 1
    assert "2 done, 0 skipped, 1 failed" in capsys.readouterr().out
    assert sorted(outputs(tmp_path / "out")) == ["S0/IM000001", "S0/IM000002"]


def test_convert_workers_keep_the_order_of_the_report(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert ctl("convert", "--rle", "-r", "-j", "1", folder, tmp_path / "one") == 0
    one = capsys.readouterr().out.replace(str(tmp_path / "one"), "OUT")
    assert ctl("convert", "--rle", "-r", "-j", "2", folder, tmp_path / "two") == 0
    two = capsys.readouterr().out.replace(str(tmp_path / "two"), "OUT")
    assert one == two and "10 converted, 0 failed" in two
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")


def test_render_a_folder(folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (folder / "S1" / "NOTES").write_text("not DICOM")
    assert ctl("render", "-r", "-j", "2", "+Wi", "1", folder, tmp_path / "png") == 0
    written = sorted(outputs(tmp_path / "png"))
    assert written == [f"S{s}/IM{n:06d}.png" for s in range(2) for n in range(1, 6)]
    assert "NOTES: skipped" in capsys.readouterr().err
    assert ctl("render", "--format", "pgm", folder / "S0", tmp_path / "pgm") == 0
    assert len(list((tmp_path / "pgm").glob("*.pgm"))) == 5
    assert ctl("render", folder, folder / "S0" / "IM000001") == 2  # OUT must be a folder


def test_dicomdir_workers_reference_every_file(folder: Path) -> None:
    assert ctl("dicomdir", "-q", "-j", "2", folder) == 0
    records = dcmread(folder / "DICOMDIR").DirectoryRecordSequence
    assert sum(r.DirectoryRecordType == "IMAGE" for r in records) == 10
