"""Offline tools: ``node-ctl`` anonymize / convert / render / dicomdir against the C++ tools.

Each line of the table is one job done on the same files by ``node-ctl`` and by the tool
it replaces, in the same run, fresh output folder each time, in a rotating order:

- ``anonymize``: ``node-ctl anonymize IN OUT -r`` (PS3.15 basic profile, reversible with a
  certificate) and ``gdcmanon -e -c cert.pem -r -i IN -o OUT`` (it refuses to de-identify
  without a certificate, so both encrypt the originals into the Encrypted Attributes
  Sequence, AES-256 for both);
- ``convert``: ``node-ctl convert --jpegls -r IN OUT`` (JPEG-LS lossless) and
  ``gdcmconv --jpegls IN OUT`` per file (it takes one file at a time);
- ``render``: ``node-ctl render +Wi 1 IN OUT`` (a folder of PNG) and
  ``dcm2pnm +Wi 1 +on IN OUT.png`` per file (the file's first window, 8-bit PNG);
- ``dicomdir``: ``node-ctl dicomdir DIR`` (in place), ``dcmmkdir +r +id DIR``, and
  ``gdcmgendir -r -i DIR -o DICOMDIR``.

Files: ``--tools-count`` (1,000) synthetic CT instances of ``bench/datasets.py`` (512x512,
16-bit, Explicit VR Little Endian, 0.5 MB, eight different pixel images), ten studies of
one series, in ISO 9660 names (``ST000/IM000001``) so that every DICOMDIR tool takes them
as they are.  Synthetic rather than the corpus because every tool must be able to do the
job on every file (the corpus holds files that some tools refuse, for different reasons,
which would make the counts differ).

The C++ tools run the way they are used: one process over the folder where the tool takes
a folder (gdcmanon, dcmmkdir, gdcmgendir), else one process per file, one after the other
(each is single-threaded).  ``node-ctl`` runs with its defaults: one process for the whole
folder, with ``--jobs`` worker processes (default: the CPU count).  The wall clock includes
process start-up for both.  A run counts only if it wrote one output per input (and the
DICOMDIR references every file).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench import datasets
from bench.options import Options
from bench.peers import US, node_ctl
from bench.report import CXX, Figure

logger = logging.getLogger(__name__)

STUDIES = 10
IMAGES = 8  # distinct pixel images among the files


def write_files(folder: Path, count: int) -> list[Path]:
    """``count`` CT files in ``folder/ST000/IM000001``..., ten studies of one series."""
    import numpy as np

    paths: list[Path] = []
    per_study = -(-count // STUDIES)
    pixels = [datasets._pixels(512, 512, seed) for seed in range(IMAGES)]
    rng = np.random.default_rng(0)
    for s in range(min(STUDIES, count)):
        info = datasets.new_study(s, study_date=f"2020{(s % 12) + 1:02d}15")
        target = folder / f"ST{s:03d}"
        target.mkdir(parents=True, exist_ok=True)
        for n in range(min(per_study, count - len(paths))):
            image = pixels[int(rng.integers(IMAGES))]
            ds = datasets.ct_dataset(info, 0, n + 1, datasets.uid(), 512, 512, image)
            path = target / f"IM{n + 1:06d}"
            ds.save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths


def _certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away RSA key and self-signed certificate for the reversible profile."""
    key, cert = folder / "key.pem", folder / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=bench",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return key, cert


def _count_files(folder: Path, name_filter: Callable[[Path], bool] = lambda p: True) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file() and name_filter(p))


def _run(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=3600
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{Path(args[0]).name} failed ({proc.returncode}): "
            f"{(proc.stderr or proc.stdout).strip()[-400:]}"
        )


def _per_file(make: Callable[[Path, Path], list[str]], files: list[Path], out: Path) -> None:
    """One process per file, one after the other (the tool takes one file at a time)."""
    for path in files:
        _run(make(path, out))


@dataclass
class Job:
    """One line of the table: our command and the C++ tool's, on the same input folder."""

    key: str
    title: str
    tool: str
    #: (input folder, files, output folder) -> runs the job; output checked by ``check``
    ours: Callable[[Path, list[Path], Path], None]
    theirs: Callable[[Path, list[Path], Path], None]
    #: (input folder, output folder, files) -> None or a shortfall message
    check: Callable[[Path, Path, list[Path]], str | None]
    #: jobs that write into the input folder (DICOMDIR) get a copy of it per run
    in_place: bool = False


def _outputs(expected_suffix: str = "") -> Callable[[Path, Path, list[Path]], str | None]:
    def check(_src: Path, out: Path, files: list[Path]) -> str | None:
        found = _count_files(out, lambda p: p.name.endswith(expected_suffix))
        return None if found >= len(files) else f"{found} outputs for {len(files)} files"

    return check


def _dicomdir_check(src: Path, out: Path, files: list[Path]) -> str | None:
    from pydicom import dcmread

    dicomdir = out / "DICOMDIR"
    if not dicomdir.is_file():
        return "no DICOMDIR written"
    ds = dcmread(dicomdir)
    images = sum(
        1 for r in ds.DirectoryRecordSequence if r.DirectoryRecordType in ("IMAGE", "INSTANCE")
    )
    return None if images == len(files) else f"DICOMDIR references {images} of {len(files)}"


def jobs(cert: Path) -> list[Job]:
    ctl = node_ctl()

    def ours_anonymize(src: Path, _files: list[Path], out: Path) -> None:
        _run(
            [
                ctl,
                "anonymize",
                "-r",
                "--no-progress",
                "-c",
                str(cert),
                "--aes256",
                str(src),
                str(out),
            ]
        )

    def gdcmanon(src: Path, _files: list[Path], out: Path) -> None:
        out.mkdir(parents=True, exist_ok=True)
        _run(
            ["gdcmanon", "-e", "-c", str(cert), "-r", "--continue", "-i", str(src), "-o", str(out)]
        )

    def ours_convert(src: Path, _files: list[Path], out: Path) -> None:
        _run([ctl, "convert", "--jpegls", "-r", "--quiet", str(src), str(out)])

    def gdcmconv(src: Path, files: list[Path], out: Path) -> None:
        for path in files:
            target = out / path.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            _run(["gdcmconv", "--jpegls", str(path), str(target)])

    def ours_render(src: Path, _files: list[Path], out: Path) -> None:
        _run([ctl, "render", "-q", "-r", "+Wi", "1", str(src), str(out)])

    def dcm2pnm(src: Path, files: list[Path], out: Path) -> None:
        for path in files:
            target = (out / path.relative_to(src)).with_suffix(".png")
            target.parent.mkdir(parents=True, exist_ok=True)
            _run(["dcm2pnm", "+Wi", "1", "+on", str(path), str(target)])

    def ours_dicomdir(_src: Path, _files: list[Path], out: Path) -> None:
        _run([ctl, "dicomdir", "-q", str(out)])

    def dcmmkdir(_src: Path, _files: list[Path], out: Path) -> None:
        _run(["dcmmkdir", "-q", "+r", "+id", str(out), "+D", str(out / "DICOMDIR")])

    def gdcmgendir(_src: Path, _files: list[Path], out: Path) -> None:
        _run(["gdcmgendir", "-r", "-i", str(out), "-o", str(out / "DICOMDIR")])

    return [
        Job(
            "tools-anonymize",
            "Anonymize (PS3.15 basic profile, encrypted originals)",
            "gdcmanon",
            ours_anonymize,
            gdcmanon,
            _outputs(),
        ),
        Job(
            "tools-convert-jpegls",
            "Convert to JPEG-LS lossless",
            "gdcmconv",
            ours_convert,
            gdcmconv,
            _outputs(),
        ),
        Job(
            "tools-render-png",
            "Render to PNG (file's first window)",
            "dcm2pnm",
            ours_render,
            dcm2pnm,
            _outputs(".png"),
        ),
        Job(
            "tools-dicomdir-dcmmkdir",
            "DICOMDIR of the folder",
            "dcmmkdir",
            ours_dicomdir,
            dcmmkdir,
            _dicomdir_check,
            in_place=True,
        ),
        Job(
            "tools-dicomdir-gdcmgendir",
            "DICOMDIR of the folder",
            "gdcmgendir",
            ours_dicomdir,
            gdcmgendir,
            _dicomdir_check,
            in_place=True,
        ),
    ]


def _one(job: Job, who: str, src: Path, files: list[Path], out: Path) -> float:
    """Seconds for one run of ``who`` (ours or theirs) into a fresh ``out``."""
    if out.exists():
        shutil.rmtree(out)
    if job.in_place:
        shutil.copytree(src, out)
    run = job.ours if who == US else job.theirs
    start = time.perf_counter()
    run(src, files, out)
    seconds = time.perf_counter() - start
    problem = job.check(src, out, files)
    if problem:
        raise RuntimeError(f"{who}: {problem}")
    return seconds


def tools(opts: Options) -> list[Figure]:
    """The tools workload: files/s of node-ctl and of each C++ tool, median of the runs."""
    work = opts.workdir / "tools"
    src = work / "in"
    src.mkdir(parents=True, exist_ok=True)
    count = opts.tools_count
    logger.info("tools: writing %d CT files", count)
    files = write_files(src, count)
    _key, cert = _certificate(work)
    figures: list[Figure] = []
    for job in jobs(cert):
        fig = Figure(
            key=job.key,
            title=f"{job.title}, {len(files):,} CT files: node-ctl vs {job.tool}",
            metric="files/s",
            better="higher",
            target="≥ 1x the C++ tool",
            min_ratio={CXX: 1.0},
        )
        fig.details.update(tool=job.tool, files=len(files), cpus=os.cpu_count())
        figures.append(fig)
        missing = shutil.which(job.tool) is None
        if missing:
            fig.notes.append(f"{job.tool} is not installed: left out")
        try:
            for run in range(opts.runs):
                order = [US, CXX] if run % 2 == 0 else [CXX, US]
                for who in order:
                    if who == CXX and missing:
                        continue
                    seconds = _one(job, who, src, files, work / f"out-{who}")
                    fig.add(who, len(files) / seconds)
                    fig.details.setdefault("seconds", {}).setdefault(who, []).append(
                        round(seconds, 3)
                    )
                    logger.info("tools %s %s: %.1f files/s", job.key, who, len(files) / seconds)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            logger.error("tools %s failed: %s", job.key, exc)
            fig.error = str(exc)
    shutil.rmtree(work, ignore_errors=True)
    return figures
