"""``anonymize``: de-identify the selected instances into another AE's storage area (indexed
through the ingest path), a folder, or a peer (then it is a ``forward`` with the step on).

Parameters beyond the selection (exactly one of ``to_ae``, ``output``, ``destination``)::

    "to_ae": "AE"           an AETable title: copies are ingested there
    "output": "/dir"        a folder: <output>/<StudyUID>/<SeriesUID>/<SOPUID>.dcm (new UIDs)
    "destination": "PEER"   a peer AE (C-STORE, as forward); "calling_aet" as forward
    "anonymize": {...}      see node.jobs.kinds.pipeline (flags as node-ctl anonymize)
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from config.model import Settings
from node.jobs.kinds import pipeline
from node.jobs.kinds.base import InvalidJobParams, JobKind, peer_ae, storage_ae
from node.jobs.kinds.forward import add_destination_arguments, validate_calling


def validate_output(value: Any, what: str = "output") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidJobParams(f"{what}: a path is required")
    path = Path(value).expanduser()
    if not path.is_absolute():
        raise InvalidJobParams(f"{what}: {value!r} must be an absolute path (the node resolves it)")
    if path.exists() and not path.is_dir():
        raise InvalidJobParams(f"{what}: {value} exists and is not a folder")
    return str(path)


class Anonymize(JobKind):
    name = "anonymize"
    help = "de-identify instances into another AE, a folder or a peer"
    keys = frozenset({"to_ae", "output", "destination", "calling_aet", "anonymize"})

    def _add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--to-ae", metavar="AE", help="ingest the copies into this AE")
        parser.add_argument("-o", "--output", metavar="DIR", help="write the copies to DIR")
        add_destination_arguments(parser, required=False)
        pipeline.add_anonymize_arguments(parser, switch=False)

    def _params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        output = str(Path(ns.output).expanduser().resolve()) if ns.output else None
        return {
            "to_ae": ns.to_ae,
            "output": output,
            "destination": ns.destination,
            "calling_aet": ns.calling_aet,
            "anonymize": pipeline.anonymize_from_args(ns, switch=False),
        }

    def _validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        targets = [k for k in ("to_ae", "output", "destination") if params.get(k)]
        if len(targets) != 1:
            raise InvalidJobParams("give exactly one of --to-ae, --output and --destination")
        out: dict[str, Any] = {"to_ae": None, "output": None, "destination": None}
        if params.get("to_ae"):
            out["to_ae"] = storage_ae(settings, params["to_ae"], "to_ae")
            selection_ae = params.get("ae") or settings.ae_table[0].title
            if out["to_ae"] == selection_ae:
                raise InvalidJobParams("to_ae: must differ from the selection's AE")
        if params.get("output"):
            out["output"] = validate_output(params["output"])
        if params.get("destination"):
            out["destination"] = peer_ae(settings, params["destination"])
        out["calling_aet"] = validate_calling(params.get("calling_aet"))
        out["anonymize"] = pipeline.validate_anonymize(params.get("anonymize") or True)
        return out

    def start(self, ctx: Any, params: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        from node.jobs.work import ForwardWork, TransformWork

        if params.get("destination"):
            return ForwardWork(ctx, {**params, "convert": None}, checkpoint)
        return TransformWork(ctx, params, checkpoint)


KIND = Anonymize()
