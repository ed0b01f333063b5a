"""A real node on a free loopback port, for service tests that talk DICOM over sockets."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from config.model import AEEntry, HostEntry, Quota, Settings
from node.app import Node


def make_settings(tmp_path: Path, port: int, **overrides: Any) -> Settings:
    """Settings with an RW AE ``NODE``, an R AE ``READONLY`` and a move destination ``DEST``."""
    values: dict[str, Any] = {
        "network_tcp_port": port,
        "bind_address": "127.0.0.1",
        "data_dir": tmp_path / "var",
        "ae_table": (
            AEEntry(title="NODE", storage_area=tmp_path / "store" / "NODE", access="RW"),
            AEEntry(title="READONLY", storage_area=tmp_path / "store" / "RO", access="R"),
        ),
        "hosts": {},
        "shutdown_grace": 2.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def start_node(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Callable[..., Node]]:
    nodes: list[Node] = []

    def _start(**overrides: Any) -> Node:
        settings = make_settings(tmp_path, free_port(), **overrides)
        node = Node(settings)
        node.start()
        nodes.append(node)
        return node

    yield _start
    for node in nodes:
        node.stop(grace=1.0)


@pytest.fixture
def node(start_node: Callable[..., Node]) -> Node:
    return start_node()


__all__ = ["make_settings", "AEEntry", "HostEntry", "Quota"]
