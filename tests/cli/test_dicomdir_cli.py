"""``node-ctl dicomdir`` from the command line: in place, media export, reports, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pydicom
import pytest
from pydicom.fileset import FileSet

from node.cli.main import main
from tests.tools.test_dicomdir import make_instance


def test_in_place_with_inventions_and_strict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "CD"
    make_instance(root / "IMG" / "IM1", PatientID=None, StudyID=None)
    make_instance(root / "IMG" / "IM2", InstanceNumber=2, PatientID=None, StudyID=None)
    (root / "IMG" / "notes.txt").write_text("x")
    assert main(["dicomdir", "+F", "MY CD", str(root)]) == 0
    captured = capsys.readouterr()
    assert f"{root / 'DICOMDIR'}: 2 instance(s), 1 skipped, 2 value(s) invented" in captured.out
    assert "inventing PatientID: DCMTKPAT000000" in captured.err
    assert "inventing StudyID: DCMTKSTUDY000000" in captured.err
    assert "W: skipped" in captured.err and "notes.txt" in captured.err
    fs = FileSet(root / "DICOMDIR")
    assert fs.ID == "MY CD" and len(fs) == 2
    # dcmmkdir's default is strict: the same run fails with --strict
    assert main(["dicomdir", "--strict", "-q", str(root)]) == 1
    assert capsys.readouterr().err == ""


def test_output_elsewhere_and_map_filenames(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_instance(tmp_path / "set" / "sub" / "im1")
    out = tmp_path / "set" / "DICOMDIR"
    assert main(["dicomdir", "+m", "-o", str(out), str(tmp_path / "set" / "sub")]) == 0
    record = [r for r in pydicom.dcmread(out).DirectoryRecordSequence if "ReferencedFileID" in r]
    assert list(record[0].ReferencedFileID) == ["SUB", "IM1"]
    assert "1 instance(s)" in capsys.readouterr().out


def test_export_media(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_instance(tmp_path / "in" / "some file.dcm")
    readme = tmp_path / "readme.txt"
    readme.write_text("hello\n")
    media = tmp_path / "media"
    code = main(
        ["dicomdir", "--export", str(media), "--profile", "STD-GEN-CD", "+R", str(readme),
         "--root-uid", "1.2.826.0.1.3680043.10.1471.3", str(src)]
    )  # fmt: skip
    assert code == 0
    assert "1 instance(s), 0 converted, 0 skipped" in capsys.readouterr().out
    meta = pydicom.dcmread(media / "DICOMDIR").file_meta
    assert meta.MediaStorageSOPInstanceUID.startswith("1.2.826.0.1.3680043.10.1471.3.")
    assert (media / "README").read_text() == "hello\n"
    assert [i.path for i in FileSet(media / "DICOMDIR")][0].endswith(
        "DICOM/PA000001/ST000001/SE000001/IM000001"
    )


def test_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_instance(tmp_path / "in" / "IM1")
    assert main(["dicomdir", "--export", str(tmp_path / "o"), "--profile", "CD-ROM", str(src)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("node-ctl dicomdir: unknown media profile") and err.count("\n") == 1
    assert main(["dicomdir", str(tmp_path / "missing")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert (
        main(["dicomdir", "-o", str(tmp_path / "D"), "--export", str(tmp_path / "x"), str(src)])
        == 2
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["dicomdir", str(empty)]) == 1
    assert "no DICOM file to reference" in capsys.readouterr().err
    assert main(["dicomdir", "+F", "way too long file-set id", str(src.parent)]) == 1
    assert "file-set ID" in capsys.readouterr().err


def test_console_script_has_no_traceback(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "node.cli.main", "dicomdir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("node-ctl dicomdir: no DICOM file to reference")


def test_export_studies_held_by_a_node(start_node, tmp_path: Path) -> None:
    """--export --study UID -c node.cfg: the files come from the node's store and index."""
    import subprocess
    import sys

    from pydicom.fileset import FileSet

    from tests.conftest import REPO_ROOT
    from tests.services.helpers import associate, make_ct, scu

    cfg = tmp_path / "node.cfg"
    node = start_node()
    port = node.port
    first = make_ct("EXP1")
    second = make_ct("EXP1", study_uid=first.StudyInstanceUID)
    assoc = associate(scu(storage=True), port)
    for ds in (first, second, make_ct("OTHER")):
        assert assoc.send_c_store(ds).Status == 0
    assoc.release()
    settings = node.settings
    cfg.write_text(
        f"NetworkTCPPort = {port}\nDataDir = {settings.data_dir}\n"
        f"AETable BEGIN\nNODE {settings.ae_table[0].storage_area} RW (100, 100mb) ANY\n"
        "AETable END\n"
    )
    media = tmp_path / "media"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli.main",
            "dicomdir",
            "--export",
            str(media),
            "--study",
            first.StudyInstanceUID,
            "-c",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    fileset = FileSet(media / "DICOMDIR")
    assert sorted(i.SOPInstanceUID for i in fileset) == sorted(
        [first.SOPInstanceUID, second.SOPInstanceUID]
    )
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "node.cli.main",
            "dicomdir",
            "--export",
            str(tmp_path / "m2"),
            "--study",
            "1.2.3.999",
            "-c",
            str(cfg),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO_ROOT)},
    )
    assert missing.returncode == 1 and "holds no study 1.2.3.999" in missing.stderr


def test_only_the_command_module_is_imported(tmp_path: Path) -> None:
    """``node-ctl dicomdir`` loads neither the network stack nor the settings model."""
    root = tmp_path / "CD"
    make_instance(root / "IM1")
    code = (
        "import sys\n"
        "from node.cli.main import main\n"
        f"assert main(['-v', 'dicomdir', '-q', {str(root)!r}]) == 0\n"
        "loaded = [m for m in ('pynetdicom', 'pydantic', 'httpx', 'sqlalchemy') "
        "if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (root / "DICOMDIR").is_file()


def test_full_parser_when_no_command_module(capsys: pytest.CaptureFixture[str]) -> None:
    from node.cli.main import _command_module

    assert _command_module(["-v", "dicomdir", "x"]) == "dicomdir"
    assert _command_module(["--help"]) is None
    assert _command_module(["_jobs"]) is None
    assert _command_module(["echo"]) is None  # registered by the scu module
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "anonymize" in out and "dicomdir" in out
