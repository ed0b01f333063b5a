"""``convert``: transcode the selected instances in place, or as copies into another AE.

In place, each instance is written as a new file through the AE's FileStore and indexed
(replacing the row of the same SOP Instance UID) before the old file is removed; a lossy
result gets a new SOP Instance UID (as gdcmconv does) and then replaces the original.

Parameters beyond the selection::

    "convert": {...}        see node.jobs.kinds.pipeline (flags as node-ctl convert)
    "to_ae": "AE" | null    ingest the converted copies into this AE instead
"""

from __future__ import annotations

import argparse
from typing import Any

from config.model import Settings
from node.jobs.kinds import pipeline
from node.jobs.kinds.base import InvalidJobParams, JobKind, storage_ae


class Convert(JobKind):
    name = "convert"
    help = "transcode stored instances in place or into another AE"
    keys = frozenset({"convert", "to_ae"})

    def _add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pipeline.add_convert_arguments(parser, required=True)
        parser.add_argument("--to-ae", metavar="AE", help="ingest copies into this AE")

    def _params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {"convert": pipeline.convert_from_args(ns), "to_ae": ns.to_ae}

    def _validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        step = pipeline.validate_convert(params.get("convert"))
        if step is None:
            raise InvalidJobParams("convert: a target transfer syntax is required")
        to_ae = None
        if params.get("to_ae"):
            to_ae = storage_ae(settings, params["to_ae"], "to_ae")
        return {"convert": step, "to_ae": to_ae}

    def start(self, ctx: Any, params: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        from node.jobs.work import TransformWork

        return TransformWork(ctx, params, checkpoint)


KIND = Convert()
