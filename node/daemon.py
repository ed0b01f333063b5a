"""The daemon's lifecycle on asyncio: start the node, relay its events, stop on a signal.

pynetdicom serves associations in its own threads; what they signal (an instance stored)
arrives here through ``loop.call_soon_threadsafe`` so that later work (triggers, jobs,
routes) runs on the loop and never on an association's thread.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing.util
import signal
import tempfile
from typing import Any

from config.model import Settings
from node.app import Node
from node.jobs.automation import Automation
from node.jobs.runner import JobRunner
from node.workers import start as start_ingest_workers

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
    """Run the node until SIGTERM/SIGINT; returns the exit code.

    Start order: the DICOM node, then the job runner (then the other services); stop in
    the reverse order, each part in a hunk of its own.
    """
    # --- triggers and routes (node/jobs/automation.py): checked before anything starts ---
    automation = Automation(settings)

    loop = asyncio.get_running_loop()
    relay = EventRelay(loop)
    node = await loop.run_in_executor(None, lambda: Node(settings, notify=relay))
    # The job runner's forkserver keeps its AF_UNIX socket in multiprocessing's temp folder:
    # fix that folder in the system temp dir first, as a socket path in a deep store would
    # exceed the 107-byte limit of AF_UNIX addresses.
    multiprocessing.util.get_temp_dir()
    # pynetdicom writes each received dataset to a temp file first: keep those on the same
    # filesystem as the store (not a small or RAM-backed /tmp), where recovery sweeps them.
    tempfile.tempdir = str(next(iter(node.stores.values())).tmp)
    node.start()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # --- ingest workers (node/workers.py): IngestWorkers - 1 more processes on the port ---
    workers = start_ingest_workers(settings, node)
    consumer = asyncio.create_task(relay.consume())

    # --- job runner (node/jobs): claims and runs queued jobs; runner.queue submits ---
    runner = JobRunner(settings, node.index, node.stores)
    await runner.start()

    # --- triggers, study-stable, routes, route scheduler (after the runner, before ready) ---
    await automation.start(node.index.engine, runner.queue)

    # --- admin API (node/api): HTTP on this loop, token required; None without a port ---
    # (imported only when configured: FastAPI and uvicorn add ~12 MB to the node's RSS)
    api = None
    try:
        if settings.admin_api_port is not None:
            from node.api import start_admin_api

            api = await start_admin_api(
                settings,
                node,
                queue=runner.queue,
                routes=automation.routes,
                counters=lambda: relay.counters,
            )
    except OSError:  # its address is taken: stop what started, the caller reports it
        await automation.stop()
        await runner.stop(grace=0)
        workers.terminate()
        await loop.run_in_executor(None, node.stop)
        await loop.run_in_executor(None, workers.wait)
        raise

    logger.info("dicom-node ready on port %d", node.port)
    if ready is not None:
        ready.set()
    await stop.wait()
    logger.info("stopping: no new associations; letting running ones finish")

    # --- admin API: stop answering first (requests in flight get a few seconds) ---
    if api is not None:
        await api.stop()

    # --- triggers and routes: stop consuming, give up the scheduler's leadership ---
    await automation.stop()

    # --- job runner: running jobs finish their unit and are released for the next start ---
    await runner.stop(grace=settings.shutdown_grace)

    # --- ingest workers: SIGTERM now, so they finish their associations while the node does
    workers.terminate()
    await loop.run_in_executor(None, node.stop)
    await loop.run_in_executor(None, workers.wait)
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
