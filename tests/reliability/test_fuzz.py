"""Fuzzing the network side: malformed PDUs and malformed datasets never take the node down.

Each property runs a bounded number of cases (NODE_TEST_FUZZ_EXAMPLES, default a few
hundred) against one node; after every case an echo must still succeed, and the store must
hold exactly what the index holds.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.sop_class import CTImageStorage

from node.app import Node
from storage.integrity import check
from tests.conftest import _free_port
from tests.services.conftest import make_settings
from tests.services.helpers import associate, make_ct, scu

EXAMPLES = int(os.environ.get("NODE_TEST_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    node = Node(
        make_settings(
            tmp_path_factory.mktemp("fuzz"),
            _free_port(),
            acse_timeout=2.0,
            network_timeout=2.0,
            max_associations=64,
        )
    )
    node.start()
    yield node
    node.stop(grace=1.0)


def assert_alive(node: Node) -> None:
    """An echo succeeds once the fuzzed connections have timed out (they hold slots until
    the ACSE/network timeouts free them; none may hold one for longer)."""
    import time

    deadline = time.monotonic() + 15
    while node.ae.active_associations and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not node.ae.active_associations, "associations still held after the timeouts"
    assoc = associate(scu(), node.port)
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def assert_consistent(node: Node) -> None:
    report = check(node.index, node.stores)
    assert report.ok, report.summary()
    assert list(node.stores["NODE"].tmp.iterdir()) == []


def _associate_rq(called: bytes = b"NODE", calling: bytes = b"FUZZ") -> bytes:
    """A well-formed A-ASSOCIATE-RQ proposing Verification, to mutate."""

    def item(kind: int, body: bytes) -> bytes:
        return struct.pack(">BxH", kind, len(body)) + body

    app = item(0x10, b"1.2.840.10008.3.1.1.1")
    pc = item(
        0x20,
        bytes([1, 0, 0, 0]) + item(0x30, b"1.2.840.10008.1.1") + item(0x40, b"1.2.840.10008.1.2"),
    )
    user = item(0x50, item(0x51, struct.pack(">I", 16384)) + item(0x52, b"1.2.3.4"))
    body = (
        struct.pack(">HH", 1, 0)
        + called.ljust(16)
        + calling.ljust(16)
        + bytes(32)
        + app
        + pc
        + user
    )
    return struct.pack(">BxI", 0x01, len(body)) + body


def _send_raw(port: int, payload: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.settimeout(3)
        try:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(65536):
                pass
        except OSError:
            pass


pdu_strategy = st.one_of(
    st.binary(max_size=512),  # random bytes
    st.builds(  # wrong type / huge length / truncated
        lambda kind, length, body: struct.pack(">BxI", kind, length) + body,
        st.integers(0, 255),
        st.one_of(st.integers(0, 64), st.just(0xFFFFFFFF), st.integers(0, 2**32 - 1)),
        st.binary(max_size=128),
    ),
    st.builds(  # a real association request, cut or with bytes flipped
        lambda cut, flips: _mutate(_associate_rq(), cut, flips),
        st.integers(0, 200),
        st.lists(st.tuples(st.integers(0, 199), st.integers(0, 255)), max_size=6),
    ),
)


def _mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    buffer = bytearray(data)
    for position, value in flips:
        if position < len(buffer):
            buffer[position] = value
    return bytes(buffer[: max(cut, 1)]) if cut < len(buffer) else bytes(buffer)


@FUZZ
@given(payload=pdu_strategy)
def test_malformed_pdus_never_take_the_node_down(fuzz_node: Node, payload: bytes) -> None:
    _send_raw(fuzz_node.port, payload)


def test_node_alive_after_pdu_fuzzing(fuzz_node: Node) -> None:
    assert_alive(fuzz_node)


def _encoded(ds) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_little_endian, buffer.is_implicit_VR = True, True
    write_dataset(buffer, ds)
    return buffer.getvalue()


BASE = make_ct(rows=4)
BASE_BYTES = _encoded(BASE)


@FUZZ
@given(
    cut=st.integers(0, len(BASE_BYTES)),
    flips=st.lists(st.tuples(st.integers(0, len(BASE_BYTES) - 1), st.integers(0, 255)), max_size=8),
)
def test_malformed_datasets_get_a_status_and_leave_nothing_partial(
    fuzz_node: Node, cut: int, flips: list[tuple[int, int]]
) -> None:
    data = bytearray(BASE_BYTES)
    for position, value in flips:
        data[position] = value
    data = data[:cut] if cut else data
    assoc = associate(scu(storage=True), fuzz_node.port)
    try:
        request = C_STORE()
        request.MessageID = 1
        request.AffectedSOPClassUID = CTImageStorage
        request.AffectedSOPInstanceUID = BASE.SOPInstanceUID
        request.Priority = 2
        request.DataSet = BytesIO(bytes(data))
        cx = next(
            c
            for c in assoc.accepted_contexts
            if c.abstract_syntax == CTImageStorage and c.transfer_syntax[0] == "1.2.840.10008.1.2"
        )
        assoc._reactor_checkpoint.clear()
        while not assoc._is_paused:
            pass
        assoc.dimse.send_msg(request, cx.context_id)
        _, response = assoc.dimse.get_msg(block=True)
        assoc._reactor_checkpoint.set()
        assert response is not None
        assert response.Status in (0x0000, 0xA900, 0xC000, 0xA700) or response.Status >> 12 in (
            0xA,
            0xC,
            0xB,
        )
    finally:
        if assoc.is_established:
            assoc.release()


def test_node_alive_and_consistent_after_dataset_fuzzing(fuzz_node: Node) -> None:
    assert_alive(fuzz_node)
    assert_consistent(fuzz_node)
