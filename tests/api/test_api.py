"""The admin API of a running daemon, over HTTP: auth, every endpoint, OpenAPI, errors.

The daemon (``admin_node``) is shared by the module; the tests that delete come last and
touch only study 3, which nothing else counts on.
"""

from __future__ import annotations

import io
import re
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from openapi_spec_validator import validate
from PIL import Image
from pydicom import dcmread

from config.model import Settings
from node.api import STATUS_FOR, ApiContext, all_routes, create_app
from node.api._errors import status_for
from node.jobs.routes import UnknownRoute
from tests.api.conftest import (
    CT1,
    MULTIFRAME,
    SR,
    STUDY1,
    STUDY2,
    STUDY3,
    AdminNode,
)


def _bare_app() -> FastAPI:
    """The app around nothing: enough to list its routes."""
    return create_app(ApiContext(Settings(), cast(Any, None), {}, cast(Any, None), "unused"))


def _app_routes() -> list[tuple[str, str]]:
    """(method, path) of every route of the app, path parameters filled in."""
    out = []
    for route in all_routes(_bare_app()):
        path = re.sub(r"\{pk\}", "1", route.path)
        path = re.sub(r"\{[^}]+\}", "1.2.3", path)
        for method in sorted(route.methods or ()):
            if method != "HEAD":
                out.append((method, path))
    return out


APP_ROUTES = _app_routes()


def test_the_app_has_every_endpoint() -> None:
    paths = {path for _, path in APP_ROUTES}
    assert len(APP_ROUTES) >= 20
    for expected in (
        "/status",
        "/patients",
        "/studies",
        "/series",
        "/instances",
        "/jobs",
        "/routes",
        "/openapi.json",
        "/instances/1.2.3/rendered",
        "/studies/1.2.3/export",
        "/routes/1.2.3/history",
    ):
        assert expected in paths


@pytest.mark.parametrize("method,path", APP_ROUTES)
def test_every_route_refuses_a_missing_or_wrong_token(
    admin_node: AdminNode, method: str, path: str
) -> None:
    with httpx.Client(base_url=admin_node.url) as client:
        missing = client.request(method, path)
        wrong = client.request(method, path, headers={"Authorization": "Bearer nope"})
        basic = client.request(method, path, headers={"Authorization": f"Basic {admin_node.token}"})
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Bearer <token>" in missing.json()["detail"]
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert wrong.json() == {"detail": "invalid token"}
    assert basic.status_code == 401


def test_unknown_paths_need_the_token_too(admin_node: AdminNode) -> None:
    assert httpx.get(f"{admin_node.url}/nothing/here").status_code == 401
    with admin_node.client() as client:
        assert client.get("/nothing/here").status_code == 404
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404


def test_the_token_file_is_private(admin_node: AdminNode) -> None:
    path = admin_node.folder / "var" / "admin.token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert len(admin_node.token) >= 40


def test_openapi_document_is_valid_and_complete(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    validate(spec)
    assert spec["components"]["securitySchemes"]["bearer"] == {"type": "http", "scheme": "bearer"}
    assert spec["security"] == [{"bearer": []}]
    documented = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    for route in all_routes(_bare_app()):
        if route.include_in_schema:
            for method in route.methods:
                assert (method, route.path) in documented


def test_status(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        status = client.get("/status").json()
    assert status["dicom_port"] == admin_node.dicom_port
    assert [ae["title"] for ae in status["ae_titles"]] == ["NODE", "OTHER"]
    node = status["ae_titles"][0]
    assert (node["patients"], node["studies"], node["series"], node["instances"]) == (3, 3, 5, 6)
    assert status["index"]["instances"] == 6
    assert set(status["jobs"]) == {"queued", "running", "succeeded", "failed", "cancelled"}
    assert status["events"].get("instance-stored") == 6
    assert status["associations"] == 0
    assert status["uptime_seconds"] > 0


def test_list_studies_with_filters(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        every = client.get("/studies").json()
        assert every["ae"] == "NODE" and every["more"] is False
        assert [s["StudyInstanceUID"] for s in every["items"]] == [STUDY1, STUDY2, STUDY3]
        one = every["items"][0]
        assert one["PatientName"] == "API^ONE" and one["StudyDate"] == "20240105"
        assert one["ModalitiesInStudy"] == ["CT", "OT"]
        assert (one["NumberOfStudyRelatedSeries"], one["NumberOfStudyRelatedInstances"]) == (2, 3)

        def uids(**params: str) -> list[str]:
            page = client.get("/studies", params=params)
            assert page.status_code == 200, page.text
            return [s["StudyInstanceUID"] for s in page.json()["items"]]

        assert uids(PatientName="api^t*") == [STUDY2]
        assert uids(PatientID="API1") == [STUDY1]
        assert uids(StudyDate="20230101-20231231") == [STUDY2]
        assert uids(StudyDate="20230101-") == [STUDY1, STUDY2]
        assert uids(Modality="SR") == [STUDY2]
        assert uids(AccessionNumber="ACC3") == [STUDY3]
        assert uids(StudyInstanceUID=f"{STUDY1}\\{STUDY3}") == [STUDY1, STUDY3]
        assert uids(ae="OTHER") == []
        first = client.get("/studies", params={"limit": 2}).json()
        assert len(first["items"]) == 2 and first["more"] is True
        rest = client.get("/studies", params={"limit": 2, "offset": 2}).json()
        assert [s["StudyInstanceUID"] for s in rest["items"]] == [STUDY3]
        assert rest["more"] is False


def test_list_patients_series_instances(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        patients = client.get("/patients", params={"PatientName": "API^*"}).json()["items"]
        assert [p["PatientID"] for p in patients] == ["API1", "API2", "API3"]
        assert patients[0]["NumberOfPatientRelatedInstances"] == 3
        series = client.get("/series", params={"StudyInstanceUID": STUDY1}).json()["items"]
        assert [(s["Modality"], s["NumberOfSeriesRelatedInstances"]) for s in series] == [
            ("CT", 2),
            ("OT", 1),
        ]
        assert len(client.get("/series", params={"Modality": "CT"}).json()["items"]) == 3
        instances = client.get("/instances", params={"StudyInstanceUID": STUDY2}).json()
        assert sorted(i["SOPInstanceUID"] for i in instances["items"]) == sorted(
            [f"{STUDY2}.1.1", SR]
        )
        item = client.get(f"/instances/{CT1}").json()
        assert item["StudyInstanceUID"] == STUDY1 and item["size"] > 512
        assert item["calling_ae_title"] == "STORESCU"
        assert client.get(f"/series/{STUDY1}.2").json()["Modality"] == "OT"
        assert client.get(f"/studies/{STUDY2}").json()["PatientID"] == "API2"


@pytest.mark.parametrize(
    "path",
    [
        "/studies/1.2.3.4",
        "/series/1.2.3.4",
        "/instances/1.2.3.4",
        "/instances/1.2.3.4/rendered",
        "/studies/1.2.3.4/export",
        "/studies/not%20a%20uid",
        "/jobs/999999",
        "/routes/nope/history",
    ],
)
def test_unknown_things_are_404(admin_node: AdminNode, path: str) -> None:
    with admin_node.client() as client:
        response = client.get(path)
    assert response.status_code == 404
    assert response.json()["detail"]


def test_bad_parameters_are_400_or_422(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        unknown_ae = client.get("/studies", params={"ae": "NOBODY"})
        assert unknown_ae.status_code == 400
        assert "NOBODY" in unknown_ae.json()["detail"]
        assert client.get("/studies", params={"limit": 0}).status_code == 422
        bad_range = client.get("/studies", params={"StudyDate": "2024-xx"})
        assert bad_range.status_code == 400 and "bad date range" in bad_range.json()["detail"]
        assert client.get("/jobs/abc").status_code == 422
        assert client.get("/jobs", params={"state": "sleeping"}).status_code == 400
        bad_frame = client.get(f"/instances/{MULTIFRAME}/rendered", params={"frame": 4})
        assert bad_frame.status_code == 400 and "frame 4" in bad_frame.json()["detail"]
        no_pixels = client.get(f"/instances/{SR}/rendered")
        assert no_pixels.status_code == 409 and "Pixel Data" in no_pixels.json()["detail"]
        profile = client.get(f"/studies/{STUDY1}/export", params={"profile": "NOPE"})
        assert profile.status_code == 400


def test_rendered_png(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        ct = client.get(f"/instances/{CT1}/rendered")
        third = client.get(f"/instances/{MULTIFRAME}/rendered", params={"frame": 3, "size": 8})
    assert ct.status_code == 200 and ct.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(ct.content))
    assert image.format == "PNG" and image.size == (16, 16) and image.mode == "L"
    small = Image.open(io.BytesIO(third.content))
    assert small.size == (8, 8)


def test_export_zip_with_dicomdir(
    admin_node: AdminNode, tmp_path: Path, require_binary: Any
) -> None:
    with admin_node.client() as client:
        response = client.get(f"/studies/{STUDY1}/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f'filename="{STUDY1}.zip"' in response.headers["content-disposition"]
    assert response.headers["x-instances"] == "3"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = zf.namelist()
        zf.extractall(tmp_path)
    assert "DICOMDIR" in names and len(names) == 4
    dicomdir = dcmread(tmp_path / "DICOMDIR")
    records = [r.DirectoryRecordType for r in dicomdir.DirectoryRecordSequence]
    assert records.count("IMAGE") == 3 and records.count("STUDY") == 1
    dump = subprocess.run(
        [require_binary("dcmdump"), str(tmp_path / "DICOMDIR")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert dump.returncode == 0, dump.stderr
    assert STUDY1 in dump.stdout
    temp = admin_node.folder / "store" / "NODE" / ".tmp"
    deadline = time.monotonic() + 5
    while list(temp.glob("node-export-*")) and time.monotonic() < deadline:
        time.sleep(0.05)  # the folder goes once the answer has been sent
    assert list(temp.glob("node-export-*")) == []


def test_jobs_submit_list_show_cancel_retry(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        bad = client.post("/jobs", json={"kind": "bogus", "params": {}})
        assert bad.status_code == 400 and "unknown job kind" in bad.json()["detail"]
        invalid = client.post("/jobs", json={"kind": "render", "params": {"size": 1}})
        assert invalid.status_code == 400
        kinds = {k["name"] for k in client.get("/jobs/kinds").json()}
        assert {"forward", "anonymize", "convert", "render", "export", "delete"} <= kinds

        render = client.post("/jobs", json={"kind": "render", "params": {"studies": [STUDY1]}})
        assert render.status_code == 201, render.text
        job = render.json()
        assert render.headers["location"] == f"/jobs/{job['pk']}"
        assert job["origin"] == "api" and job["params"]["ae"] == "NODE"
        done = admin_node.wait_job(job["pk"])
        assert done["state"] == "succeeded", done
        shown = client.get(f"/jobs/{job['pk']}").json()
        assert shown["state"] == "succeeded" and shown["progress_done"] == 3

        # to a peer that is down: it fails, waits for its next attempt, and is cancelled
        forward = client.post(
            "/jobs",
            json={"kind": "forward", "params": {"studies": [STUDY2], "destination": "DEAD"}},
        ).json()
        cancelled = client.post(f"/jobs/{forward['pk']}/cancel")
        assert cancelled.status_code == 200
        body = cancelled.json()
        assert body["state"] == "cancelled" or body["cancel_requested"] is True
        assert admin_node.wait_job(forward["pk"])["state"] == "cancelled"
        again = client.post(f"/jobs/{forward['pk']}/cancel")
        assert again.status_code == 409 and "already finished" in again.json()["detail"]
        assert client.post(f"/jobs/{job['pk']}/retry").status_code == 409
        retried = client.post(f"/jobs/{forward['pk']}/retry").json()
        assert retried["state"] == "queued" and retried["attempts"] == 0
        client.post(f"/jobs/{forward['pk']}/cancel")
        assert client.post("/jobs/424242/cancel").status_code == 404

        listed = client.get("/jobs", params={"kind": "render"}).json()
        assert job["pk"] in [j["pk"] for j in listed["items"]]
        assert all(j["kind"] == "render" for j in listed["items"])
        only_done = client.get("/jobs", params={"state": ["succeeded"]}).json()["items"]
        assert {j["state"] for j in only_done} == {"succeeded"}
        assert client.get("/jobs", params={"origin": "api", "limit": 1}).json()["more"] is True


def test_routes_list_dry_run_run_history(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        routes = client.get("/routes").json()["routes"]
        assert [r["name"] for r in routes] == ["research"]
        assert routes[0]["destination"] == "DEAD"
        dry = client.post("/routes/research/run", params={"dry_run": "true"})
        assert dry.status_code == 200, dry.text
        result = dry.json()
        assert [s["study_instance_uid"] for s in result["studies"] if s["would_send"]] == [STUDY1]
        sample = result["sample"]
        assert sample["before"]["PatientName"] == "API^ONE"
        assert sample["after"].get("PatientName") != "API^ONE"
        assert client.get("/routes/research/history").json() == {"route": "research", "runs": []}
        run = client.post("/routes/research/run")
        assert run.status_code == 202, run.text
        jobs = run.json()["jobs"]
        assert len(jobs) == 1
        history = client.get("/routes/research/history", params={"limit": 5}).json()
        assert [r["run"] for r in history["runs"]] == [run.json()["run"]]
        assert history["runs"][0]["reason"] == "manual"
        client.post(f"/jobs/{jobs[0]}/cancel")
        assert client.post("/routes/nope/run").status_code == 404


# -- deletion last: it removes study 3 ------------------------------------------------------


def test_delete_study_is_a_job(admin_node: AdminNode) -> None:
    with admin_node.client() as client:
        assert client.delete("/studies/1.2.3.4").status_code == 404
        assert client.delete("/patients/NOBODY").status_code == 404
        response = client.delete(f"/studies/{STUDY3}")
        assert response.status_code == 202, response.text
        job = response.json()
        assert job["kind"] == "delete" and job["params"]["studies"] == [STUDY3]
        assert response.headers["location"] == f"/jobs/{job['pk']}"
        assert admin_node.wait_job(job["pk"])["state"] == "succeeded"
        assert client.get(f"/studies/{STUDY3}").status_code == 404
        assert client.delete(f"/studies/{STUDY3}").status_code == 404
        assert client.get("/status").json()["index"]["instances"] == 5


def test_every_error_subclass_has_its_own_status() -> None:
    """A subclass of a mapped error must be mapped itself (as httpx checks its map)."""

    def subclasses(cls: type) -> list[type]:
        return [s for sub in cls.__subclasses__() for s in (sub, *subclasses(sub))]

    unmapped = {
        f"{cls.__module__}.{cls.__name__}"
        for base in STATUS_FOR
        for cls in subclasses(base)
        if cls not in STATUS_FOR and not cls.__module__.startswith("tests")
    }
    assert unmapped == set()
    assert status_for(KeyError("x")) == 500
    assert status_for(UnknownRoute("x")) == 404
