"""The job runner: claims jobs from the queue and runs them, on the daemon's asyncio loop.

- **Claiming**: the loop polls ``JobQueue.claim`` (every ``poll`` seconds, and at once when
  a job is submitted through :meth:`JobRunner.submit` or ``submit_job`` on
  ``runner.queue``, or when a running job ends). At most ``job_workers`` jobs run at once,
  and at most ``job_concurrency[kind]`` of one kind: the claim only asks for kinds under
  their limit.
- **Running**: each job runs in a thread of its own (``node.jobs.work``: one unit per
  step); the CPU-bound part of a unit (anonymize, convert, render, export) goes to a
  process pool of ``job_workers`` processes (``forkserver`` context: the daemon has
  threads, so no plain ``fork``), the I/O-bound part (C-STORE, ingest) stays in the thread.
- **Lease**: each unit saves progress and its checkpoint, which extends the lease; a
  heartbeat on the loop every third of ``job_lease`` extends it during long units and
  picks up a cancel request.
- **Cancel**: a cancel requested through the queue is seen at the next save or heartbeat;
  the job stops after its current unit (a forward: after the instance in flight).
- **Shutdown**: :meth:`JobRunner.stop` asks running jobs to stop after their unit and
  releases them (``JobQueue.release``) so the next start resumes them from their
  checkpoint. A node killed with -9 releases nothing: its jobs are claimed again once
  their lease expires, and resume from their checkpoint too.

Owner ids are ``host:pid:random``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import secrets
import socket
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.model import Settings
from node.jobs.kinds import KINDS, InvalidJobParams, submit_job
from node.jobs.work import (
    JobCancelled,
    JobContext,
    JobFailure,
    JobReleased,
    Work,
)
from storage.files import FileStore
from storage.index import Index
from storage.ingest import Ingestor
from storage.jobs import JobError, JobQueue, JobView, LeaseLost

logger = logging.getLogger(__name__)


def make_owner() -> str:
    """This runner's owner id: ``host:pid:random``."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class _Running:
    """What the loop and a job's thread share about one running job."""

    job: JobView
    cancel: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    lost: threading.Event = field(default_factory=threading.Event)
    task: asyncio.Task[None] | None = None


class JobRunner:
    """Runs queued jobs of every kind in ``node.jobs.kinds.KINDS``.

    Parameters
    ----------
    settings
        ``job_workers``, ``job_concurrency`` and ``job_lease`` are read from here.
    index, stores
        The node's index and file stores (``Node.index``, ``Node.stores``).
    queue
        Defaults to a ``JobQueue`` on the index's engine.
    poll
        Seconds between claims when nothing wakes the runner.
    """

    def __init__(
        self,
        settings: Settings,
        index: Index,
        stores: dict[str, FileStore],
        *,
        queue: JobQueue | None = None,
        poll: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.stores = stores
        self.ingestor = Ingestor(index, stores)
        self.queue = queue or JobQueue(index.engine)
        # submit_job() on this queue wakes the runner (see node.jobs.kinds.submit_job).
        self.queue.on_submit = self.wake
        self.owner = owner or make_owner()
        self.workers = max(1, settings.job_workers or os.cpu_count() or 1)
        self.limits = dict(settings.job_concurrency)
        self.lease = float(settings.job_lease)
        self.poll = poll
        self.scratch_root = Path(settings.data_dir).resolve() / "jobs"
        self.running: dict[int, _Running] = {}
        #: Most jobs of each kind seen running at once (observability, tests).
        self.peak: dict[str, int] = {}
        self.finished = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._threads = ThreadPoolExecutor(max_workers=self.workers + 2, thread_name_prefix="job")
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start claiming and running jobs on the running loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._main(), name="job-runner")
        logger.info(
            "job runner %s: %d worker(s), limits %s, lease %gs",
            self.owner,
            self.workers,
            self.limits or "none",
            self.lease,
        )

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let running jobs finish their unit, release them; stop the pool."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        for running in self.running.values():
            running.stop.set()
        tasks = [r.task for r in self.running.values() if r.task is not None]
        if tasks:
            done, pending = await asyncio.wait(tasks, timeout=grace)
            for running in list(self.running.values()):
                # A unit that outlived the grace period: give the job back now; its thread
                # finds the lease gone at its next save and stops.
                await self._db(self._release, running.job.pk)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._shutdown_executors)
        logger.info("job runner %s stopped", self.owner)

    def _shutdown_executors(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None

    def wake(self) -> None:
        """Claim now (thread-safe): a job was submitted."""
        if self._loop is None or self._wake is None or self._loop.is_closed():
            return
        try:
            self._loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop closed meanwhile
            pass

    def submit(self, kind: str, params: dict[str, Any], origin: str, **kwargs: Any) -> int:
        """Validate and queue a job (``submit_job``), and wake the runner."""
        return submit_job(self.queue, self.settings, kind, params, origin, **kwargs)

    # -- claiming ------------------------------------------------------------------------

    def _limit(self, kind: str) -> int:
        return max(0, int(self.limits.get(kind, self.workers)))

    def _count(self, kind: str) -> int:
        return sum(1 for r in self.running.values() if r.job.kind == kind)

    def _claimable(self) -> list[str]:
        return [k for k in KINDS if self._count(k) < self._limit(k)]

    async def _main(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            self._wake.clear()
            try:
                await self._claim_all()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the index may be down for a while
                logger.exception("job runner: claiming failed; trying again")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll)
            except TimeoutError:
                pass

    async def _claim_all(self) -> None:
        while not self._stopping and len(self.running) < self.workers:
            kinds = self._claimable()
            if not kinds:
                return
            if not await self._db(self.queue.any_due, kinds):
                return
            job = await self._db(self.queue.claim, self.owner, kinds=kinds, lease=self.lease)
            if job is None:
                return
            if self._stopping:
                await self._db(self._release, job.pk)
                return
            running = _Running(job)
            self.running[job.pk] = running
            now = self._count(job.kind)
            self.peak[job.kind] = max(self.peak.get(job.kind, 0), now)
            running.task = asyncio.create_task(self._run(running), name=f"job-{job.pk}")

    # -- running -------------------------------------------------------------------------

    async def _db(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    async def _run(self, running: _Running) -> None:
        job = running.job
        loop = asyncio.get_running_loop()
        beat = asyncio.create_task(self._heartbeat(running))
        try:
            await loop.run_in_executor(self._threads, self._execute, running)
        except Exception:  # noqa: BLE001 - _execute records outcomes; this is a last resort
            logger.exception("job %d (%s): runner error", job.pk, job.kind)
        finally:
            beat.cancel()
            self.running.pop(job.pk, None)
            self.finished += 1
            if self._wake is not None:
                self._wake.set()

    async def _heartbeat(self, running: _Running) -> None:
        interval = max(0.2, self.lease / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                cancel = await self._db(
                    self.queue.heartbeat, running.job.pk, self.owner, lease=self.lease
                )
            except LeaseLost:
                running.lost.set()
                return
            except Exception:  # noqa: BLE001 - try again at the next beat
                logger.warning("job %d: heartbeat failed", running.job.pk, exc_info=True)
                continue
            if cancel:
                running.cancel.set()

    def _cpu(self, fn: Any, *args: Any) -> Future[Any]:
        """Run ``fn(*args)`` in the process pool (started on first use; replaced when a
        worker died, which breaks the whole pool)."""
        for _ in range(2):
            with self._pool_lock:
                if self._pool is None:
                    context = multiprocessing.get_context("forkserver")
                    context.set_forkserver_preload(["node.jobs.cpu"])
                    self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
                pool = self._pool
            try:
                return pool.submit(fn, *args)
            except BrokenProcessPool:
                logger.warning("job process pool broken (a worker died): starting a new one")
                with self._pool_lock:
                    if self._pool is pool:
                        self._pool = None
                pool.shutdown(wait=False, cancel_futures=True)
        raise BrokenProcessPool("the job process pool cannot be started")

    def _context(self, running: _Running) -> JobContext:
        job = running.job

        def save(done: int, total: int, checkpoint: dict[str, Any]) -> None:
            if running.lost.is_set():
                raise LeaseLost(f"job {job.pk} is no longer leased to {self.owner}")
            cancel = self.queue.heartbeat(
                job.pk, self.owner, lease=self.lease, done=done, total=total, checkpoint=checkpoint
            )
            if cancel or running.cancel.is_set():
                running.cancel.set()
                raise JobCancelled(f"job {job.pk} cancelled")
            if running.stop.is_set():
                raise JobReleased(f"job {job.pk} released: the runner is stopping")

        return JobContext(
            settings=self.settings,
            index=self.index,
            stores=self.stores,
            ingestor=self.ingestor,
            job_pk=job.pk,
            scratch=self.scratch_root / str(job.pk),
            save=save,
            cpu=self._cpu,
            pool_size=self.workers,
            log=logger,
        )

    def _execute(self, running: _Running) -> None:
        """Run one job to its end, in a job thread, and record how it ended."""
        job = running.job
        log_prefix = f"job {job.pk} ({job.kind}, attempt {job.attempts})"
        work: Work | None = None
        started = time.monotonic()
        try:
            kind = KINDS.get(job.kind)
            if kind is None:
                raise JobFailure(f"unknown job kind {job.kind!r}", retry=False)
            ctx = self._context(running)
            work = kind.start(ctx, dict(job.params), job.checkpoint)
            work.save()
            while not work.finished:
                if running.cancel.is_set():
                    raise JobCancelled("cancelled")
                if running.stop.is_set():
                    raise JobReleased("released")
                if running.lost.is_set():
                    raise LeaseLost(f"job {job.pk} lease lost")
                work.step()
            result = work.finish()
            result["seconds"] = round(time.monotonic() - started, 3)
            self.queue.succeed(job.pk, self.owner, result)
            logger.info("%s succeeded: %s", log_prefix, _summary(result))
        except JobReleased:
            self._release(job.pk)
            logger.info("%s released at shutdown", log_prefix)
        except JobCancelled:
            so_far = work.result() if work is not None else None
            self._record(self.queue.cancelled, job.pk, self.owner, so_far)
            logger.info("%s cancelled", log_prefix)
        except LeaseLost:
            logger.warning("%s: lease lost (taken over elsewhere); stopped", log_prefix)
        except JobFailure as exc:
            partial = exc.result if exc.result is not None else (work.result() if work else None)
            view = self._record(
                self.queue.fail, job.pk, self.owner, str(exc), retry=exc.retry, result=partial
            )
            state = view.state if view is not None else "?"
            logger.warning("%s failed (%s): %s", log_prefix, state, exc)
        except InvalidJobParams as exc:
            self._record(self.queue.fail, job.pk, self.owner, str(exc), retry=False)
            logger.warning("%s: invalid parameters: %s", log_prefix, exc)
        except Exception as exc:  # noqa: BLE001 - any other error: retried while attempts remain
            message = f"{type(exc).__name__}: {exc}"
            last: dict[str, Any] | None = None
            if work is not None:
                try:
                    last = work.result()
                except Exception:  # noqa: BLE001
                    last = None
            self._record(self.queue.fail, job.pk, self.owner, message, result=last)
            logger.exception("%s: error", log_prefix)
        finally:
            if work is not None:
                work.close()

    def _record(self, action: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return action(*args, **kwargs)
        except LeaseLost:
            logger.warning("job lease lost before its outcome was recorded")
        except JobError:
            logger.exception("recording a job outcome failed")
        return None

    def _release(self, pk: int) -> None:
        try:
            self.queue.release(pk, self.owner)
        except JobError:
            pass


def _summary(result: dict[str, Any]) -> str:
    keys = ("selected", "sent", "done", "deleted", "skipped", "failed", "warnings", "seconds")
    return ", ".join(f"{k} {result[k]}" for k in keys if k in result)


__all__ = ["JobRunner", "make_owner"]
