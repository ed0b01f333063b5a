"""``node-ctl dump|info|diff|raw|scan|undump``: outputs, exit codes, error lines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydicom
import pytest

from node.cli.main import main

CT1 = "cornerstone-wado/testImages/CT1_J2KR"
CT = "cornerstone-wado/testImages/CTImage.dcm"
CT_LS = "cornerstone-wado/testImages/CTImage.dcm_JPEGLSLosslessTransferSyntax_1.2.840.10008.1.2.4.80.dcm"  # noqa: E501


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_dump_file_meta_and_directory(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "dump", str(corpus_dir / CT1))
    assert code == 0
    assert "# Dicom-Meta-Information-Header" not in out
    assert "(0010,0010) PN [CompressedSamples^CT1]" in out
    assert "(0009,1001) LO [GE_GENESIS_FF]" in out and "GEMS_IDEN_01: " in out
    assert "(7fe0,0010) OB (PixelSequence #=4)" in out
    code, out, _ = run(capsys, "dump", "--meta", str(corpus_dir / CT1))
    assert "(0002,0010) UI [1.2.840.10008.1.2.4.90]" in out

    folder = tmp_path / "d"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(corpus_dir / CT1, folder / "a.dcm")
    shutil.copy(corpus_dir / CT, folder / "sub" / "b.dcm")
    code, out, _ = run(capsys, "dump", str(folder))
    assert out.count("# node-ctl dump (") == 0 and "CompressedSamples^CT1" in out
    code, out, _ = run(capsys, "dump", "-r", str(folder))
    assert out.count("# node-ctl dump (") == 2 and "MISTER^CT" in out


def test_dump_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "dump", str(tmp_path / "missing.dcm"))
    assert code == 2 and out == ""
    assert err.strip() == f"node-ctl dump: error: no such file or directory: {tmp_path}/missing.dcm"
    (tmp_path / "notes.txt").write_text("hello")
    code, _, err = run(capsys, "dump", str(tmp_path / "notes.txt"))
    assert code == 1 and "not a DICOM file" in err and len(err.strip().splitlines()) == 1


def test_info_text_json_md5_and_compression(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "info", str(corpus_dir / CT1))
    assert code == 0
    assert "Dimensions: (512,512,1)" in out and "Orientation Label: AXIAL" in out
    assert "md5sum" not in out
    code, out, _ = run(
        capsys, "info", "--json", "--md5sum", "--check-compression",
        str(corpus_dir / CT), str(corpus_dir / CT_LS),
    )  # fmt: skip
    assert code == 0
    plain, jpegls = json.loads(out)
    assert plain["md5sum"] == jpegls["md5sum"]
    assert jpegls["compression"] == {"codec": "JPEG-LS", "lossless": True, "detail": "NEAR=0"}
    assert plain["transfer_syntax_uid"] == "1.2.840.10008.1.2"


def test_info_reports_undecodable_files_without_stopping(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ds = pydicom.dcmread(corpus_dir / CT)
    del ds.PixelData
    ds.save_as(tmp_path / "nopixels.dcm")
    code, out, err = run(
        capsys, "info", "--md5sum", str(tmp_path / "nopixels.dcm"), str(corpus_dir / CT)
    )
    assert code == 1
    assert "no Pixel Data" in err
    assert out.count("md5sum:") == 1


def test_diff_exit_codes_and_json(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "diff", str(corpus_dir / CT1), str(corpus_dir / CT1))
    assert (code, out) == (0, "")
    ds = pydicom.dcmread(corpus_dir / CT1)
    ds.PatientName = "OTHER^NAME"
    ds.save_as(tmp_path / "changed.dcm")
    code, out, _ = run(capsys, "diff", str(corpus_dir / CT1), str(tmp_path / "changed.dcm"))
    assert code == 1
    assert "! (0010,0010) PatientName: 'CompressedSamples^CT1' != 'OTHER^NAME'" in out
    code, out, _ = run(
        capsys, "diff", "--json", "--truncate", "5", str(corpus_dir / CT1),
        str(tmp_path / "changed.dcm"),
    )  # fmt: skip
    assert [d["tag"] for d in json.loads(out)] == [0x00100010]
    code, _, err = run(capsys, "diff", str(corpus_dir / CT1), str(tmp_path / "nope.dcm"))
    assert code == 2 and err.startswith("node-ctl diff: error:")


def test_raw_writes_and_names_files(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "raw", str(corpus_dir / CT1), "-o", str(tmp_path / "all.j2k"))
    assert code == 0 and out.strip() == str(tmp_path / "all.j2k")
    assert (tmp_path / "all.j2k").read_bytes()[:4] == b"\xff\x4f\xff\x51"
    code, out, _ = run(
        capsys, "raw", "-i", str(corpus_dir / CT1), "-o", str(tmp_path / "f"), "--split-frags",
        "--pattern", "%02d.j2k",
    )  # fmt: skip
    assert code == 0 and len(out.split()) == 3
    assert (tmp_path / "f00.j2k").stat().st_size == 65536
    code, _, err = run(capsys, "raw", str(corpus_dir / CT), "-o", str(tmp_path / "x"), "-S")
    assert code == 1 and "not encapsulated" in err
    code, _, err = run(capsys, "raw", str(corpus_dir / CT), "-o", str(tmp_path / "x"), "-t", "zz")
    assert code == 1 and "unknown keyword" in err


def test_scan_summary_mapping_json_and_progress(
    corpus_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = str(corpus_dir / "dcm_qa_nih/In/20180918Si")
    code, out, err = run(capsys, "scan", "-d", root, "-r", "-t", "10,20", "-t", "Modality",
                         "--progress")  # fmt: skip
    assert code == 0
    assert "8 file(s), 8 DICOM" in out and "  [DEV] x8" in out and "Mapping:" not in out
    assert "8/8 files" in err
    code, out, _ = run(capsys, "scan", "-d", root, "-r", "-t", "0008,0060", "-p")
    assert out.count("Filename: ") == 8 and "(0008,0060) Modality -> [MR]" in out
    code, out, _ = run(capsys, "scan", "-d", root, "-r", "-t", "PatientID", "--json")
    rows = json.loads(out)
    assert len(rows) == 8 and all(r["values"]["00100020"] == "DEV" for r in rows)
    code, _, err = run(capsys, "scan", "-d", root, "-t", "Nope")
    assert code == 2 and "unknown keyword" in err


def test_undump_from_file_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = tmp_path / "q.txt"
    text.write_text("(0008,0052) CS [SERIES]\nPatientID [ABC]\n(0020,000e) UI\n")
    code, _, err = run(capsys, "undump", str(text), str(tmp_path / "q.dcm"))
    assert code == 0, err
    ds = pydicom.dcmread(tmp_path / "q.dcm")
    assert (ds.QueryRetrieveLevel, ds.PatientID, ds.SeriesInstanceUID) == ("SERIES", "ABC", "")
    text.write_text("(0010,0010) PN [A]\n(0008,1110) SQ\n")
    code, _, err = run(capsys, "undump", str(text), str(tmp_path / "bad.dcm"))
    assert code == 1 and err.startswith("node-ctl undump: error: line 2")
