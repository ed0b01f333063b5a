"""Pictures and media: a rendered PNG of an instance's frame, a study as a zip with DICOMDIR.

Both read the stored files (never the index alone) and do CPU work, so the endpoints are
plain functions that FastAPI runs in its thread pool, off the event loop.  The export is
built in a temporary folder (``node.tools.dicomdir.export_files``: ISO 9660 file IDs, the
profile's transfer syntaxes), zipped there and streamed from disk; the folder goes when the
answer has been sent.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import zipfile
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from node.api._context import ApiContext, get_context
from node.api._errors import NotFound
from node.tools.dicomdir import export_files
from node.tools.render import RenderOptions, encode_image, read_for_render, render

logger = logging.getLogger(__name__)

router = APIRouter(tags=["media"])

Ctx = Annotated[ApiContext, Depends(get_context)]
AeParam = Annotated[
    str | None, Query(description="AETable title whose records to use (default: the first)")
]
UidPath = Annotated[str, Path(max_length=64)]
_SAFE = re.compile(r"[^0-9A-Za-z.\-_]")


@router.get(
    "/instances/{uid}/rendered",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "the frame as an 8-bit PNG"},
        400: {"description": "frame out of range"},
        404: {"description": "no such instance"},
        409: {"description": "the instance has no pixel data that can be rendered"},
    },
    summary="Render a frame of an instance to PNG",
)
def rendered(
    ctx: Ctx,
    uid: UidPath,
    ae: AeParam = None,
    frame: Annotated[int, Query(ge=1, description="1-based frame number")] = 1,
    size: Annotated[
        int | None, Query(ge=1, le=8192, description="longest side at most N pixels")
    ] = None,
) -> Response:
    entry = ctx.ae_entry(ae)
    found = ctx.index.instances(entry.title, sop_uids=[uid])
    if not found:
        raise NotFound(f"{entry.title} holds no instance {uid}")
    path = ctx.stores[entry.title].absolute(found[0].path)
    ds = read_for_render(path)
    frames = render(ds, RenderOptions(frame=frame, max_size=size))
    return Response(encode_image(frames[0].image, "PNG"), media_type="image/png")


@router.get(
    "/studies/{uid}/export",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/zip": {}},
            "description": "a zip of the media folder: DICOMDIR and DICOM/PA.../IM...",
        },
        404: {"description": "no such study"},
    },
    summary="Export a study as a zip with a DICOMDIR",
)
def export_study(
    ctx: Ctx,
    uid: UidPath,
    ae: AeParam = None,
    profile: Annotated[str, Query(description="media application profile")] = "STD-GEN-CD",
) -> FileResponse:
    entry = ctx.ae_entry(ae)
    found = ctx.index.instances(entry.title, study_uids=[uid])
    if not found:
        raise NotFound(f"{entry.title} holds no study {uid}")
    store = ctx.stores[entry.title]
    folder = FsPath(tempfile.mkdtemp(prefix="node-export-"))
    try:
        media = folder / "media"
        report = export_files(
            [store.absolute(instance.path) for instance in found], media, profile=profile
        )
        archive = folder / "export.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            for file in sorted(media.rglob("*")):
                if file.is_file():
                    zf.write(file, file.relative_to(media).as_posix())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    logger.info(
        "export of study %s (%s): %d instance(s), %d skipped",
        uid,
        entry.title,
        report.referenced,
        len(report.skipped),
    )
    return FileResponse(
        archive,
        media_type="application/zip",
        filename=f"{_SAFE.sub('_', uid)}.zip",
        headers={
            "X-Instances": str(report.referenced),
            "X-Skipped": str(len(report.skipped)),
        },
        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True),
    )
