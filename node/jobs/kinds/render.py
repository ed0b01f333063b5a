"""``render``: thumbnails/previews kept with each instance.

Images go to ``<storage area>/.derived/<kind>/<xx>/<SOPInstanceUID digest>.<ext>`` beside
the AE's store (``node.jobs.derived``), where the store's recovery and ``node-ctl db
check`` do not look; ``delete`` removes them with their instance.

Parameters beyond the selection::

    "size": 256          longest side in pixels (aspect kept)
    "format": "png"      "png" or "jpeg"
    "frame": null        1-based frame of multi-frame images (default: the middle one)
    "quality": 90        JPEG quality
    "name": "thumbnail"  the derived kind (folder): several sizes can live side by side
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from config.model import Settings
from node.jobs.kinds.base import InvalidJobParams, JobKind

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


class Render(JobKind):
    name = "render"
    help = "render thumbnails/previews kept with each instance"
    keys = frozenset({"size", "format", "frame", "quality", "name"})

    def _add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--size", "--max-size", dest="size", type=int, default=256)
        parser.add_argument("--format", choices=("png", "jpeg"), default="png")
        parser.add_argument("+F", "--frame", type=int, metavar="N", help="1-based frame")
        parser.add_argument("--quality", type=int, default=90, help="JPEG quality")
        parser.add_argument("--name", default="thumbnail", help="derived kind (folder name)")

    def _params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {
            "size": ns.size,
            "format": ns.format,
            "frame": ns.frame,
            "quality": ns.quality,
            "name": ns.name,
        }

    def _validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        size = params.get("size", 256)
        if not isinstance(size, int) or not 8 <= size <= 8192:
            raise InvalidJobParams("size: an integer from 8 to 8192")
        fmt = params.get("format", "png")
        if fmt not in ("png", "jpeg"):
            raise InvalidJobParams("format: png or jpeg")
        frame = params.get("frame")
        if frame is not None and (not isinstance(frame, int) or frame < 1):
            raise InvalidJobParams("frame: a frame number from 1")
        quality = params.get("quality", 90)
        if not isinstance(quality, int) or not 1 <= quality <= 100:
            raise InvalidJobParams("quality: 1 to 100")
        name = params.get("name", "thumbnail")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidJobParams("name: lower-case letters, digits, - and _ (32 at most)")
        return {"size": size, "format": fmt, "frame": frame, "quality": quality, "name": name}

    def start(self, ctx: Any, params: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        from node.jobs.work import RenderWork

        return RenderWork(ctx, params, checkpoint)


KIND = Render()
