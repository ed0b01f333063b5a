"""A real index and file stores (no DICOM listener) with a job runner on an asyncio loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.uid import generate_uid

from config.model import AEEntry, HostEntry, Settings
from node.app import open_storage
from node.jobs.runner import JobRunner
from storage.files import FileStore
from storage.index import Index
from storage.ingest import Ingestor
from storage.jobs import Backoff, JobQueue, JobView
from tests.services.helpers import make_ct


def encode(ds: Dataset) -> bytes:
    """The dataset encoded in its file meta's transfer syntax (no meta), as a C-STORE."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2"
    write_dataset(fp, ds)
    return fp.getvalue()


@dataclass
class Env:
    tmp_path: Path
    settings: Settings
    index: Index
    stores: dict[str, FileStore]
    queue: JobQueue
    runners: list[JobRunner] = field(default_factory=list)

    @property
    def ingestor(self) -> Ingestor:
        return Ingestor(self.index, self.stores)

    def add_study(
        self, n: int = 3, *, ae: str = "NODE", rows: int = 4, series: int = 1, **kw: Any
    ) -> tuple[str, list[str]]:
        """Ingest a synthetic CT study of ``n`` instances; returns (study UID, SOP UIDs)."""
        study = generate_uid()
        series_uids = [generate_uid() for _ in range(series)]
        sops = []
        entry = self.settings.ae(ae)
        assert entry is not None
        for i in range(n):
            ds = make_ct(study_uid=study, series_uid=series_uids[i % series], rows=rows, **kw)
            ds.InstanceNumber = i + 1
            self.ingestor.store(entry, encode(ds), str(ds.file_meta.TransferSyntaxUID))
            sops.append(str(ds.SOPInstanceUID))
        return study, sops

    def runner(self, **kwargs: Any) -> JobRunner:
        runner = JobRunner(
            self.settings, self.index, self.stores, queue=self.queue, poll=0.1, **kwargs
        )
        self.runners.append(runner)
        return runner

    def with_settings(self, **changes: Any) -> Env:
        """The same index and stores under changed settings (used by trigger tests)."""
        self.settings = self.settings.model_copy(update=changes)
        return self

    def run(
        self,
        pks: list[int],
        *,
        runner: JobRunner | None = None,
        timeout: float = 30.0,
        until: Callable[[list[JobView]], bool] | None = None,
        during: Callable[[JobRunner], None] | None = None,
    ) -> list[JobView]:
        """Run a runner on a fresh loop until the jobs are final (or ``until`` holds)."""
        runner = runner or self.runner()
        done = until or (lambda views: all(v.final for v in views))

        async def main() -> list[JobView]:
            await runner.start()
            deadline = time.monotonic() + timeout
            try:
                while True:
                    views = [self.queue.get(pk) for pk in pks]
                    if done(views):
                        return views
                    if during is not None:
                        during(runner)
                    if time.monotonic() > deadline:
                        raise AssertionError(f"jobs not done in {timeout}s: {views}")
                    await asyncio.sleep(0.05)
            finally:
                await runner.stop(grace=5)

        return asyncio.run(main())


def make_env(tmp_path: Path, database_url: str | None = None, **overrides: Any) -> Env:
    values: dict[str, Any] = {
        "network_tcp_port": 11112,
        "bind_address": "127.0.0.1",
        "data_dir": tmp_path / "var",
        "database_url": database_url,
        "ae_table": (
            AEEntry(title="NODE", storage_area=tmp_path / "store" / "NODE", access="RW"),
            AEEntry(title="COPY", storage_area=tmp_path / "store" / "COPY", access="RW"),
        ),
        "hosts": {},
        "job_workers": 2,
        "job_lease": 6.0,
    }
    values.update(overrides)
    settings = Settings(**values)
    index, stores = open_storage(settings)
    queue = JobQueue(index.engine, backoff=Backoff(base=0.3, ceiling=2.0))
    return Env(tmp_path, settings, index, stores, queue)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = make_env(tmp_path)
    yield e
    e.index.engine.dispose()


def peer_hosts(port: int, title: str = "DEST") -> dict[str, tuple[HostEntry, ...]]:
    return {"dest": (HostEntry(ae_title=title, hostname="127.0.0.1", port=port),)}


__all__ = ["Env", "encode", "make_env", "peer_hosts"]
