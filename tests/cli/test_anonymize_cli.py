"""``node-ctl anonymize``: modes, directories, summary, exit codes and one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset

from node.cli.main import main
from tests.tools.conftest import AnonKeys, make_anon_keys

FILES = [
    "cornerstone-wado/testImages/CTImage.dcm",
    "cornerstone-wado/testImages/CT1_J2KR",
    "pydicom-wheel/pydicom/data/test_files/MR_small.dcm",
]
BURNED_IN = "deid-data-wheel/deid_data/data/ultrasounds/GREYSCALE_IMAGE.dcm"


@pytest.fixture
def tree(corpus_dir: Path, tmp_path: Path) -> Path:
    """in/a.dcm, in/b.dcm, in/sub/c.dcm"""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    for name, source in zip(("a.dcm", "b.dcm", "sub/c.dcm"), FILES, strict=True):
        shutil.copyfile(corpus_dir / source, root / name)
    return root


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> AnonKeys:
    return make_anon_keys(tmp_path_factory.mktemp("cli-keys"))


def run(*args: str | Path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return main(["anonymize", *map(str, args)])


def read(path: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dcmread(path)


def test_directory_round_trip(
    tree: Path, tmp_path: Path, keys: AnonKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    out, back = tmp_path / "out", tmp_path / "back"
    assert run("-r", "-c", keys.cert_path, "--secret-file", secret, tree, out) == 0
    assert capsys.readouterr().out.strip() == "anonymize: 3 done, 0 skipped, 0 failed"
    deid = read(out / "sub" / "c.dcm")
    original = read(tree / "sub" / "c.dcm")
    assert deid.PatientIdentityRemoved == "YES" and deid.PatientName != original.PatientName
    assert "EncryptedAttributesSequence" in deid
    assert run("-r", "-d", "-k", keys.key_path, out, back) == 0
    for name in ("a.dcm", "b.dcm", "sub/c.dcm"):
        restored, source = read(back / name), read(tree / name)
        for keyword in (
            "PatientName",
            "PatientID",
            "StudyInstanceUID",
            "SOPInstanceUID",
            "StudyDate",
        ):
            assert restored.get(keyword) == source.get(keyword), (name, keyword)
        assert "PatientIdentityRemoved" not in restored


def test_without_recursion_only_the_top_level(tree: Path, tmp_path: Path) -> None:
    assert run(tree, tmp_path / "out") == 0
    assert sorted(p.name for p in (tmp_path / "out").rglob("*.dcm")) == ["a.dcm", "b.dcm"]


def test_non_dicom_stops_unless_continue(
    tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tree / "0readme.txt").write_text("not DICOM")
    assert run(tree, tmp_path / "stop") == 1
    captured = capsys.readouterr()
    assert "0 done, 0 skipped, 1 failed" in captured.out
    assert "use --continue" in captured.err
    assert run("--continue", tree, tmp_path / "go") == 0
    assert "2 done, 1 skipped, 0 failed" in capsys.readouterr().out


def test_secret_gives_identical_output(tree: Path, tmp_path: Path) -> None:
    for name in ("one", "two"):
        assert run("--secret", "k", tree / "a.dcm", tmp_path / f"{name}.dcm") == 0
    assert (tmp_path / "one.dcm").read_bytes() == (tmp_path / "two.dcm").read_bytes()


def test_uid_map_keeps_runs_consistent(tree: Path, tmp_path: Path) -> None:
    uid_map = tmp_path / "uids.json"
    assert (
        run(
            "--uid-map",
            uid_map,
            "--root-uid",
            "1.2.826.0.1.3680043.10.1",
            tree / "a.dcm",
            tmp_path / "first.dcm",
        )
        == 0
    )
    assert run("--uid-map", uid_map, tree / "a.dcm", tmp_path / "second.dcm") == 0
    first, second = read(tmp_path / "first.dcm"), read(tmp_path / "second.dcm")
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.StudyInstanceUID.startswith("1.2.826.0.1.3680043.10.1.")
    pairs = json.loads(uid_map.read_text())
    assert pairs[read(tree / "a.dcm").StudyInstanceUID] == first.StudyInstanceUID


def test_options_reach_the_profile(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.dcm"
    assert run("--retain-full-dates", "--retain-uids", "--no-pseudonyms", tree / "a.dcm", out) == 0
    deid, original = read(out), read(tree / "a.dcm")
    assert deid.StudyDate == original.StudyDate
    assert deid.StudyInstanceUID == original.StudyInstanceUID
    assert deid.PatientName == ""
    codes = {item.CodeValue for item in deid.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113106", "113110"}


def test_dumb_mode(tree: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "dumb.dcm"
    args = [
        "--dumb",
        "--replace",
        "0010,0010=Roe^Jane",
        "--remove",
        "0008,0090",
        "--empty",
        "0010,0020",
    ]
    assert run(*args, tree / "a.dcm", out) == 0
    edited = read(out)
    assert edited.PatientName == "Roe^Jane" and edited.PatientID == ""
    assert "ReferringPhysicianName" not in edited and "PatientIdentityRemoved" not in edited
    assert run("--dumb", "--remove", "0008,0016", tree / "a.dcm", out) == 1
    assert "SOPClassUID is Type 1 in the ct-image IOD" in capsys.readouterr().err
    assert run("--dumb", "--force", "--remove", "0008,0060", tree / "a.dcm", out) == 0


def test_burned_in_and_fill_region(
    corpus_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = corpus_dir / BURNED_IN
    out = tmp_path / "us.dcm"
    assert run(source, out) == 1
    assert "Burned In Annotation is YES" in capsys.readouterr().err
    assert run("--allow-burned-in", "--fill-region", "0,99,0,19", source, out) == 0
    cleaned = read(out)
    assert (cleaned.pixel_array[0:20, 0:100] == 0).all()
    codes = {item.CodeValue for item in cleaned.DeidentificationMethodCodeSequence}
    assert "113101" in codes  # Clean Pixel Data Option


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clean-graphics"], "Clean Graphics Option is not offered"),
        (["--retain-full-dates", "--retain-modified-dates"], "choose one of"),
        (["-d"], "needs -k/--key"),
        (["--remove", "0010,0010"], "need --dumb"),
        (["--fill-region", "1,2,3"], "expected x0,x1,y0,y1"),
        (["--root-uid", "1.02"], "not a valid UID"),
    ],
)
def test_usage_errors_are_one_line(
    tree: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    assert run(*args, tree / "a.dcm", tmp_path / "x.dcm") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_errors_from_a_real_process(tree: Path, tmp_path: Path, keys: AnonKeys) -> None:
    """No traceback, one line, non-zero: the unsupported ciphers and a missing input."""
    command = [sys.executable, "-m", "node.cli.main", "anonymize"]
    result = subprocess.run(
        [*command, "--des3", "-c", str(keys.cert_path), str(tree / "a.dcm"), str(tmp_path / "x")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "3DES" in result.stderr
    result = subprocess.run(
        [*command, str(tmp_path / "missing"), str(tmp_path / "x")], capture_output=True, text=True
    )
    assert result.returncode == 2 and "no such file" in result.stderr
    assert "Traceback" not in result.stderr


def test_wrong_key_fails_per_file(
    tree: Path, tmp_path: Path, keys: AnonKeys, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_anon_keys(tmp_path / "other")
    assert run("-c", keys.cert_path, tree / "a.dcm", tmp_path / "deid.dcm") == 0
    assert run("-d", "-k", other.key_path, tmp_path / "deid.dcm", tmp_path / "back.dcm") == 1
    assert "matches this private key" in capsys.readouterr().err
