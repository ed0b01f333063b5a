"""User identity negotiation: configured users with passwords, checked at association time."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.pdu_primitives import UserIdentityNegotiation
from pynetdicom.sop_class import Verification

from node.identity import check_password, hash_password, load_users
from tests.interop.conftest import PEER_ENV
from tests.services.helpers import make_ct


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.txt"
    path.write_text(f"# node users\nalice:{hash_password('s3cret')}\n")
    return path


def _associate(port: int, identity: tuple[str, str] | None):
    ae = AE(ae_title="USERSCU")
    ae.add_requested_context(Verification)
    ext = []
    if identity is not None:
        item = UserIdentityNegotiation()
        item.user_identity_type = 2
        item.primary_field = identity[0].encode()
        item.secondary_field = identity[1].encode()
        ext.append(item)
    return ae.associate("127.0.0.1", port, ae_title="NODE", ext_neg=ext)


def test_hashes_verify_and_never_hold_the_password(users_file: Path) -> None:
    stored = load_users(users_file)["alice"]
    assert "s3cret" not in users_file.read_text()
    assert check_password("s3cret", stored)
    assert not check_password("S3cret", stored)


def test_required_identity_accepts_users_and_rejects_the_rest(start_node, users_file) -> None:
    node = start_node(user_identity_file=users_file, require_user_identity=True)
    good = _associate(node.port, ("alice", "s3cret"))
    assert good.is_established
    assert good.send_c_echo().Status == 0
    good.release()
    assert _associate(node.port, ("alice", "wrong")).is_rejected
    assert _associate(node.port, ("mallory", "s3cret")).is_rejected
    assert _associate(node.port, None).is_rejected


@pytest.mark.interop
def test_storescu_with_user_and_password(
    start_node, users_file, tmp_path, require_binary: Callable[[str], str]
) -> None:
    node = start_node(user_identity_file=users_file, require_user_identity=True)
    source = tmp_path / "ct.dcm"
    make_ct().save_as(source, enforce_file_format=True)
    storescu = require_binary("storescu")

    def send(*identity: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [storescu, *identity, "-aec", "NODE", "127.0.0.1", str(node.port), str(source)],
            capture_output=True,
            text=True,
            timeout=60,
            env=PEER_ENV,
        )

    assert send("--user", "alice", "--password", "s3cret").returncode == 0
    assert send("--user", "alice", "--password", "nope").returncode != 0
    assert send().returncode != 0
    assert node.index.counts("NODE")["instances"] == 1
