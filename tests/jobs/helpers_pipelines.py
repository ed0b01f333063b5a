"""Helpers for the trigger, study-stable and route tests: entries and ingest with a caller."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydicom.uid import generate_uid

from config.model import RouteEntry, TriggerEntry
from config.pipelines import parse_match
from tests.jobs.conftest import Env, encode, make_env
from tests.services.helpers import make_ct


def trigger(name: str, event: str, job: str, *matches: str) -> TriggerEntry:
    return TriggerEntry(
        name=name,
        event=event,  # type: ignore[arg-type]
        match=tuple(parse_match(m, name) for m in matches),
        job=tuple(job.split()),
    )


def route(name: str, *filters: str, **values: Any) -> RouteEntry:
    values.setdefault("source", "NODE")
    values.setdefault("destination", "DEST")
    return RouteEntry(name=name, filter=tuple(parse_match(f, name) for f in filters), **values)


def store_study(
    env: Env,
    n: int = 2,
    *,
    ae: str = "NODE",
    calling: str = "MOD1",
    study: str | None = None,
    **kw: Any,
) -> tuple[str, list[str]]:
    """Ingest ``n`` CT instances of one study as ``calling`` sent them; (study, SOP UIDs)."""
    study = study or generate_uid()
    series = generate_uid()
    entry = env.settings.ae(ae)
    assert entry is not None
    sops = []
    for i in range(n):
        ds = make_ct(study_uid=study, series_uid=series, **kw)
        ds.InstanceNumber = i + 1
        env.ingestor.store(
            entry, encode(ds), str(ds.file_meta.TransferSyntaxUID), calling_ae_title=calling
        )
        sops.append(str(ds.SOPInstanceUID))
    return study, sops


def pipeline_env(tmp_path: Path, url: str | None = None, **overrides: Any) -> Env:
    return make_env(tmp_path, url, **overrides)


__all__ = ["pipeline_env", "route", "store_study", "trigger"]
