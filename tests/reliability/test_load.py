"""Association limits and timeouts: the excess is rejected, a stalled peer is let go."""

from __future__ import annotations

import socket
import time

from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from tests.services.helpers import associate, scu


def test_more_than_max_associations_are_rejected_transient(start_node) -> None:
    node = start_node(max_associations=2)
    held = [associate(scu(), node.port) for _ in range(2)]
    reasons: list[tuple[int, int, int]] = []

    def on_rejected(event: evt.Event) -> None:
        rj = event.assoc.acceptor.primitive
        reasons.append((rj.result, rj.result_source, rj.diagnostic))

    ae = AE(ae_title="EXTRA")
    ae.add_requested_context(Verification)
    extra = ae.associate(
        "127.0.0.1", node.port, ae_title="NODE", evt_handlers=[(evt.EVT_REJECTED, on_rejected)]
    )
    assert extra.is_rejected
    assert reasons == [
        (0x02, 0x03, 0x02)
    ]  # transient, service-provider (presentation), local limit
    for assoc in held:
        assert assoc.send_c_echo().Status == 0
        assoc.release()
    time.sleep(0.2)
    again = associate(scu(), node.port)
    assert again.send_c_echo().Status == 0
    again.release()


def test_stalled_peer_is_disconnected_by_the_acse_timeout(start_node) -> None:
    node = start_node(acse_timeout=1.0, network_timeout=2.0)
    with socket.create_connection(("127.0.0.1", node.port), timeout=10) as sock:
        started = time.monotonic()
        data = sock.recv(1024)  # we send nothing: the node must hang up on us
        waited = time.monotonic() - started
    assert data in (b"",) or data[:1] == b"\x07"  # closed, or an A-ABORT first
    assert waited < 9
    # and the slot is free again
    assoc = associate(scu(), node.port)
    assert assoc.send_c_echo().Status == 0
    assoc.release()


def test_idle_association_is_released_by_the_network_timeout(start_node) -> None:
    node = start_node(network_timeout=1.0)
    assoc = associate(scu(), node.port)
    deadline = time.monotonic() + 10
    while assoc.is_established and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not assoc.is_established
