"""The index database goes away: stores are refused (not accepted and lost), then it comes back.

PostgreSQL is reached through a small TCP relay the test can cut, so the server itself keeps
running for the other tests.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import _free_port
from tests.services.helpers import associate, make_ct, scu

pytestmark = pytest.mark.postgres


class Relay:
    """Forwards TCP connections to PostgreSQL until cut; can be restored on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = _free_port()
        self._links: list[socket.socket] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        assert self._listener is not None
        try:  # wakes the thread blocked in accept(); close() alone would not
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        with self._lock:
            for link in self._links:
                try:
                    link.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                link.close()
            self._links.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            with self._lock:
                self._links += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


@pytest.fixture
def relayed_url(postgres_url: str) -> Iterator[tuple[str, Relay]]:
    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    yield url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False), relay
    relay.cut()


def test_index_down_refuses_stores_then_recovers(start_node, relayed_url) -> None:
    url, relay = relayed_url
    node = start_node(database_url=url)
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(make_ct()).Status == 0x0000
    assoc.release()

    relay.cut()
    assoc = associate(scu(storage=True), node.port)
    lost = make_ct()
    status = assoc.send_c_store(lost)
    assert status.Status == 0xA700
    assert "index" in status.ErrorComment.lower()
    assert assoc.send_c_echo().Status == 0x0000  # the node keeps serving
    assoc.release()
    assert len(list(node.stores["NODE"].area.glob("*/*/*.dcm"))) == 1  # nothing partial

    relay.restore()
    assoc = associate(scu(storage=True), node.port)
    assert assoc.send_c_store(lost).Status == 0x0000
    assoc.release()
    assert node.index.counts("NODE")["instances"] == 2
