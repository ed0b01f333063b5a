"""node.pdu_limits: what a peer announces or withholds never costs the node memory or files.

Each test starts a node, applies the limits (``pdu_limits.install()``, as ``node.app``
does) and plays a peer over a raw socket.  Memory is this process's RSS (the node runs in
it): a bound on growth, generous, since it only has to tell "nothing allocated" from "the
announced size allocated".
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from node import pdu_limits
from node.app import Node
from tests.reliability import rawdicom
from tests.services.conftest import make_settings
from tests.services.helpers import associate, make_ct, scu

MB = 1 << 20


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


@pytest.fixture
def limited_node(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Node]:
    node = Node(make_settings(tmp_path, free_port(), acse_timeout=3.0, network_timeout=3.0))
    pdu_limits.install()
    node.start()
    yield node
    node.stop(grace=1.0)


def established(node: Node) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
    sock.sendall(rawdicom.associate_rq())
    kind, _, length = struct.unpack(">BBI", sock.recv(6, socket.MSG_WAITALL))
    sock.recv(length, socket.MSG_WAITALL)
    assert kind == 0x02
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 10.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError):
        pass
    return data


def assert_serving(node: Node) -> None:
    deadline = time.monotonic() + 10
    while node.ae.active_associations and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not node.ae.active_associations
    assoc = associate(scu(), node.port)
    assert assoc.send_c_echo().Status == 0
    assoc.release()
    assert list(node.stores["NODE"].tmp.iterdir()) == []


@pytest.mark.parametrize(
    ("kind", "length"),
    [
        (0x04, 0xFFFFFFF0),  # P-DATA-TF of 4 GiB
        (0x04, 0x10000000),
        (0x05, 0x80000000),  # A-RELEASE-RQ of 2 GiB
        (0x07, 0xFFFFFFFF),
    ],
)
def test_a_huge_announced_pdu_is_aborted_unread(limited_node: Node, kind: int, length: int) -> None:
    sock = established(limited_node)
    before = rss_mb()
    sock.sendall(struct.pack(">BxI", kind, length) + bytes(100))
    reply = read_until_closed(sock)
    grown = rss_mb() - before
    sock.close()
    assert reply[:1] == b"\x07", reply[:10]  # A-ABORT
    assert grown < 32, f"RSS grew by {grown:.0f} MiB for an announced {length >> 20} MiB"
    assert_serving(limited_node)


def test_a_2gb_association_request_streamed_is_not_buffered(limited_node: Node) -> None:
    """The peer really sends: the node answers A-ABORT after the header and drops the rest
    (until the peer closes or the ARTIM timer, the ACSE timeout, closes it)."""
    before = rss_mb()
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", limited_node.port), timeout=10) as sock:
        sock.sendall(struct.pack(">BxI", 0x01, 0x80000000))
        chunk = bytes(MB)
        try:
            for _ in range(256):
                sock.sendall(chunk)
            reply = read_until_closed(sock)
        except OSError:  # reset: the node closed first
            reply = b"\x07"
    grown = rss_mb() - before
    assert reply[:1] == b"\x07", reply[:10]
    assert grown < 32, f"RSS grew by {grown:.0f} MiB"
    assert time.monotonic() - start < limited_node.settings.acse_timeout + 15
    assert_serving(limited_node)


def test_a_header_sent_byte_by_byte_is_still_checked(limited_node: Node) -> None:
    sock = established(limited_node)
    before = rss_mb()
    for byte in struct.pack(">BxI", 0x04, 0x40000000):
        sock.sendall(bytes([byte]))
        time.sleep(0.05)
    reply = read_until_closed(sock)
    sock.close()
    assert reply[:1] == b"\x07"
    assert rss_mb() - before < 32
    assert_serving(limited_node)


def test_command_fragments_that_never_end_are_cut_off(limited_node: Node) -> None:
    sock = established(limited_node)
    fragment = rawdicom.p_data(rawdicom.pdv(1, 1, bytes(16000)))  # command, never last
    try:
        for _ in range(200):  # 3.2 MB of command set, limit 64 KiB
            sock.sendall(fragment)
    except OSError:
        pass
    reply = read_until_closed(sock)
    sock.close()
    assert b"\x07\x00\x00\x00\x00\x04" in reply
    assert_serving(limited_node)


def test_an_identifier_over_the_limit_is_cut_off(
    limited_node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pdu_limits, "IDENTIFIER_LIMIT", 256 * 1024)
    sock = established(limited_node)
    try:
        sock.sendall(rawdicom.p_data(rawdicom.pdv(7, 3, rawdicom.find_rq())))
        for _ in range(40):  # 640 KB of identifier, never last
            sock.sendall(rawdicom.p_data(rawdicom.pdv(7, 0, bytes(16000))))
    except OSError:
        pass
    reply = read_until_closed(sock)
    sock.close()
    assert b"\x07\x00\x00\x00\x00\x04" in reply
    assert_serving(limited_node)


def test_a_c_store_cut_short_leaves_no_temp_file(limited_node: Node) -> None:
    ds = make_ct(rows=256)
    del ds.file_meta
    data = rawdicom.encode(ds)
    for ending in (b"", rawdicom.ABORT, rawdicom.RELEASE_RQ):
        sock = established(limited_node)
        sock.sendall(rawdicom.p_data(rawdicom.pdv(3, 3, rawdicom.store_rq(ds.SOPInstanceUID))))
        for fragment in rawdicom.fragments(3, 0, data[: len(data) // 2])[:-1]:
            sock.sendall(fragment)
        sock.sendall(ending)
        sock.shutdown(socket.SHUT_WR)
        read_until_closed(sock)
        sock.close()
        assert_serving(limited_node)
    assert limited_node.index.instances("NODE") == []


def test_a_command_inside_a_dataset_aborts_and_leaves_no_temp_file(limited_node: Node) -> None:
    ds = make_ct()
    del ds.file_meta
    data = rawdicom.encode(ds)
    sock = established(limited_node)
    sock.sendall(
        rawdicom.p_data(
            rawdicom.pdv(3, 3, rawdicom.store_rq(ds.SOPInstanceUID)),
            rawdicom.pdv(3, 0, data[:100]),
            rawdicom.pdv(1, 3, rawdicom.echo_rq()),
        )
    )
    reply = read_until_closed(sock)
    sock.close()
    assert reply[:1] == b"\x07"
    assert_serving(limited_node)


def test_a_request_that_breaks_negotiation_is_aborted_not_left_open(limited_node: Node) -> None:
    """pynetdicom's negotiation raises on a presentation context without a transfer syntax;
    without the guard the connection and its DUL thread stayed open for good."""
    items = [
        rawdicom.item(0x10, rawdicom.APPLICATION_CONTEXT),
        rawdicom.item(0x20, bytes([1, 0, 0, 0]) + rawdicom.item(0x30, rawdicom.VERIFICATION)),
        rawdicom.item(0x50, rawdicom.item(0x51, struct.pack(">I", 16384))),
    ]
    with socket.create_connection(("127.0.0.1", limited_node.port), timeout=10) as sock:
        sock.sendall(rawdicom.associate_rq(items=items))
        reply = read_until_closed(sock, timeout=5)  # the node closes (no SHUT_WR here)
    assert reply[:1] in (b"\x03", b"\x07"), reply[:10]
    assert_serving(limited_node)


def test_limits_follow_the_announced_maximum(limited_node: Node) -> None:
    """A P-DATA-TF up to the node's maximum PDU length (plus slack) is read as usual."""
    ds = make_ct(rows=128)
    del ds.file_meta
    data = rawdicom.encode(ds)
    maximum = limited_node.settings.max_pdu_size
    assoc = rawdicom.RawAssociation(limited_node.port)
    try:
        assoc.send(rawdicom.p_data(rawdicom.pdv(3, 3, rawdicom.store_rq(ds.SOPInstanceUID))))
        # PDV header is 6 bytes: a PDU of exactly the announced maximum
        for fragment in rawdicom.fragments(3, 0, data, size=maximum - 6):
            assoc.send(fragment)
        assert assoc.reply().status == 0x0000
    finally:
        assoc.release()
    assert_serving(limited_node)
