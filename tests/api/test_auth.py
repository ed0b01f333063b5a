"""Where the admin token comes from, and how a request's header is checked."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from config.model import Settings
from node.api import server_token, token_path
from node.api._auth import token_matches


def test_a_configured_token_is_used_and_no_file_written(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, admin_token="configured-secret")
    assert server_token(settings) == "configured-secret"
    assert not token_path(settings).exists()


def test_without_a_token_one_is_generated_once_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    first = server_token(settings)
    path = token_path(settings)
    assert path == tmp_path / "var" / "admin.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 40 and path.read_text() == first + "\n"
    assert server_token(settings) == first  # kept across restarts


def test_a_token_file_others_can_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path)
    token_path(settings).write_text("mine\n")
    token_path(settings).chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="node.api._auth"):
        assert server_token(settings) == "mine"
    assert "readable by others" in caplog.text


@pytest.mark.parametrize(
    "header,ok",
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer  s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cret2", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("", False),
        (None, False),
    ],
)
def test_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches(header, "s3cret") is ok
