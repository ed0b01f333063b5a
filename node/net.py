"""Socket tuning shared by every DICOM connection we open or accept.

Why: with Nagle's algorithm on, each small DIMSE message waits for the peer's delayed
ACK, and a loopback C-STORE stream drops from hundreds of instances per second to about
twenty.  pynetdicom creates requestor sockets itself and offers no option for it, so
``enable_tcp_nodelay()`` wraps its socket factory once per process; the acceptor side
sets the option on each accepted socket (``node.app``).
"""

from __future__ import annotations

import socket
from typing import Any

from pynetdicom import transport

_installed = False


def set_nodelay(sock: socket.socket) -> None:
    """Turn Nagle off on a TCP socket (no-op for sockets that are not TCP)."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        pass


def enable_tcp_nodelay() -> None:
    """Make every requestor socket pynetdicom creates use TCP_NODELAY (idempotent)."""
    global _installed
    if _installed:
        return
    original = transport.AssociationSocket._create_socket

    def _create_socket(self: Any, address: Any) -> socket.socket:
        sock = original(self, address)
        set_nodelay(sock)
        return sock

    transport.AssociationSocket._create_socket = _create_socket  # type: ignore[method-assign]
    _installed = True
