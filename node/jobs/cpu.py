"""The CPU-bound unit of each kind, run in the runner's process pool.

Each function takes and returns plain values (paths as strings, parameter dicts), so it
pickles to a ``forkserver``/``spawn`` worker; heavy imports happen in the worker. Writes
are atomic (temp file then rename) so a killed worker leaves no partial output behind.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any


@lru_cache(maxsize=8)
def _deidentifier(step_json: str) -> Any:
    from node.jobs.kinds.pipeline import build_deidentifier

    return build_deidentifier(json.loads(step_json))


def _target_syntax(step: dict[str, Any], ds: Any) -> str:
    if step.get("transfer_syntax"):
        return str(step["transfer_syntax"])
    from node.tools.convert import NotAnImage, resolve_family

    family = str(step["family"])
    if family == "jpeg" and step.get("lossy") and "PixelData" not in ds:
        raise NotAnImage("no pixel data")
    return str(resolve_family(family, bool(step.get("lossy")), int(ds.get("BitsStored", 8) or 8)))


def process_instance(
    source: str, target: str, anonymize: dict[str, Any] | None, convert: dict[str, Any] | None
) -> dict[str, Any]:
    """De-identify and/or transcode ``source`` into ``target``; returns what came out.

    Result: ``sop_instance_uid``, ``study_instance_uid``, ``series_instance_uid``,
    ``transfer_syntax_uid`` of the output, and ``notes``; raises the tools' errors
    (``AnonymizeError``, ``ConvertError``) for an instance that cannot be processed.
    """
    from node.jobs.kinds.pipeline import transcode_options

    notes: list[str] = []
    dst = Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    if anonymize is None and convert is not None:
        from node.tools.convert import transcode_file

        result = transcode_file(
            Path(source),
            dst,
            convert.get("transfer_syntax"),
            transcode_options(convert),
            family=convert.get("family"),
            lossy=bool(convert.get("lossy")),
        )
        ds = result.dataset
        notes += result.notes
    else:
        from node.tools.anonymize.files import read_dicom, write_dicom

        ds = read_dicom(Path(source))
        if anonymize is not None:
            engine = _deidentifier(json.dumps(anonymize, sort_keys=True))
            notes += engine.deidentify(ds, in_place=True).notes
        if convert is not None:
            from node.tools.convert import transcode_dataset, write_dataset

            result = transcode_dataset(ds, _target_syntax(convert, ds), transcode_options(convert))
            ds = result.dataset
            notes += result.notes
            write_dataset(ds, dst)
        else:
            tmp = dst.with_name(dst.name + ".tmp")
            notes += write_dicom(ds, tmp)
            os.replace(tmp, dst)
    return {
        "sop_instance_uid": str(ds.SOPInstanceUID),
        "study_instance_uid": str(ds.StudyInstanceUID),
        "series_instance_uid": str(ds.get("SeriesInstanceUID", "")),
        "transfer_syntax_uid": str(ds.file_meta.TransferSyntaxUID),
        "notes": [str(n) for n in notes],
    }


def render_instance(source: str, target: str, params: dict[str, Any]) -> dict[str, Any]:
    """Render one frame of ``source`` (the middle one by default) to ``target``."""
    from node.tools.render import RenderOptions, encode_image, frame_count, read_for_render, render

    ds = read_for_render(Path(source))
    total = frame_count(ds)
    frame = params.get("frame") or (total // 2 + 1 if total > 1 else None)
    if frame is not None and frame > total:
        frame = total
    frames = render(ds, RenderOptions(frame=frame, max_size=int(params["size"])))
    fmt = "JPEG" if params.get("format") == "jpeg" else "PNG"
    data = encode_image(frames[0].image, fmt, quality=int(params.get("quality", 90)))
    dst = Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, dst)
    height, width = frames[0].image.shape[:2]
    return {"width": int(width), "height": int(height), "frame": frames[0].index + 1}


def export_instances(sources: list[str], out_dir: str, profile: str) -> dict[str, Any]:
    """Build a media folder with a DICOMDIR from ``sources`` (``node-ctl dicomdir --export``)."""
    from node.tools.dicomdir import export_files

    report = export_files([Path(s) for s in sources], Path(out_dir), profile=profile)
    return {
        "referenced": report.referenced,
        "converted": report.converted,
        "skipped": [str(s) for s in report.skipped][:100],
        "warnings": [str(w) for w in report.warnings][:100],
        "size": report.size,
    }


def zip_folder(folder: str, target: str) -> int:
    """Zip ``folder`` (its contents at the archive's root) into ``target``; returns the size."""
    import zipfile

    root = Path(folder)
    dst = Path(target)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".part")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, dst)
    return dst.stat().st_size


def warm_up() -> int:
    """Import what the workers need once (the pool calls this at start)."""
    import pydicom  # noqa: F401

    return os.getpid()
