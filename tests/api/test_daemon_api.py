"""The admin API in the daemon's lifecycle: an address in use stops the start cleanly."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

from tests.api.conftest import NODE_CTL, write_config
from tests.conftest import REPO_ROOT


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_api_port_in_use_stops_the_daemon_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        cfg = write_config(tmp_path, _port(), taken.getsockname()[1], _port())
        env = {k: v for k, v in os.environ.items() if not k.startswith("NODE_")}
        result = subprocess.run(
            [*NODE_CTL, "serve", "--config", str(cfg)],
            cwd=tmp_path,
            env={**env, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode != 0
    assert "admin API cannot listen on 127.0.0.1:" in result.stderr
    assert "Address already in use" in result.stderr
    assert "Traceback" not in result.stderr
