"""End to end with real peers: DCMTK storescu -> node -> study-stable -> anonymize-and-forward
route -> DCMTK storescp; no PHI leaves, UIDs stay consistent, a second run sends nothing."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.uid import generate_uid

from config import load
from node.jobs.routes import RouteService
from storage.db import create_index_engine
from tests.conftest import REPO_ROOT
from tests.daemon.test_serve import wait_for_port
from tests.services.helpers import make_ct

NODE_CTL = [sys.executable, "-m", "node.cli.main"]
PHI = {"PatientName": "DOE^JOHN", "PatientID": "PID-E2E-1", "PatientBirthDate": "19700101"}


def write_config(tmp_path: Path, port: int, archive_port: int) -> Path:
    cfg = tmp_path / "node.cfg"
    cfg.write_text(
        f"""NetworkTCPPort = {port}
DataDir = var
BindAddress = 127.0.0.1
JobWorkers = 1
StudyStableSeconds = 1

HostTable BEGIN
archive = (ARCH, 127.0.0.1, {archive_port})
HostTable END

AETable BEGIN
NODE   store/NODE   RW  (100, 100mb)  ANY
AETable END

RouteTable BEGIN
research.Source      = NODE
research.Destination = ARCH
research.Trigger     = stable
research.Filter      = Modality=CT
research.Anonymize   = basic
research.Secret      = "night after night"
RouteTable END
"""
    )
    return cfg


def make_files(folder: Path, study: str, n: int, start: int = 1) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    series = generate_uid()
    paths = []
    for i in range(start, start + n):
        ds = make_ct(
            study_uid=study,
            series_uid=series,
            patient_id=PHI["PatientID"],
            patient_name=PHI["PatientName"],
        )
        ds.InstanceNumber = i
        path = folder / f"ct{i}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.interop
def test_storescu_stable_anonymize_and_forward_to_storescp(
    free_port: Callable[[], int], require_binary: Callable[[str], str]
) -> None:
    # A short folder: the runner's forkserver puts its AF_UNIX socket (at most 107 bytes)
    # in the store's temp folder, which pytest's tmp_path makes too long.
    with tempfile.TemporaryDirectory(prefix="e2e", dir="/tmp") as short:
        _end_to_end(Path(short), free_port, require_binary)


def _end_to_end(
    tmp_path: Path, free_port: Callable[[], int], require_binary: Callable[[str], str]
) -> None:
    storescu, storescp = require_binary("storescu"), require_binary("storescp")
    port, archive_port = free_port(), free_port()
    out = tmp_path / "archive"
    out.mkdir()
    peer_env = {**os.environ, "TCP_NODELAY": "1"}
    archive = subprocess.Popen(
        [storescp, "-aet", "ARCH", "-od", str(out), str(archive_port)],
        env=peer_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    cfg = write_config(tmp_path, port, archive_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    node = subprocess.Popen(
        [*NODE_CTL, "serve", "--config", str(cfg)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "node.log", "w"),  # noqa: SIM115 - closed with the process
    )
    settings = load(cfg, environ={})
    engine = create_index_engine(settings.resolved_database_url())
    try:
        wait_for_port(port, node)
        study = generate_uid()
        files = make_files(tmp_path / "in", study, 3)
        originals = {str(dcmread(f).SOPInstanceUID) for f in files} | {study}
        subprocess.run(
            [storescu, "-aec", "NODE", "127.0.0.1", str(port), *map(str, files)],
            check=True,
            capture_output=True,
            env=peer_env,
            timeout=60,
        )

        def received() -> list[Path]:
            return sorted(p for p in out.iterdir() if p.is_file())

        log = tmp_path / "node.log"
        wait_for(lambda: len(received()) == 3, 60, f"3 files at storescp\n{log.read_text()}")

        # No original PHI and no original UID in what left the building.
        datasets = [dcmread(p) for p in received()]
        for path, ds in zip(received(), datasets, strict=True):
            raw = path.read_bytes()
            for value in (*PHI.values(), *originals, "DOE"):
                assert value.encode() not in raw, (value, path)
            assert str(ds.PatientName) != PHI["PatientName"]
            assert ds.PatientID != PHI["PatientID"]
            assert ds.get("PatientBirthDate", "") != PHI["PatientBirthDate"]
        new_study = {str(ds.StudyInstanceUID) for ds in datasets}
        assert len(new_study) == 1 and study not in new_study
        assert len({str(ds.SOPInstanceUID) for ds in datasets}) == 3
        first_names = {p.name for p in received()}

        # The run and the study sent are recorded.
        service = RouteService(settings, engine)
        wait_for(lambda: service.history("research")[0]["state"] == "succeeded", 30, "run settled")
        (run,) = service.history("research")
        assert (run["reason"], run["selected"], run["sent"], run["failed"]) == (
            "stable",
            1,
            1,
            0,
        )
        (sent,) = run["studies"]
        assert sent["study_instance_uid"] == study and sent["state"] == "sent"
        assert sent["new_study_instance_uid"] == next(iter(new_study))
        assert sent["instances_sent"] == 3

        # Running the route again sends nothing new.
        again = service.run("research")
        assert again["selected"] == 0 and again["jobs"] == []

        # A change (one more instance) goes again, under the same new UIDs.
        more = make_files(tmp_path / "more", study, 1, start=4)
        subprocess.run(
            [storescu, "-aec", "NODE", "127.0.0.1", str(port), *map(str, more)],
            check=True,
            capture_output=True,
            env=peer_env,
            timeout=60,
        )
        wait_for(lambda: len(received()) == 4, 60, f"4 files at storescp\n{log.read_text()}")
        wait_for(lambda: service.history("research")[0]["state"] == "succeeded", 30, "2nd settled")
        assert first_names <= {p.name for p in received()}  # same new SOP UIDs: replaced
        assert {str(dcmread(p).StudyInstanceUID) for p in received()} == new_study
        runs = service.history("research")
        assert [(r["reason"], r["selected"]) for r in runs] == [
            ("stable", 1),
            ("manual", 0),
            ("stable", 1),
        ]
        assert runs[0]["studies"][0]["instances_sent"] == 4
    finally:
        node.terminate()
        try:
            node.wait(timeout=30)
        finally:
            archive.terminate()
            archive.wait(timeout=10)
            engine.dispose()
