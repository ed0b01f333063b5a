"""Kinds that stay on the node: render, convert, anonymize (into an AE or a folder),
export and delete, end to end through the runner on SQLite."""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread

from node.jobs import submit_job
from node.jobs.derived import DERIVED_DIR, derived_files
from storage.integrity import check
from tests.jobs.conftest import Env


def _submit(env: Env, kind: str, params: dict, origin: str = "test") -> int:
    return submit_job(env.queue, env.settings, kind, params, origin)


def test_render_thumbnails_are_png_kept_with_the_instance(env: Env) -> None:
    study, sops = env.add_study(3, rows=64)
    pk = _submit(env, "render", {"studies": [study], "size": 32})
    (view,) = env.run([pk])
    assert view.state == "succeeded", view.error
    assert view.result["done"] == 3 and view.progress_done == 3 == view.progress_total
    store = env.stores["NODE"]
    for sop in sops:
        (png,) = derived_files(store, study, sop)
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n"
        from PIL import Image

        with Image.open(png) as img:
            img.verify()
            assert max(img.size) <= 32
    # Neither db check nor recovery sees them as orphans.
    assert check(env.index, env.stores).ok
    assert store.recover(lambda p: env.index.has_path("NODE", p)) == (0, 0)
    assert (store.area / DERIVED_DIR / "thumbnail").is_dir()


def test_convert_in_place_keeps_the_index_consistent(env: Env) -> None:
    study, sops = env.add_study(3, rows=16)
    before = {i.sop_instance_uid: i.path for i in env.index.instances("NODE", study_uids=[study])}
    pk = _submit(env, "convert", {"studies": [study], "convert": {"family": "rle"}})
    (view,) = env.run([pk])
    assert view.state == "succeeded", view.error
    after = env.index.instances("NODE", study_uids=[study])
    assert {i.sop_instance_uid for i in after} == set(sops)
    store = env.stores["NODE"]
    for inst in after:
        assert inst.transfer_syntax_uid == "1.2.840.10008.1.2.5"
        assert inst.path != before[inst.sop_instance_uid]
        assert not store.absolute(before[inst.sop_instance_uid]).exists()
        ds = dcmread(store.absolute(inst.path))
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        assert ds.pixel_array.shape == (16, 16)
    assert check(env.index, env.stores).ok


def test_anonymize_into_another_ae_is_indexed_and_consistent(env: Env) -> None:
    study, sops = env.add_study(2, patient_name="SECRET^NAME", patient_id="PID-42")
    anon = {"secret": "route-secret"}
    first = _submit(env, "anonymize", {"studies": [study], "to_ae": "COPY", "anonymize": anon})
    (view,) = env.run([first])
    assert view.state == "succeeded", view.error
    (new_study,) = view.result["new_study_uids"]
    assert new_study != study
    copies = env.index.instances("COPY", study_uids=[new_study])
    assert len(copies) == 2 and not {c.sop_instance_uid for c in copies} & set(sops)
    for c in copies:
        ds = dcmread(env.stores["COPY"].absolute(c.path))
        assert "SECRET" not in str(ds.PatientName) and ds.PatientID != "PID-42"
    # The same secret gives the same UIDs in another job (to a folder this time).
    out = env.tmp_path / "anon-out"
    second = _submit(env, "anonymize", {"studies": [study], "output": str(out), "anonymize": anon})
    (view2,) = env.run([second])
    assert view2.state == "succeeded", view2.error
    assert view2.result["new_study_uids"] == [new_study]
    written = sorted(p.stem for p in out.rglob("*.dcm"))
    assert written == sorted(c.sop_instance_uid for c in copies)
    assert check(env.index, env.stores).ok


@pytest.mark.parametrize("zipped", [False, True])
def test_export_media_with_dicomdir(
    env: Env, zipped: bool, require_binary: Callable[[str], str]
) -> None:
    dcmdump = require_binary("dcmdump")
    study, _ = env.add_study(3)
    target = env.tmp_path / ("media.zip" if zipped else "media")
    key = "zip" if zipped else "output"
    pk = _submit(env, "export", {"studies": [study], key: str(target)})
    (view,) = env.run([pk])
    assert view.state == "succeeded", view.error
    assert view.result["referenced"] == 3
    folder = target
    if zipped:
        folder = env.tmp_path / "unzipped"
        with zipfile.ZipFile(target) as zf:
            assert "DICOMDIR" in zf.namelist()
            zf.extractall(folder)
    out = subprocess.run([dcmdump, str(folder / "DICOMDIR")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("IMAGE") >= 3
    assert not list(env.tmp_path.glob("*.partial-*"))
    shutil.rmtree(folder)


def test_delete_removes_rows_then_files_and_derived(env: Env) -> None:
    study, sops = env.add_study(3, rows=16)
    keep, _ = env.add_study(1)
    (r,) = env.run([_submit(env, "render", {"studies": [study]})])
    assert r.state == "succeeded"
    store = env.stores["NODE"]
    paths = [store.absolute(i.path) for i in env.index.instances("NODE", study_uids=[study])]
    pk = _submit(env, "delete", {"studies": [study]})
    (view,) = env.run([pk])
    assert view.state == "succeeded", view.error
    assert view.result["deleted"] == 3
    assert env.index.instances("NODE", study_uids=[study]) == []
    assert not any(p.exists() for p in paths)
    assert all(derived_files(store, study, s) == [] for s in sops)
    assert len(env.index.instances("NODE", study_uids=[keep])) == 1
    assert check(env.index, env.stores).ok


def test_per_instance_failures_fail_the_job_with_a_result(env: Env) -> None:
    study, sops = env.add_study(2)
    # Corrupt one stored file: its conversion fails, the other's succeeds; a file that
    # cannot be rendered is only skipped (an SR in a study is no reason to fail).
    inst = env.index.instances("NODE", sop_uids=[sops[0]])[0]
    Path(env.stores["NODE"].absolute(inst.path)).write_bytes(b"not dicom at all")
    (view,) = env.run([_submit(env, "convert", {"studies": [study], "convert": "rle"})])
    assert view.state == "failed" and view.attempts == 1
    assert view.result["done"] == 1 and view.result["failed"] == 1
    assert sops[0] in view.result["errors"]
    (render,) = env.run([_submit(env, "render", {"studies": [study]})])
    assert render.state == "succeeded"
    assert render.result["done"] == 1 and render.result["skipped"] == 1
