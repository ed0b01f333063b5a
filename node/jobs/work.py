"""The work of each kind, one unit per ``step()``, resumable from a checkpoint.

A ``Work`` is built from a job's parameters and its last checkpoint; the runner calls
``step()`` until ``finished``, then ``finish()`` for the result. Each unit ends with
``ctx.save(...)``: progress and checkpoint go to the job row (and the lease is extended)
before the next unit starts, so a node killed at any point resumes after the last saved
unit. ``ctx.save`` raises :class:`JobCancelled` when a cancel was requested and
:class:`JobReleased` when the runner is shutting down.

The checkpoint of every kind holds ``done``: the SOP Instance UIDs finished for good;
a resumed job skips them. A forward saves after *every* instance the peer acknowledged
(so at most the one in flight at a crash is sent twice); the others save after each chunk
(their units are idempotent: an ingest of the same SOP Instance UID replaces, a render
overwrites).

Errors a Work raises::

    JobInterrupted
     +-- JobCancelled    a cancel was requested: stop, record "cancelled"
     +-- JobReleased     the runner is stopping: give the job back untouched
    JobFailure(message, retry, result)
                         the attempt failed; ``retry``: queue again with backoff
"""

from __future__ import annotations

import logging
import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config.model import Settings
from node.jobs import cpu
from node.jobs.derived import derived_path, remove_derived
from storage.files import FileStore, path_component
from storage.index import Index, StoredInstance
from storage.ingest import IngestError, Ingestor, Received

logger = logging.getLogger(__name__)

#: At most this many UIDs and messages are kept in a result's ``errors``.
MAX_ERRORS = 50


class JobInterrupted(Exception):
    """The job must stop before its end (not a failure)."""


class JobCancelled(JobInterrupted):
    """A cancel was requested."""


class JobReleased(JobInterrupted):
    """The runner is shutting down: the job goes back to the queue as it is."""


class JobFailure(Exception):
    """An attempt failed; ``retry`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retry: bool, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.result = result


@dataclass
class JobContext:
    """What a job's work may use: the node's storage, the process pool, a scratch folder.

    ``save(done, total, checkpoint)`` records progress and the checkpoint (see module doc).
    ``cpu(fn, *args)`` runs ``fn`` in the process pool and returns its future.
    """

    settings: Settings
    index: Index
    stores: dict[str, FileStore]
    ingestor: Ingestor
    job_pk: int
    scratch: Path
    save: Callable[[int, int, dict[str, Any]], None]
    cpu: Callable[..., Future[Any]]
    pool_size: int = 2
    log: logging.Logger | logging.LoggerAdapter[Any] = field(default=logger)


def _select(ctx: JobContext, params: dict[str, Any]) -> list[StoredInstance]:
    return ctx.index.instances(
        params["ae"],
        study_uids=params.get("studies") or (),
        series_uids=params.get("series") or (),
        sop_uids=params.get("instances") or (),
    )


def _error_text(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


class Work:
    """One job's work over the selected instances; subclasses define ``_unit``."""

    #: Instances per step.
    chunk = 16

    def __init__(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> None:
        self.ctx = ctx
        self.params = params
        self.ae: str = params["ae"]
        self.store = ctx.stores[self.ae]
        cp = dict(checkpoint or {})
        self.state: dict[str, Any] = cp
        self.done: list[str] = list(cp.get("done") or [])
        self.skipped: dict[str, str] = dict(cp.get("skipped") or {})
        #: Failed in this attempt (retried by the next one, so not in the checkpoint).
        self.failed: dict[str, str] = {}
        #: A file vanished under this attempt (the instance was replaced or deleted meanwhile):
        #: the next attempt, which selects afresh, may well succeed.
        self.vanished = False
        instances = _select(ctx, params)
        finished = set(self.done) | set(self.skipped)
        self.total = len(instances)
        self.pending: deque[StoredInstance] = deque(
            i for i in instances if i.sop_instance_uid not in finished
        )
        if ctx.scratch.exists():
            shutil.rmtree(ctx.scratch, ignore_errors=True)

    # -- the runner's side ---------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return not self.pending

    @property
    def progress(self) -> int:
        return len(self.done) + len(self.skipped) + len(self.failed)

    def checkpoint(self) -> dict[str, Any]:
        return {**self.state, "done": self.done, "skipped": self.skipped}

    def save(self) -> None:
        self.ctx.save(self.progress, self.total, self.checkpoint())

    def step(self) -> None:
        """Do one unit: the next chunk of instances."""
        size = max(1, self.chunk)
        batch = self._current([self.pending.popleft() for _ in range(min(size, len(self.pending)))])
        if batch:
            self._unit(batch)
        self.save()

    def _current(self, batch: list[StoredInstance]) -> list[StoredInstance]:
        """The batch as the index holds it now: since the selection, a C-STORE or another job
        may have replaced an instance (a new file name) or deleted it."""
        uids = [inst.sop_instance_uid for inst in batch]
        now = {i.sop_instance_uid: i for i in self.ctx.index.instances(self.ae, sop_uids=uids)}
        for uid in uids:
            if uid not in now:
                self.skipped[uid] = "no longer stored"
        return [now[uid] for uid in uids if uid in now]

    def result(self) -> dict[str, Any]:
        return {
            "selected": self.total,
            "done": len(self.done),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "errors": dict(list({**self.skipped, **self.failed}.items())[:MAX_ERRORS]),
        }

    def finish(self) -> dict[str, Any]:
        """The result; raises :class:`JobFailure` when instances failed in this attempt."""
        result = self.result()
        if self.failed:
            raise JobFailure(
                f"{len(self.failed)} of {self.total} instance(s) failed: "
                + next(iter(self.failed.values())),
                retry=self.vanished,
                result=result,
            )
        return result

    def close(self) -> None:
        shutil.rmtree(self.ctx.scratch, ignore_errors=True)

    # -- for subclasses -------------------------------------------------------------------

    def _unit(self, batch: list[StoredInstance]) -> None:
        raise NotImplementedError

    def _source(self, inst: StoredInstance) -> Path:
        return self.store.absolute(inst.path)

    def _scratch_file(self, inst: StoredInstance, suffix: str = ".dcm") -> Path:
        self.ctx.scratch.mkdir(parents=True, exist_ok=True)
        return self.ctx.scratch / f"{path_component(inst.sop_instance_uid)}{suffix}"

    def _parallel(
        self, batch: Iterable[StoredInstance], submit: Callable[[StoredInstance], Future[Any]]
    ) -> list[tuple[StoredInstance, Any | BaseException]]:
        """Submit one CPU task per instance, then collect them in order."""
        futures = [(inst, submit(inst)) for inst in batch]
        out: list[tuple[StoredInstance, Any | BaseException]] = []
        for inst, future in futures:
            try:
                out.append((inst, future.result()))
            except BrokenProcessPool as exc:
                # A worker died (killed, out of memory): not this instance's fault.
                for _, rest in futures:
                    rest.cancel()
                raise JobFailure(f"a job worker process died: {exc}", retry=True) from exc
            except Exception as exc:  # noqa: BLE001 - per-instance outcome, reported
                self.vanished |= not self._source(inst).exists()
                out.append((inst, exc))
        return out


# --------------------------------------------------------------------------- forward


class ForwardWork(Work):
    """C-STORE to a peer; with a pipeline, each chunk is processed in the pool first."""

    chunk = 32

    def __init__(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> None:
        super().__init__(ctx, params, checkpoint)
        self.anonymize: dict[str, Any] | None = params.get("anonymize")
        self.convert: dict[str, Any] | None = params.get("convert")
        self.warnings = int(self.state.get("warnings", 0))
        self.study_map: dict[str, str] = dict(self.state.get("study_map") or {})
        self.refused = 0
        if self.anonymize or self.convert:
            self.chunk = max(4, 2 * ctx.pool_size)
        self.peer = self._peer()

    def _peer(self) -> Any:
        from node.scu import Peer

        title = self.params["destination"]
        entry = self.ctx.settings.move_destination(title)
        if entry is None:
            raise JobFailure(
                f"destination {title} is no longer in the AETable/HostTable", retry=False
            )
        s = self.ctx.settings
        return Peer(
            host=entry.hostname,
            port=entry.port,
            called_ae=entry.ae_title,
            calling_ae=self.params.get("calling_aet") or self.ae,
            connect_timeout=s.acse_timeout,
            acse_timeout=s.acse_timeout,
            dimse_timeout=s.dimse_timeout,
            network_timeout=s.network_timeout,
            max_pdu=s.max_pdu_size,
        )

    def checkpoint(self) -> dict[str, Any]:
        return {**super().checkpoint(), "warnings": self.warnings, "study_map": self.study_map}

    def _unit(self, batch: list[StoredInstance]) -> None:
        from node.scu import ScuError, store

        sources: dict[str, StoredInstance] = {}
        if self.anonymize or self.convert:
            results = self._parallel(
                batch,
                lambda inst: self.ctx.cpu(
                    cpu.process_instance,
                    str(self._source(inst)),
                    str(self._scratch_file(inst)),
                    self.anonymize,
                    self.convert,
                ),
            )
            for inst, outcome in results:
                if isinstance(outcome, BaseException):
                    self.failed[inst.sop_instance_uid] = _error_text(outcome)
                    continue
                if self.anonymize:
                    self.study_map[inst.study_instance_uid] = outcome["study_instance_uid"]
                sources[str(self._scratch_file(inst))] = inst
        else:
            sources = {str(self._source(inst)): inst for inst in batch}
        if not sources:
            return

        def acknowledged(_done: int, _total: int, outcome: Any) -> None:
            inst = sources.get(outcome.source)
            if inst is None:
                return
            uid = inst.sop_instance_uid
            if outcome.ok:
                self.done.append(uid)
                if outcome.warning or outcome.converted_from:
                    self.warnings += 1
            else:
                self.refused += 1
                status = f"status 0x{outcome.status:04X}" if outcome.status is not None else ""
                self.failed[uid] = outcome.error or f"refused by the peer ({status})"
            # Saved before the next C-STORE goes out: a restart never re-sends this one.
            self.save()

        try:
            report = store(self.peer, [Path(p) for p in sources], on_progress=acknowledged)
        except ScuError as exc:
            raise JobFailure(
                f"{self.peer.address}: {_error_text(exc)}", retry=True, result=self.result()
            ) from exc
        for outcome in report.outcomes:
            unsent = sources.get(outcome.source)
            if outcome.skipped and unsent is not None:
                self.failed[unsent.sop_instance_uid] = outcome.error or "not sendable"
        for path in sources:
            if self.anonymize or self.convert:
                Path(path).unlink(missing_ok=True)

    def result(self) -> dict[str, Any]:
        out = super().result()
        out.update(
            {
                "destination": self.params["destination"],
                "sent": len(self.done),
                "warnings": self.warnings,
            }
        )
        if self.anonymize:
            out["study_uid_map"] = dict(self.study_map)
            out["new_study_uids"] = sorted(set(self.study_map.values()))
        return out

    def finish(self) -> dict[str, Any]:
        if self.refused:
            raise JobFailure(
                f"{self.refused} instance(s) refused by {self.peer.address}: "
                + next(iter(self.failed.values())),
                retry=True,
                result=self.result(),
            )
        return super().finish()


# --------------------------------------------------------------------------- anonymize / convert


class TransformWork(Work):
    """Anonymize and/or convert each instance, into another AE, a folder, or in place."""

    def __init__(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> None:
        super().__init__(ctx, params, checkpoint)
        self.anonymize: dict[str, Any] | None = params.get("anonymize")
        self.convert: dict[str, Any] | None = params.get("convert")
        self.to_ae: str | None = params.get("to_ae")
        self.output: Path | None = Path(params["output"]) if params.get("output") else None
        self.study_map: dict[str, str] = dict(self.state.get("study_map") or {})
        self.chunk = max(4, 2 * ctx.pool_size)

    def checkpoint(self) -> dict[str, Any]:
        return {**super().checkpoint(), "study_map": self.study_map}

    def _unit(self, batch: list[StoredInstance]) -> None:
        from node.tools.convert import NotAnImage

        results = self._parallel(
            batch,
            lambda inst: self.ctx.cpu(
                cpu.process_instance,
                str(self._source(inst)),
                str(self._scratch_file(inst)),
                self.anonymize,
                self.convert,
            ),
        )
        for inst, outcome in results:
            uid = inst.sop_instance_uid
            produced = self._scratch_file(inst)
            try:
                if isinstance(outcome, NotAnImage) and self.convert and not self.anonymize:
                    self.skipped[uid] = f"not converted: {_error_text(outcome)}"
                    continue
                if isinstance(outcome, BaseException):
                    self.failed[uid] = _error_text(outcome)
                    continue
                self._place(inst, produced, outcome)
                if self.anonymize:
                    self.study_map[inst.study_instance_uid] = outcome["study_instance_uid"]
                self.done.append(uid)
            except (IngestError, OSError) as exc:
                self.failed[uid] = _error_text(exc)
            finally:
                produced.unlink(missing_ok=True)

    def _place(self, inst: StoredInstance, produced: Path, info: dict[str, Any]) -> None:
        if self.output is not None:
            target = (
                self.output
                / path_component(info["study_instance_uid"])
                / path_component(info["series_instance_uid"] or "series")
                / f"{path_component(info['sop_instance_uid'])}.dcm"
            )
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(produced), target)
            return
        title = self.to_ae or self.ae
        entry = self.ctx.settings.ae(title)
        if entry is None:
            raise IngestError(f"AE {title} is no longer in the AETable")
        # The ingest path: durable write, index commit, then the replaced file (the same
        # SOP Instance UID: an in-place conversion) is removed.
        self.ctx.ingestor.store(
            entry,
            Received.from_file(produced),
            info["transfer_syntax_uid"],
            calling_ae_title=self.ae,
        )
        if self.to_ae is None and info["sop_instance_uid"] != inst.sop_instance_uid:
            # A lossy conversion gets a new SOP Instance UID: it replaces the original.
            for path in self.ctx.index.delete_instances(self.ae, [inst.sop_instance_uid]):
                self.store.delete(path)
            remove_derived(self.store, inst.study_instance_uid, inst.sop_instance_uid)

    def result(self) -> dict[str, Any]:
        out = super().result()
        if self.anonymize:
            out["study_uid_map"] = dict(self.study_map)
            out["new_study_uids"] = sorted(set(self.study_map.values()))
        target = self.to_ae or (str(self.output) if self.output else f"{self.ae} (in place)")
        out["target"] = target
        return out


# --------------------------------------------------------------------------- render


class RenderWork(Work):
    def __init__(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> None:
        super().__init__(ctx, params, checkpoint)
        self.chunk = max(4, 2 * ctx.pool_size)
        self.ext = "jpg" if params.get("format") == "jpeg" else "png"

    def target(self, inst: StoredInstance) -> Path:
        return derived_path(
            self.store,
            self.params["name"],
            inst.study_instance_uid,
            inst.sop_instance_uid,
            self.ext,
        )

    def _unit(self, batch: list[StoredInstance]) -> None:
        from node.tools.render import NoPixelData, UnsupportedImage

        results = self._parallel(
            batch,
            lambda inst: self.ctx.cpu(
                cpu.render_instance, str(self._source(inst)), str(self.target(inst)), self.params
            ),
        )
        for inst, outcome in results:
            uid = inst.sop_instance_uid
            if isinstance(outcome, (NoPixelData, UnsupportedImage)):
                self.skipped[uid] = f"not rendered: {_error_text(outcome)}"
            elif isinstance(outcome, BaseException):
                self.failed[uid] = _error_text(outcome)
            else:
                self.done.append(uid)

    def result(self) -> dict[str, Any]:
        out = super().result()
        out["folder"] = str(self.store.area / ".derived" / self.params["name"])
        return out


# --------------------------------------------------------------------------- export


class ExportWork(Work):
    """Two units: build the media folder (in the pool), then zip it or move it into place."""

    def __init__(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> None:
        super().__init__(ctx, params, checkpoint)
        self.sources = [self._source(i) for i in self.pending]
        self.stage_dir = Path((params["output"] or params["zip"]) + f".partial-{ctx.job_pk}")
        self.report: dict[str, Any] = dict(self.state.get("report") or {})
        self.stage: str = self.state.get("stage", "start")
        if self.stage == "exported" and not self.stage_dir.is_dir():
            self.stage = "start"  # the staging folder went away: build it again
        if self.stage == "start" and self.total == 0:
            raise JobFailure("nothing selected to export", retry=False)

    @property
    def finished(self) -> bool:
        return self.stage == "placed"

    @property
    def progress(self) -> int:
        return {"start": 0, "exported": max(0, self.total - 1)}.get(self.stage, self.total)

    def checkpoint(self) -> dict[str, Any]:
        return {"stage": self.stage, "report": self.report}

    def step(self) -> None:
        if self.stage == "start":
            shutil.rmtree(self.stage_dir, ignore_errors=True)
            future = self.ctx.cpu(
                cpu.export_instances,
                [str(p) for p in self.sources],
                str(self.stage_dir),
                self.params["profile"],
            )
            try:
                self.report = future.result()
            except Exception as exc:
                shutil.rmtree(self.stage_dir, ignore_errors=True)
                raise JobFailure(f"export: {_error_text(exc)}", retry=False) from exc
            self.stage = "exported"
        elif self.stage == "exported":
            if self.params.get("zip"):
                size = self.ctx.cpu(cpu.zip_folder, str(self.stage_dir), self.params["zip"])
                self.report["zip_size"] = size.result()
                shutil.rmtree(self.stage_dir, ignore_errors=True)
            else:
                output = Path(self.params["output"])
                if output.is_dir() and not any(output.iterdir()):
                    output.rmdir()
                if output.exists():
                    raise JobFailure(f"{output} appeared meanwhile: not overwritten", retry=False)
                os.replace(self.stage_dir, output)
            self.stage = "placed"
        self.save()

    def finish(self) -> dict[str, Any]:
        return {
            "selected": self.total,
            "output": self.params.get("output") or self.params.get("zip"),
            **self.report,
        }

    def close(self) -> None:
        super().close()
        if self.stage != "exported":
            shutil.rmtree(self.stage_dir, ignore_errors=True)


# --------------------------------------------------------------------------- delete


class DeleteWork(Work):
    """Index rows first, then files: the files a chunk will free are saved in the
    checkpoint before the rows go, so a crash in between leaves no orphan after resume."""

    chunk = 200

    def __init__(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> None:
        super().__init__(ctx, params, checkpoint)
        self.deleted = int(self.state.get("deleted", 0))
        self.total += self.deleted
        self.files: list[list[str]] = list(self.state.get("files") or [])
        if self.files:
            self._remove_files()

    @property
    def progress(self) -> int:
        return self.deleted

    def checkpoint(self) -> dict[str, Any]:
        return {"deleted": self.deleted, "files": self.files}

    def _remove_files(self) -> None:
        for path, study, sop in self.files:
            if not self.ctx.index.has_path(self.ae, path):
                self.store.delete(path)
                remove_derived(self.store, study, sop)
        self.files = []

    def _unit(self, batch: list[StoredInstance]) -> None:
        self.files = [[i.path, i.study_instance_uid, i.sop_instance_uid] for i in batch]
        self.save()
        self.ctx.index.delete_instances(self.ae, [i.sop_instance_uid for i in batch])
        self.deleted += len(batch)
        self._remove_files()

    def finish(self) -> dict[str, Any]:
        return {"selected": self.total, "deleted": self.deleted}


__all__ = [
    "DeleteWork",
    "ExportWork",
    "ForwardWork",
    "JobCancelled",
    "JobContext",
    "JobFailure",
    "JobInterrupted",
    "JobReleased",
    "RenderWork",
    "TransformWork",
    "Work",
]
