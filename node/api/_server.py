"""Serving the admin API on the daemon's asyncio loop (uvicorn, no process of its own).

Why a ``uvicorn.Server`` subclass: ``serve()`` installs its own SIGINT/SIGTERM handlers
(``capture_signals``) and re-raises the signal when it stops, which would take the daemon's
clean shutdown away from it.  Ours captures nothing: the daemon keeps its signal handlers
and stops the API with :meth:`AdminApi.stop` (``should_exit``).  We bind the socket
ourselves, so a port in use is an ``OSError`` at start (uvicorn would ``sys.exit``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

logger = logging.getLogger(__name__)


class _Server(uvicorn.Server):
    """uvicorn without signal handling: the daemon owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, as ``host`` resolves)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class AdminApi:
    """The admin API listening on ``host:port``; ``await start()``, later ``await stop()``."""

    def __init__(self, app: FastAPI, host: str, port: int, *, grace: int = 5) -> None:
        self.app = app
        self.host = host
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            lifespan="off",
            http="h11",
            ws="none",
            proxy_headers=False,
            server_header=False,
            # Query strings carry patient names: no access log.  The API logs what changes
            # something (job submitted, cancelled, route run) and every refused request.
            access_log=False,
            timeout_graceful_shutdown=grace,
        )
        self.server = _Server(self.config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        assert self._socket is not None, "not started"
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind and serve in a task of the running loop; returns once it accepts."""
        try:
            self._socket = bind(self.host, self.config.port)
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"admin API cannot listen on {self.host}:{self.config.port}: {exc.strerror or exc}",
            ) from exc
        self._task = asyncio.create_task(
            self.server.serve(sockets=[self._socket]), name="admin-api"
        )
        while not self.server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the admin API stopped during start-up")
            await asyncio.sleep(0.01)
        logger.info("admin API on http://%s:%d (token required)", self.host, self.port)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (bounded), close the socket."""
        if self._task is None:
            return
        self.server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            if self._socket is not None:
                self._socket.close()
        logger.info("admin API stopped")
