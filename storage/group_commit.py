"""Group commit: the index writes of several associations in one SQLite transaction.

Why: every C-STORE waits for its index commit, and SQLite commits one transaction at a
time, each with its own WAL fsync, while the other writers (threads, and ``IngestWorkers``
processes behind the same ``flock``) queue for the lock.  Whoever gets the write lock
runs every write queued by then, each in a SAVEPOINT of its own, and commits them with
one fsync; the others find their write done (or failed) when they get the lock in turn.
Nobody is answered before the commit that holds their write: the acknowledgement rule
is unchanged, only fsyncs are shared.

A write that fails rolls back its savepoint alone and raises in its own thread; a
commit that fails raises in every thread whose write it held.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection

T = TypeVar("T")


class _Write(Generic[T]):
    __slots__ = ("work", "done", "result", "error")

    def __init__(self, work: Callable[[Connection], T]) -> None:
        self.work = work
        self.done = False
        self.result: T | None = None
        self.error: BaseException | None = None


class GroupCommit:
    """Runs writes (callables taking the connection) in shared transactions.

    ``lock`` orders the writers (a thread lock, or ``node.workers.WriteLock`` across
    processes); ``begin`` opens a transaction (``Engine.begin``).
    """

    def __init__(
        self, lock: AbstractContextManager[Any], begin: Callable[[], AbstractContextManager[Any]]
    ) -> None:
        self.lock = lock
        self._begin = begin
        self._queued: list[_Write[Any]] = []
        self._queue_lock = threading.Lock()
        #: Size of the last batch committed (tests and profiling look at it).
        self.last_batch = 0

    def run(self, work: Callable[[Connection], T]) -> T:
        write: _Write[T] = _Write(work)
        with self._queue_lock:
            self._queued.append(write)
        with self.lock:
            if not write.done:
                # Taken once the lock is held: the writes queued while we waited for it
                # (this process's other associations) share this transaction.
                with self._queue_lock:
                    batch, self._queued = self._queued, []
                self._commit(batch)
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[return-value]

    def _commit(self, batch: list[_Write[Any]]) -> None:
        self.last_batch = len(batch)
        try:
            with self._begin() as conn:
                if len(batch) == 1:
                    batch[0].result = batch[0].work(conn)
                else:
                    for write in batch:
                        savepoint = conn.begin_nested()
                        try:
                            write.result = write.work(conn)
                        except Exception as exc:  # noqa: BLE001 - raised in its own thread
                            savepoint.rollback()
                            write.error = exc
                        else:
                            savepoint.commit()
        except BaseException as exc:  # the commit (or a lone write) failed: all of them
            for write in batch:
                write.error = write.error or exc
        finally:
            for write in batch:
                write.done = True
