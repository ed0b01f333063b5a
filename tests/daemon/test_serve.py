"""``node-ctl serve`` as a user runs it: a process, a config file, echoscu, SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from storage.migrate import alembic_config
from tests.conftest import REPO_ROOT

NODE_CTL = [sys.executable, "-m", "node.cli.main"]


def write_config(tmp_path: Path, port: int, peers: str = "ANY") -> Path:
    cfg = tmp_path / "node.cfg"
    cfg.write_text(
        f"""# test configuration
NetworkTCPPort  = {port}
MaxPDUSize      = 16384
MaxAssociations = 4
DataDir = var
BindAddress = 127.0.0.1

HostTable BEGIN
friend = (FRIEND, 127.0.0.1, 104)
HostTable END

AETable BEGIN
NODE   store/NODE   RW  (100, 100mb)  {peers}
AETable END
"""
    )
    return cfg


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"node exited early: {proc.stderr.read() if proc.stderr else ''}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError("node did not start listening")


def start(cfg: Path, tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
    return subprocess.Popen(
        [*NODE_CTL, "serve", "--config", str(cfg)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.interop
def test_serve_answers_echoscu_and_stops_cleanly_on_sigterm(
    tmp_path: Path, free_port: Callable[[], int], require_binary: Callable[[str], str]
) -> None:
    echoscu = require_binary("echoscu")
    port = free_port()
    proc = start(write_config(tmp_path, port), tmp_path)
    try:
        wait_for_port(port, proc)
        ok = subprocess.run(
            [echoscu, "-aec", "NODE", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert ok.returncode == 0, ok.stderr
        bad = subprocess.run(
            [echoscu, "-aec", "NOBODY", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert bad.returncode != 0
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert "association from ECHOSCU@127.0.0.1" in stderr
    assert "rejecting association from ECHOSCU@127.0.0.1 to NOBODY" in stderr
    assert (tmp_path / "var" / "index.sqlite").exists()


@pytest.mark.interop
def test_serve_rejects_calling_ae_not_among_peers(
    tmp_path: Path, free_port: Callable[[], int], require_binary: Callable[[str], str]
) -> None:
    echoscu = require_binary("echoscu")
    port = free_port()
    proc = start(write_config(tmp_path, port, peers="friend"), tmp_path)
    try:
        wait_for_port(port, proc)
        stranger = subprocess.run(
            [echoscu, "-aet", "STRANGER", "-aec", "NODE", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert stranger.returncode != 0
        assert "Calling AE Title Not Recognized" in stranger.stderr + stranger.stdout
        friend = subprocess.run(
            [echoscu, "-aet", "FRIEND", "-aec", "NODE", "127.0.0.1", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert friend.returncode == 0, friend.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_serve_reports_config_errors_with_file_and_line(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.cfg"
    cfg.write_text("NetworkTCPPort = 11112\nBogusKeyword = 1\n")
    proc = subprocess.run(
        [*NODE_CTL, "serve", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 2
    assert f"{cfg}:2" in proc.stderr or "bad.cfg:2" in proc.stderr


def test_db_upgrade_and_check(tmp_path: Path, free_port: Callable[[], int]) -> None:
    cfg = write_config(tmp_path, free_port())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NODE_")},
        "PYTHONPATH": str(REPO_ROOT),
    }
    upgrade = subprocess.run(
        [*NODE_CTL, "db", "--config", str(cfg), "upgrade"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert upgrade.returncode == 0, upgrade.stderr
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert f"revision {head}" in upgrade.stdout
    check = subprocess.run(
        [*NODE_CTL, "db", "--config", str(cfg), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "OK" in check.stdout
    # a file without its row is reported
    orphan = tmp_path / "store" / "NODE" / "ab" / "1.2.3" / "1.2.3.4.dcm"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    check = subprocess.run(
        [*NODE_CTL, "db", "--config", str(cfg), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert check.returncode == 1
    assert "orphan file: NODE:ab/1.2.3/1.2.3.4.dcm" in check.stdout
