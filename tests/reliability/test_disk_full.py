"""Disk full: C-STORE answers 0xA700, nothing partial remains, the node recovers with space.

The store lives on a small tmpfs the test mounts (root only; CI runs as root).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from config.model import AEEntry
from storage.integrity import check
from tests.services.helpers import associate, make_ct, scu


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the disk-full test needs root to mount a tmpfs")
        pytest.skip("the disk-full test needs root to mount a tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_disk_full_answers_out_of_resources_and_recovers(start_node, small_disk: Path) -> None:
    node = start_node(ae_table=(AEEntry(title="NODE", storage_area=small_disk / "NODE"),))
    assoc = associate(scu(storage=True), node.port)
    statuses = []
    sent = []
    for _ in range(40):  # 64 KiB each: a 1 MiB disk fills up on the way
        ds = make_ct(rows=181)
        statuses.append(assoc.send_c_store(ds).Status)
        sent.append(ds)
    assoc.release()
    assert 0x0000 in statuses
    assert 0xA700 in statuses
    stored = {i.sop_instance_uid for i in node.index.instances("NODE")}
    assert stored == {ds.SOPInstanceUID for ds, s in zip(sent, statuses, strict=True) if s == 0}
    report = check(node.index, node.stores)
    assert report.ok, report.summary()
    assert list(node.stores["NODE"].tmp.iterdir()) == []

    # space comes back: the node stores again, without a restart
    victims = [i.sop_instance_uid for i in node.index.instances("NODE")][:5]
    for path in node.index.delete_instances("NODE", victims):
        node.stores["NODE"].delete(path)
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(make_ct(rows=181)).Status == 0x0000
    assert assoc.send_c_echo().Status == 0
    assoc.release()
