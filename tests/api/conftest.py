"""A real daemon (``node-ctl serve``) with its admin API on free ports, loaded with instances.

``admin_node`` starts ``node-ctl serve -c node.cfg`` in a process of its own (as a user runs
it), with ``AdminAPIPort`` set and no ``AdminToken`` (so the node generates
``var/admin.token``), a RouteTable with one manual route to a peer that is down, and stores
:data:`SMALL` into it with DCMTK ``storescu``.  Anyone may reuse it: import the fixture.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian

from tests.conftest import REPO_ROOT

NODE_CTL = [sys.executable, "-m", "node.cli.main"]
ROOT = "1.2.826.0.1.3680043.10.1338"
CT = "1.2.840.10008.5.1.4.1.1.2"
SC_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.7.3"
BASIC_TEXT_SR = "1.2.840.10008.5.1.4.1.1.88.11"


def _row(
    patient: int, name: str, date: str, series: int, modality: str, sop: int, kind: str
) -> tuple[str, ...]:
    study = f"{ROOT}.{patient}"
    return (
        f"API{patient}",
        name,
        study,
        date,
        f"ACC{patient}",
        f"{study}.{series}",
        modality,
        f"{study}.{series}.{sop}",
        kind,
    )


#: (patient id, name, study uid, date, accession, series uid, modality, sop uid, kind):
#: 3 patients, 3 studies, 5 series, 6 instances; study 3 is there to be deleted.
SMALL = (
    _row(1, "API^ONE", "20240105", 1, "CT", 1, "ct"),
    _row(1, "API^ONE", "20240105", 1, "CT", 2, "ct"),
    _row(1, "API^ONE", "20240105", 2, "OT", 1, "mf"),
    _row(2, "API^TWO", "20230310", 1, "CT", 1, "ct"),
    _row(2, "API^TWO", "20230310", 2, "SR", 1, "sr"),
    _row(3, "API^GONE", "20220101", 1, "CT", 1, "ct"),
)
STUDY1, STUDY2, STUDY3 = f"{ROOT}.1", f"{ROOT}.2", f"{ROOT}.3"
CT1, MULTIFRAME, SR = f"{ROOT}.1.1.1", f"{ROOT}.1.2.1", f"{ROOT}.2.2.1"


def write_instance(folder: Path, row: tuple[str, ...]) -> Path:
    """One small instance: a 16x16 CT, a 3-frame secondary capture, or a text SR."""
    patient_id, name, study, date, accession, series, modality, sop, kind = row
    ds = Dataset()
    ds.SOPClassUID = {"ct": CT, "mf": SC_MULTIFRAME, "sr": BASIC_TEXT_SR}[kind]
    ds.SOPInstanceUID = sop
    ds.PatientID, ds.PatientName = patient_id, name
    ds.PatientBirthDate, ds.PatientSex = "19700101", "O"
    ds.StudyInstanceUID, ds.StudyDate, ds.StudyTime = study, date, "101500"
    ds.AccessionNumber, ds.StudyID, ds.StudyDescription = accession, "1", f"study of {name}"
    ds.ReferringPhysicianName = ""
    ds.SeriesInstanceUID, ds.Modality, ds.SeriesNumber = series, modality, series[-1]
    ds.InstanceNumber = sop[-1]
    if kind in ("ct", "mf"):
        frames = 3 if kind == "mf" else 1
        pixels = (np.arange(16 * 16 * frames, dtype=np.uint16) * 7 % 4096).reshape(frames, 16, 16)
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows = ds.Columns = 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        if kind == "mf":
            ds.NumberOfFrames = frames
        else:
            ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
            ds.RescaleIntercept, ds.RescaleSlope = 0, 1
            ds.WindowCenter, ds.WindowWidth = 1024, 2048
        ds.PixelData = pixels.tobytes()
    else:
        ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
        ds.ValueType = "CONTAINER"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    path = folder / f"{sop.replace('.', '_')}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_config(folder: Path, dicom_port: int, api_port: int, dead_port: int) -> Path:
    cfg = folder / "node.cfg"
    cfg.write_text(
        f"""# admin API tests
NetworkTCPPort  = {dicom_port}
MaxAssociations = 8
DataDir = var
BindAddress = 127.0.0.1
AdminAPIPort = {api_port}
ShutdownGrace = 2

HostTable BEGIN
dead = (DEAD, 127.0.0.1, {dead_port})
HostTable END

AETable BEGIN
NODE   store/NODE   RW  (100, 100mb)  ANY
OTHER  store/OTHER  RW  (100, 100mb)  ANY
AETable END

RouteTable BEGIN
research.Source      = NODE
research.Destination = DEAD
research.Filter      = PatientID=API1
research.Anonymize   = basic
research.Secret      = not-a-real-secret-only-for-tests
RouteTable END
""",
        encoding="utf-8",
    )
    return cfg


@dataclass
class AdminNode:
    """A running daemon: its folder, config, ports, token, and an authenticated client."""

    folder: Path
    config: Path
    dicom_port: int
    api_port: int
    token: str
    process: subprocess.Popen[str] = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers={"Authorization": f"Bearer {token or self.token}"},
            timeout=30,
        )

    def wait_job(self, pk: int, timeout: float = 30) -> dict[str, object]:
        """The job once it is final (fails the test after ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self.client() as client:
            while True:
                job: dict[str, object] = client.get(f"/jobs/{pk}").json()
                if job["state"] in ("succeeded", "failed", "cancelled"):
                    return job
                assert time.monotonic() < deadline, f"job {pk} still {job['state']}"
                time.sleep(0.1)


def _wait_for_token(folder: Path, process: subprocess.Popen[str], timeout: float = 30) -> str:
    path = folder / "var" / "admin.token"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"node exited early: {process.communicate()[1]}")
        if path.is_file() and path.read_text().strip():
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError("the node wrote no admin.token")


def _wait_for_api(url: str, token: str, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"node exited early: {process.communicate()[1]}")
        try:
            if httpx.get(f"{url}/status", headers={"Authorization": f"Bearer {token}"}).is_success:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError("the admin API did not answer")


def start_admin_node(
    folder: Path, storescu: str, environ: dict[str, str] | None = None
) -> AdminNode:
    """Start the daemon in ``folder`` (``environ``: extra ``NODE_*`` variables) and load it."""
    dicom_port, api_port, dead_port = _free_port(), _free_port(), _free_port()
    config = write_config(folder, dicom_port, api_port, dead_port)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    process = subprocess.Popen(
        [*NODE_CTL, "serve", "--config", str(config)],
        cwd=folder,
        env={**env, **(environ or {}), "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        token = _wait_for_token(folder, process)
        node = AdminNode(folder, config, dicom_port, api_port, token, process)
        _wait_for_api(node.url, token, process)
        data = folder / "data"
        data.mkdir()
        files = [write_instance(data, row) for row in SMALL]
        stored = subprocess.run(
            [storescu, "-aec", "NODE", "127.0.0.1", str(dicom_port), *map(str, files)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert stored.returncode == 0, stored.stderr
    except BaseException:
        stop_admin_node(process)
        raise
    return node


def stop_admin_node(process: subprocess.Popen[str]) -> str:
    """SIGTERM, then the stderr of the process (asserts it stopped cleanly)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        _, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        _, stderr = process.communicate()
        raise AssertionError(f"the node did not stop on SIGTERM: {stderr}") from None
    assert process.returncode == 0, stderr
    return stderr


@pytest.fixture(scope="session")
def admin_node(
    tmp_path_factory: pytest.TempPathFactory, require_binary: Callable[[str], str]
) -> Iterator[AdminNode]:
    """A running daemon with the admin API, loaded with :data:`SMALL`."""
    node = start_admin_node(tmp_path_factory.mktemp("admin-node"), require_binary("storescu"))
    yield node
    stop_admin_node(node.process)


__all__ = ["AdminNode", "admin_node", "start_admin_node", "stop_admin_node"]
