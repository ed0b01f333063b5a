"""The daemon's lifecycle on asyncio: start the node, relay its events, stop on a signal.

pynetdicom serves associations in its own threads; what they signal (an instance stored)
arrives here through ``loop.call_soon_threadsafe`` so that later work (triggers, jobs,
routes) runs on the loop and never on an association's thread.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
from typing import Any

from config.model import Settings
from node.app import Node

logger = logging.getLogger(__name__)


class EventRelay:
    """Thread-safe hand-over of node events onto the asyncio loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.counters: dict[str, int] = {}

    def __call__(self, kind: str, info: dict[str, Any]) -> None:
        self.loop.call_soon_threadsafe(self.queue.put_nowait, (kind, info))

    async def consume(self) -> None:
        while True:
            kind, info = await self.queue.get()
            self.counters[kind] = self.counters.get(kind, 0) + 1
            logger.debug("event %s %s", kind, info)


async def serve(settings: Settings, ready: asyncio.Event | None = None) -> int:
    """Run the node until SIGTERM/SIGINT; returns the exit code."""
    loop = asyncio.get_running_loop()
    relay = EventRelay(loop)
    node = await loop.run_in_executor(None, lambda: Node(settings, notify=relay))
    # pynetdicom writes each received dataset to a temp file first: keep those on the same
    # filesystem as the store (not a small or RAM-backed /tmp), where recovery sweeps them.
    tempfile.tempdir = str(next(iter(node.stores.values())).tmp)
    node.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    consumer = asyncio.create_task(relay.consume())
    logger.info("dicom-node ready on port %d", node.port)
    if ready is not None:
        ready.set()
    await stop.wait()
    logger.info("stopping: no new associations; letting running ones finish")
    await loop.run_in_executor(None, node.stop)
    consumer.cancel()
    logger.info("stopped")
    return 0


def run(settings: Settings) -> int:
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # pynetdicom logs every PDU summary and every C-FIND match at INFO; the node's own
    # association logs say who did what, so keep pynetdicom to warnings unless debugging.
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    return asyncio.run(serve(settings))
