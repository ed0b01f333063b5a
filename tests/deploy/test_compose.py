"""Deployment files: the compose file validates, the image build is complete."""

from __future__ import annotations

import subprocess
from collections.abc import Callable

import pytest

from tests.conftest import REPO_ROOT


@pytest.mark.interop
def test_docker_compose_config_accepts_the_file(require_binary: Callable[[str], str]) -> None:
    proc = subprocess.run(
        [require_binary("docker-compose"), "-f", str(REPO_ROOT / "docker-compose.yml"), "config"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "postgresql+psycopg://" in proc.stdout
    assert "healthcheck" in proc.stdout
    assert "store" in proc.stdout and "db-data" in proc.stdout


def test_dockerfile_copies_every_package() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    for package in ("node", "storage", "config", "migrations"):
        assert f"COPY {package} ./{package}" in text
    assert (REPO_ROOT / "docker" / "node.cfg").is_file()


def test_image_config_loads() -> None:
    from config import load

    settings = load(REPO_ROOT / "docker" / "node.cfg", environ={})
    assert settings.network_tcp_port == 11112
    assert [entry.title for entry in settings.ae_table] == ["DICOM_NODE"]
