"""More processes on the DICOM port: associations spread over the CPUs (``IngestWorkers``).

Why: an association's work (PDU decoding, header parsing, SQL statements) is Python under
one GIL, so in one process four associations share one core and only add contention.
``IngestWorkers N`` runs the port in N processes: the daemon's own ``Node`` and N-1
workers.

How: the daemon binds the listening socket (``Node.start``), makes it non-blocking
(``Node.share_listener``) and starts the workers (``python -m node.workers``); each gets
the socket over a control socket (SCM_RIGHTS) once it is ready to serve and bound to die
with the daemon, and serves on it.  Every process waits for connections on the same
socket and the first one free to ``accept()`` takes the next connection, so a busy process
leaves new associations to the others.  Each worker is a whole ``Node``: every service and
AE title, the same access rules, TLS and user identity, on its own index engine.  What they
share is the database and the stores:

- SQLite allows one writer at a time across processes, and its busy handler sleeps (1, 2,
  5, 10 ms...) between attempts; ``WriteLock`` (a ``flock`` on ``<database>.writelock``)
  queues the writers of every process instead, as the in-process lock does for threads.
  PostgreSQL needs none;
- the stores: a worker never runs start-up recovery (the daemon did, before starting the
  workers; a worker doing it would delete the files other processes are ingesting).

Jobs, triggers, routes and the admin API stay in the daemon.  A worker's events
("instance-stored") come to the daemon over the control socket, one JSON line each, and go
to the daemon's own ``notify`` (its ``EventRelay``), as its own associations' do; triggers
read the ``ingest_events`` outbox that ``Index.record`` writes in the ingest's own
transaction, whichever process stored the instance.

Lifecycle: a worker that exits unexpectedly is started again (at most once a second).  On
stop each gets SIGTERM, lets its associations finish within ``ShutdownGrace`` (as
``Node.stop`` does) and exits; one still running ``KILL_AFTER`` seconds later is killed.  A
worker dies with the daemon (``PR_SET_PDEATHSIG``, and a check of its parent each second),
so a ``kill -9`` of the daemon leaves no process on the port.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from config.model import Settings

if TYPE_CHECKING:
    from node.app import Node

logger = logging.getLogger(__name__)

#: Seconds a worker gets beyond ShutdownGrace before it is killed.
KILL_AFTER = 5.0
#: Seconds the daemon waits for its workers to serve before it says it is ready.
START_TIMEOUT = 60.0
_ASK = b"listener?"
_READY = b"serving"
_PR_SET_PDEATHSIG = 1


class WriteLock:
    """One index writer at a time across threads and processes (SQLite).

    A ``threading.Lock`` orders the threads of this process (``flock`` is per open file, so
    it would let them all in), then an exclusive ``flock`` on ``path`` orders the processes.
    Both wake the next waiter as soon as the holder releases, unlike SQLite's busy handler.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> WriteLock:
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._thread_lock.release()


class Workers:
    """The worker processes of one daemon (none when ``IngestWorkers`` is 1)."""

    def __init__(
        self,
        settings: Settings,
        listener: socket.socket | None,
        count: int,
        notify: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.listener = listener
        self.count = count
        self.notify = notify
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self._stopping = threading.Event()
        self._monitor: threading.Thread | None = None

    def start(self) -> None:
        """Start the workers and wait (START_TIMEOUT) until each serves or has failed."""
        spawned = [self._spawn(slot) for slot in range(self.count)]
        deadline = time.monotonic() + START_TIMEOUT
        for slot, control in enumerate(spawned):
            self._hand_over(slot, control, deadline)
        if self.count:
            self._monitor = threading.Thread(target=self._watch, name="ingest-workers", daemon=True)
            self._monitor.start()
            logger.info("%d ingest worker process(es) share the DICOM port", self.count)

    def _spawn(self, slot: int) -> socket.socket:
        """Start worker ``slot``; returns our end of its control socket."""
        ours, theirs = socket.socketpair()
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "node.workers", "--worker", str(slot)),
                *("--control-fd", str(theirs.fileno()), "--parent", str(os.getpid())),
            ],
            stdin=subprocess.PIPE,
            pass_fds=(theirs.fileno(),),
        )
        theirs.close()
        assert proc.stdin is not None
        # Each process admits its share of MaxAssociations (see ``association_shares``).
        share = association_shares(self.settings.max_associations, self.count + 1)[slot + 1]
        mine = self.settings.model_copy(update={"max_associations": share})
        proc.stdin.write(mine.model_dump_json().encode())
        proc.stdin.close()
        self.procs[slot] = proc
        return ours

    def _hand_over(self, slot: int, control: socket.socket, deadline: float) -> None:
        """Give worker ``slot`` the listening socket once it asks, then wait until it serves.

        The socket is passed (SCM_RIGHTS) only when the worker has its PR_SET_PDEATHSIG in
        place: a worker that is still starting when the daemon dies must not keep the port
        listening (its backlog would take connections nobody serves).
        """
        assert self.listener is not None
        proc = self.procs[slot]
        assert proc is not None
        if _receive(control, deadline) != _ASK:
            logger.error("ingest worker %d (pid %d) did not start", slot, proc.pid)
            control.close()
            return
        socket.send_fds(control, [_ASK], [self.listener.fileno()])
        if _receive(control, deadline, len(_READY)) != _READY:
            logger.error("ingest worker %d (pid %d) did not start serving", slot, proc.pid)
            control.close()
            return
        threading.Thread(
            target=self._relay, args=(control,), name=f"ingest-worker-{slot}-events", daemon=True
        ).start()

    def _relay(self, control: socket.socket) -> None:
        """A worker's events, one JSON line each, to the daemon's ``notify``."""
        control.settimeout(None)
        with control, control.makefile("rb") as lines:
            for line in lines:
                try:
                    kind, info = json.loads(line)
                except ValueError:
                    logger.warning("ingest worker sent an unreadable event: %r", line[:200])
                    continue
                if self.notify is not None:
                    self.notify(kind, info)

    def _watch(self) -> None:
        while not self._stopping.wait(1.0):
            for slot, proc in enumerate(self.procs):
                if proc is not None and proc.poll() is not None and not self._stopping.is_set():
                    logger.error(
                        "ingest worker %d (pid %d) exited with code %s: starting it again",
                        slot,
                        proc.pid,
                        proc.returncode,
                    )
                    control = self._spawn(slot)
                    self._hand_over(slot, control, time.monotonic() + START_TIMEOUT)

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self.procs if proc is not None and proc.poll() is None]

    def terminate(self) -> None:
        """Ask every worker to stop (SIGTERM); they finish their associations meanwhile."""
        self._stopping.set()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)

    def wait(self) -> None:
        """Wait for the workers to exit (ShutdownGrace + KILL_AFTER), then kill the rest."""
        self.terminate()
        deadline = time.monotonic() + self.settings.shutdown_grace + KILL_AFTER
        for proc in self.procs:
            if proc is None:
                continue
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("ingest worker pid %d did not stop in time: killing it", proc.pid)
                proc.kill()
                proc.wait()
        if self._monitor is not None:
            self._monitor.join(timeout=2.0)

    def stop(self) -> None:
        self.terminate()
        self.wait()


def _receive(control: socket.socket, deadline: float, size: int = 64) -> bytes:
    """One message (at most ``size`` bytes) from the control socket, or b"" (closed, or
    nothing before ``deadline``)."""
    control.settimeout(max(0.001, deadline - time.monotonic()))
    try:
        return control.recv(size)
    except OSError:  # TimeoutError included
        return b""


def association_shares(limit: int, processes: int) -> list[int]:
    """``MaxAssociations`` split over the processes on the port, the first ones taking the
    remainder: together they never admit more than the configured limit (dcmqrscp's
    meaning); a process whose share is used up rejects (transient, local limit exceeded)."""
    return [limit // processes + (1 if i < limit % processes else 0) for i in range(processes)]


def start(settings: Settings, node: Node) -> Workers:
    """Start ``settings.ingest_workers - 1`` workers on ``node``'s listening socket.

    Returns once each serves (or failed to start: logged; the daemon serves regardless).
    Call it from the thread that lives as long as the daemon (its event loop's): Linux
    sends a worker PR_SET_PDEATHSIG when the thread that started it ends.  Never more
    processes than ``MaxAssociations``: each must be able to admit one association.
    """
    count = max(0, min(settings.ingest_workers, settings.max_associations) - 1)
    node.ae.maximum_associations = association_shares(settings.max_associations, count + 1)[0]
    listener = node.share_listener() if count else None
    workers = Workers(settings, listener, count, notify=node.context.notify)
    workers.start()
    return workers


# -- the worker process ----------------------------------------------------------------


def _die_with_parent() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent check below still applies
        pass


def _forwarder(control: socket.socket) -> Callable[[str, dict[str, Any]], None]:
    """``NodeContext.notify`` of a worker: the event goes to the daemon (``_relay``)."""
    lock = threading.Lock()
    control.settimeout(None)

    def forward(kind: str, info: dict[str, Any]) -> None:
        line = json.dumps([kind, info]).encode() + b"\n"
        with lock:
            try:
                control.sendall(line)
            except OSError:  # the daemon is gone: the parent check stops this worker
                pass

    return forward


def main(argv: list[str] | None = None) -> int:
    """A worker: serve the daemon's socket until SIGTERM/SIGINT or the daemon's end."""
    parser = argparse.ArgumentParser(prog="python -m node.workers")
    parser.add_argument("--worker", type=int, default=0)
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--parent", type=int, required=True, help="the daemon's pid")
    args = parser.parse_args(argv)
    _die_with_parent()
    parent = args.parent
    if os.getppid() != parent:  # the daemon died before PR_SET_PDEATHSIG was in place
        return 1
    control = socket.socket(fileno=args.control_fd)
    settings = Settings.model_validate_json(sys.stdin.buffer.read())
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s [worker {args.worker}] %(name)s: %(message)s",
        force=True,
    )
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())

    from node.app import Node  # after logging is set up: importing it configures pydicom

    node = Node(settings, recover=False)
    # Only now take the listening socket (see Workers._hand_over); a daemon that dies
    # from here on takes this process with it (PR_SET_PDEATHSIG).
    try:
        control.sendall(_ASK)
        _, fds, _, _ = socket.recv_fds(control, 64, 1)
    except OSError:
        fds = []
    if not fds:
        logger.error("no listening socket from the daemon: exiting")
        return 1
    node.start(listener=socket.socket(fileno=fds[0]))
    logger.info("ingest worker %d serving (pid %d)", args.worker, os.getpid())
    try:
        control.sendall(_READY)
    except OSError:  # the daemon is gone already
        stop.set()
    node.context.notify = _forwarder(control)
    while not stop.wait(1.0):
        if os.getppid() != parent:
            logger.warning("the daemon is gone: stopping")
            break
    node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
