"""The admin API of a daemon whose index is PostgreSQL: listing, jobs, export, deletion."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.api.conftest import STUDY1, STUDY2, STUDY3, start_admin_node, stop_admin_node

pytestmark = pytest.mark.postgres


def test_admin_api_on_postgresql(
    tmp_path: Path, postgres_url: str, require_binary: Callable[[str], str]
) -> None:
    node = start_admin_node(
        tmp_path, require_binary("storescu"), {"NODE_DATABASE_URL": postgres_url}
    )
    try:
        with node.client() as client:
            status = client.get("/status").json()
            assert status["index"] == {"patients": 3, "studies": 3, "series": 5, "instances": 6}
            found = client.get("/studies", params={"PatientName": "api^t*"}).json()["items"]
            assert [s["StudyInstanceUID"] for s in found] == [STUDY2]
            ranged = client.get("/studies", params={"StudyDate": "20230101-", "limit": 1}).json()
            assert [s["StudyInstanceUID"] for s in ranged["items"]] == [STUDY1]
            assert ranged["more"] is True
            export = client.get(f"/studies/{STUDY1}/export")
            assert export.status_code == 200
            assert "DICOMDIR" in zipfile.ZipFile(io.BytesIO(export.content)).namelist()
            job = client.delete(f"/studies/{STUDY3}").json()
            assert node.wait_job(job["pk"])["state"] == "succeeded"
            assert client.get(f"/studies/{STUDY3}").status_code == 404
            assert (
                client.get("/jobs", params={"kind": "delete"}).json()["items"][0]["pk"] == job["pk"]
            )
    finally:
        stop_admin_node(node.process)
