"""``node-ctl render IN OUT``: a DICOM image to PNG, JPEG or PGM/PPM (dcm2pnm, gdcm2pnm).

The format comes from OUT's extension (.png, .jpg/.jpeg, .pgm/.ppm/.pnm).  Greyscale images
run the standard pipeline: Modality LUT, VOI, Presentation LUT shape, MONOCHROME1.  VOI flags
follow dcm2pnm (``+Wi``, ``+Ww``, ``+Wl``, ``+Wm``, ``+Wh``, ``-W``); without any, the file's
first window is used, else its first VOI LUT, else a histogram window.

A multi-frame image renders every frame unless ``--frame N``; OUT is then a pattern holding
``%d``/``%04d`` or ``{frame}`` (1-based), or gets ``_0001``... before its extension.

IN may be a folder (``-r`` for its sub-folders): OUT is then a folder that gets one image per
file, same relative path plus ``.png`` (``--format`` for another), rendered by ``-j`` worker
processes; a file that is not an image is reported and skipped.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from node.cli.commands._jobs import add_jobs_arg
from node.tools._parallel import parallel_map


def _size(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d*)x(\d*)", text.strip().lower())
    if not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"expected WxH (or Wx / xH), not {text!r}")
    return int(match.group(1) or 0), int(match.group(2) or 0)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "render",
        help="render a DICOM image to PNG, JPEG or PGM/PPM",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        prefix_chars="-+",  # DCMTK's +x flags
    )
    parser.add_argument("input", type=Path, help="DICOM file, or a folder of them")
    parser.add_argument(
        "output", type=Path, help="image file (.png .jpg .pgm .ppm .pnm), or a folder"
    )
    parser.add_argument("-r", "--recursive", action="store_true", help="folder: sub-folders too")
    parser.add_argument(
        "--format",
        choices=("png", "jpg", "pgm", "ppm", "pnm"),
        default="png",
        help="folder: the images' format (default png)",
    )
    add_jobs_arg(parser)
    parser.add_argument("+F", "--frame", type=int, metavar="N", help="render frame N (1-based)")
    voi = parser.add_argument_group("VOI (one of)")
    choice = voi.add_mutually_exclusive_group()
    choice.add_argument("+Wi", "--window", type=int, metavar="N", help="n-th window of the file")
    choice.add_argument("+Wl", "--voi-lut", type=int, metavar="N", help="n-th VOI LUT of the file")
    choice.add_argument("+Wm", "--minmax", action="store_true", help="min-max window")
    choice.add_argument(
        "+Wh",
        "--histogram",
        type=float,
        metavar="PCT",
        help="histogram window ignoring PCT%% of the pixels at each end",
    )
    choice.add_argument(
        "-W", "--no-windowing", action="store_true", help="map the whole modality range"
    )
    voi.add_argument(
        "+Ww", "--set-window", nargs=2, type=float, metavar=("C", "W"), help="center and width"
    )
    voi.add_argument("--window-center", type=float, metavar="C", help="with --window-width")
    voi.add_argument("--window-width", type=float, metavar="W", help="with --window-center")
    voi.add_argument(
        "--voi-function",
        choices=("LINEAR", "LINEAR_EXACT", "SIGMOID"),
        help="VOI LUT function (default: the file's, else LINEAR)",
    )
    parser.add_argument(
        "-M", "--no-modality", action="store_true", help="ignore the Modality LUT / rescale"
    )
    out = parser.add_argument_group("output")
    out.add_argument("--16bit", dest="bits16", action="store_true", help="16-bit PNG/PGM/PPM")
    out.add_argument("--quality", type=int, default=90, help="JPEG quality 1..100 (default 90)")
    out.add_argument("--scale", type=_size, metavar="WxH", help="fit inside WxH, aspect kept")
    out.add_argument("--max-size", type=int, metavar="N", help="longest side at most N")
    out.add_argument("--overlays", action="store_true", help="burn in overlay planes (60xx)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only errors")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from node.tools.render import RenderError, RenderOptions, render_file

    if (args.window_center is None) != (args.window_width is None):
        print("node-ctl render: --window-center and --window-width go together", file=sys.stderr)
        return 2
    if args.set_window is not None:
        if args.window_center is not None:
            print("node-ctl render: +Ww and --window-center exclude each other", file=sys.stderr)
            return 2
        args.window_center, args.window_width = args.set_window
    explicit = args.window_center is not None
    others = args.window or args.voi_lut or args.minmax or args.no_windowing
    if explicit and (others or args.histogram is not None):
        print("node-ctl render: choose one VOI option", file=sys.stderr)
        return 2
    if not args.input.is_file() and not args.input.is_dir():
        print(f"node-ctl render: {args.input}: no such file", file=sys.stderr)
        return 1
    if args.input.is_dir() and args.output.exists() and not args.output.is_dir():
        print("node-ctl render: IN is a folder, OUT must be one too", file=sys.stderr)
        return 2
    options = RenderOptions(
        frame=args.frame,
        center=args.window_center,
        width=args.window_width,
        window=args.window,
        voi_lut=args.voi_lut,
        minmax=args.minmax,
        histogram=args.histogram,
        no_voi=args.no_windowing,
        modality_lut=not args.no_modality,
        voi_function=args.voi_function,
        bits16=args.bits16,
        scale=args.scale,
        max_size=args.max_size,
        overlays=args.overlays,
    )
    if args.input.is_dir():
        return _render_folder(args, options)
    try:
        paths = render_file(args.input, args.output, options, quality=args.quality)
    except RenderError as exc:
        print(f"node-ctl render: {args.input}: {exc}", file=sys.stderr)
        return 1
    if not args.quiet:
        for path in paths:
            print(path)
    return 0


def _render_folder(args: argparse.Namespace, options: Any) -> int:
    """Every file of the folder IN into the folder OUT; 1 if one could not be rendered."""
    from node.tools.render import NoPixelData, RenderError, render_file

    source: Path = args.input
    pattern = "**/*" if args.recursive else "*"
    files = sorted(p for p in source.glob(pattern) if p.is_file() and not p.name.startswith("."))
    suffix = "." + args.format

    def one(path: Path) -> tuple[str, list[str]]:
        out = args.output / path.relative_to(source)
        out = out.with_name(out.name + suffix)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            written = render_file(path, out, options, quality=args.quality)
        except NoPixelData as exc:
            return "skipped", [f"node-ctl render: {path}: skipped: {exc}"]
        except RenderError as exc:
            return "failed", [f"node-ctl render: {path}: {exc}"]
        except OSError as exc:
            return "failed", [f"node-ctl render: {path}: {exc.strerror or exc}"]
        except Exception as exc:  # noqa: BLE001 - one line per file, never a traceback
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            return "failed", [f"node-ctl render: {path}: unexpected error: {first}"]
        return "done", [str(p) for p in written]

    failures = 0
    for status, lines in parallel_map(one, files, args.jobs):
        if status == "done":
            if not args.quiet:
                print("\n".join(lines))
            continue
        failures += status == "failed"
        print(lines[0], file=sys.stderr)
    return 1 if failures else 0
