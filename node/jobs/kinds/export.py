"""``export``: the selected instances as DICOM media, a folder or a zip, with a DICOMDIR
(the code of ``node-ctl dicomdir --export``).

Parameters beyond the selection (exactly one of ``output`` and ``zip``)::

    "output": "/dir"          an empty (or new) folder
    "zip": "/file.zip"        a zip file (written beside, then renamed into place)
    "profile": "STD-GEN-CD"   media application profile
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from config.model import Settings
from node.jobs.kinds.anonymize import validate_output
from node.jobs.kinds.base import InvalidJobParams, JobKind


class Export(JobKind):
    name = "export"
    help = "export instances as a DICOM media folder or zip with a DICOMDIR"
    keys = frozenset({"output", "zip", "profile"})

    def _add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--export", "-o", "--output", dest="output", metavar="DIR")
        parser.add_argument("--zip", metavar="FILE")
        parser.add_argument("--profile", default="STD-GEN-CD")

    def _params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        def resolved(value: str | None) -> str | None:
            return str(Path(value).expanduser().resolve()) if value else None

        return {"output": resolved(ns.output), "zip": resolved(ns.zip), "profile": ns.profile}

    def _validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        output, zipped = params.get("output"), params.get("zip")
        if bool(output) == bool(zipped):
            raise InvalidJobParams("give exactly one of --export DIR and --zip FILE")
        out: dict[str, Any] = {"output": None, "zip": None}
        if output:
            out["output"] = validate_output(output)
            path = Path(out["output"])
            if path.is_dir() and any(path.iterdir()):
                raise InvalidJobParams(f"output: {path} is not empty")
        else:
            path = Path(str(zipped)).expanduser()
            if not path.is_absolute():
                raise InvalidJobParams("zip: must be an absolute path")
            if path.suffix.lower() != ".zip":
                raise InvalidJobParams("zip: the file name must end in .zip")
            out["zip"] = str(path)
        from node.tools.dicomdir import PROFILES

        profile = params.get("profile") or "STD-GEN-CD"
        profile = str(profile).upper()
        if profile not in PROFILES:
            raise InvalidJobParams(f"profile: one of {', '.join(sorted(PROFILES))}")
        out["profile"] = profile
        return out

    def start(self, ctx: Any, params: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        from node.jobs.work import ExportWork

        return ExportWork(ctx, params, checkpoint)


KIND = Export()
