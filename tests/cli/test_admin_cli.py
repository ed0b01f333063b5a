"""``node-ctl status|studies|job|route`` against a running daemon's admin API.

The commands run in this process (``node.cli.main.main``) and talk HTTP to a real
``node-ctl serve`` (the ``admin_node`` fixture of ``tests/api``, a daemon of this module's
own): output and exit codes as a user sees them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from node.cli.commands.route import side_by_side
from node.cli.main import main
from tests.api.conftest import STUDY1, STUDY2, AdminNode, admin_node  # noqa: F401


def ctl(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_status_with_the_nodes_config(
    admin_node: AdminNode,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = ctl(capsys, "status", "-c", str(admin_node.config))
    assert code == 0, err
    assert out.startswith("dicom-node ")
    assert f"DICOM port {admin_node.dicom_port}, 0 association(s)" in out
    assert "NODE (RW): 3 patient(s), 3 study(ies), 5 series, 6 instance(s)" in out
    assert "events: instance-stored 6" in out
    code, out, _ = ctl(
        capsys, "status", "--api", admin_node.url, f"--token={admin_node.token}", "--json"
    )
    assert code == 0 and json.loads(out)["index"]["instances"] == 6


def test_status_errors_are_one_line(
    admin_node: AdminNode,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    free_port: object,
) -> None:
    code, _, err = ctl(capsys, "status", "--api", admin_node.url, "--token", "wrong")
    assert (code, err) == (1, "node-ctl status: invalid token (HTTP 401)\n")
    bare = tmp_path / "bare.cfg"
    bare.write_text("NetworkTCPPort = 11112\n")
    code, _, err = ctl(capsys, "status", "-c", str(bare))
    assert code == 2 and "sets no AdminAPIPort" in err and err.count("\n") == 1
    no_token = tmp_path / "no-token.cfg"
    no_token.write_text(f"AdminAPIPort = {admin_node.api_port}\nDataDir = empty\n")
    code, _, err = ctl(capsys, "status", "-c", str(no_token))
    assert code == 2 and "no token" in err and "admin.token" in err
    closed = free_port()  # type: ignore[operator]
    code, _, err = ctl(capsys, "status", "--api", f"http://127.0.0.1:{closed}", "--token", "x")
    assert code == 1 and err.startswith("node-ctl status: cannot reach the admin API at")


def test_studies(admin_node: AdminNode, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    cfg = str(admin_node.config)
    code, out, err = ctl(capsys, "studies", "-c", cfg)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["date", "patient", "id", "name"]
    assert len(lines) == 4 and "2024-01-05  API1" in lines[1] and STUDY1 in lines[1]
    assert err == "3 study(ies) in NODE\n"
    code, out, err = ctl(capsys, "studies", "-c", cfg, "--patient-name", "api^t*", "--json")
    assert code == 0 and [s["StudyInstanceUID"] for s in json.loads(out)["items"]] == [STUDY2]
    for key in ("0010,0010=api^t*", "PatientName=API^T*", "(0010,0010)=api^t*"):
        code, out, err = ctl(capsys, "studies", "-c", cfg, "-k", key, "--json")
        assert code == 0 and [s["StudyInstanceUID"] for s in json.loads(out)["items"]] == [STUDY2]
    code, _, err = ctl(capsys, "studies", "-c", cfg, "-k", "0008,0070=ACME")
    assert code == 2 and err.startswith("node-ctl studies: -k 0008,0070=ACME: not KEY=VALUE")
    code, out, err = ctl(capsys, "studies", "-c", cfg, "--date", "20230101-", "--limit", "1")
    assert code == 0 and "more: --offset 1" in err
    code, _, err = ctl(capsys, "studies", "-c", cfg, "--ae", "NOBODY")
    assert code == 1 and "NOBODY" in err and "(HTTP 400)" in err


def test_job_submit_wait_show_list(
    admin_node: AdminNode,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = str(admin_node.config)
    code, out, err = ctl(
        capsys, "job", "submit", "render", "--study", STUDY1, "--size", "8", "-c", cfg,
        "--wait", "--progress", "--interval", "0.1",
    )  # fmt: skip
    assert code == 0, err
    pk = int(re.match(r"job (\d+) queued \(render\)", out).group(1))  # type: ignore[union-attr]
    assert f"job {pk} succeeded" in out
    assert f"3/3 job {pk} (render)" in err  # the progress bar
    code, out, _ = ctl(capsys, "job", "show", str(pk), "-c", cfg)
    assert code == 0 and out.startswith(f"job {pk}: render, succeeded")
    assert '"size": 8' in out
    code, out, _ = ctl(capsys, "job", "list", "--kind", "render", "-c", cfg)
    assert code == 0 and re.search(rf"^{pk}\s+render\s+succeeded\s+3/3", out, re.M)
    code, _, err = ctl(capsys, "job", "submit", "render", "--size", "8", "-c", cfg)
    assert code == 1 and "select at least one" in err and "(HTTP 400)" in err
    code, _, err = ctl(capsys, "job", "show", "987654", "-c", cfg)
    assert (code, err) == (1, "node-ctl job show: no job 987654 (HTTP 404)\n")


def test_job_wait_fails_when_the_job_fails(
    admin_node: AdminNode,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    cfg = str(admin_node.config)
    code, out, err = ctl(
        capsys, "job", "submit", "export", "--study", "1.2.3.404", "--zip",
        str(tmp_path / "none.zip"), "-c", cfg,
    )  # fmt: skip
    assert code == 0, err
    pk = out.split()[1]
    code, out, err = ctl(capsys, "job", "wait", pk, "-c", cfg, "--no-progress", "--interval", "0.1")
    assert code == 1
    assert err == f"node-ctl job wait: job {pk} failed: nothing selected to export\n"


def test_job_cancel_and_wait_timeout(
    admin_node: AdminNode,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = str(admin_node.config)
    code, out, _ = ctl(
        capsys, "job", "submit", "forward", "--study", STUDY2, "--destination", "DEAD", "-c", cfg
    )
    pk = out.split()[1]
    code, out, err = ctl(capsys, "job", "wait", pk, "-c", cfg, "--timeout", "0.2")
    assert code == 124 and f"job {pk} still" in err
    code, out, _ = ctl(capsys, "job", "cancel", pk, "-c", cfg)
    assert code == 0 and out.startswith(f"job {pk}: ")
    code, out, err = ctl(capsys, "job", "wait", pk, "-c", cfg, "--interval", "0.1")
    assert code == 1 and f"job {pk} cancelled" in err
    code, _, err = ctl(capsys, "job", "cancel", pk, "-c", cfg)
    assert code == 1 and "already finished (cancelled) (HTTP 409)" in err


def test_route_list_dry_run_run_history(
    admin_node: AdminNode,  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = str(admin_node.config)
    code, out, err = ctl(capsys, "route", "list", "-c", cfg)
    assert code == 0, err
    assert re.search(
        r"^research\s+NODE -> DEAD\s+manual\s+new\s+anonymize > forward\s+never", out, re.M
    )
    code, out, err = ctl(capsys, "route", "run", "research", "--dry-run", "-c", cfg)
    assert code == 0, err
    assert "1 study(ies) would be sent (dry run: nothing sent)" in out
    assert re.search(rf"^yes\s+20240105\s+API1\s+API\^ONE\s+3\s+{re.escape(STUDY1)}", out, re.M)
    header = re.search(r"^\*\s+PatientName\s+API\^ONE\s+(\S*)", out, re.M)
    assert header is not None and header.group(1) != "API^ONE"
    assert re.search(r"^\s+Modality\s+CT\s+CT$", out, re.M)  # unchanged: no mark
    assert "attribute(s) changed, removed or added" in out
    code, out, err = ctl(capsys, "route", "history", "research", "-c", cfg)
    assert (code, err) == (0, "route research has not run yet\n")
    code, out, err = ctl(capsys, "route", "run", "research", "-c", cfg)
    assert code == 0, err
    match = re.match(r"route research: run (\d+), 1 study\(ies\) selected, job\(s\) (\d+)", out)
    assert match is not None
    ctl(capsys, "job", "cancel", match.group(2), "-c", cfg)
    code, out, err = ctl(capsys, "route", "history", "research", "--studies", "-c", cfg)
    assert code == 0 and re.search(rf"^{match.group(1)}\s+manual\s+", out, re.M)
    assert f"{STUDY1}" in out and f"(job {match.group(2)})" in out
    code, _, err = ctl(capsys, "route", "run", "nope", "-c", cfg)
    assert (code, err) == (1, "node-ctl route run: no route 'nope' in the RouteTable (HTTP 404)\n")


def test_side_by_side_marks() -> None:
    rows = side_by_side({"A": "1", "B": "2", "C": "3"}, {"A": "1", "B": "x", "D": "4"})
    assert rows == [
        ["", "A", "1", "1"],
        ["*", "B", "2", "x"],
        ["-", "C", "3", ""],
        ["+", "D", "", "4"],
    ]
