"""Run the benchmark suite: ``python -m bench.run [--quick] [options]``.

Prints the markdown table on stdout (progress goes to stderr) and writes
``bench/results/latest.json`` (every raw value, the environment, the options) and
``latest.md`` beside it.  Exit status 1 when a workload failed (not when a target is missed:
the suite measures, it does not judge).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import env as environment
from bench.env import REPO_ROOT
from bench.options import DEFAULT_POSTGRES_URL, WORKLOADS, Options
from bench.peers import NodePeer
from bench.report import Figure, markdown, write_json

logger = logging.getLogger("bench")

#: Defaults of the full run, and of ``--quick`` (about a minute on a 2-core machine).
FULL = {
    "runs": 3,
    "count": 500,
    "corpus_limit": None,
    "find_studies": 200,
    "find_reps": 50,
    "move_count": 200,
    "large_mb": 256,
    "scales": "10000,100000",
    "scale_reps": 50,
    "tools_count": 1000,
}
QUICK = {
    "runs": 1,
    "count": 40,
    "corpus_limit": 40,
    "find_studies": 20,
    "find_reps": 5,
    "move_count": 20,
    "large_mb": 16,
    "scales": "1000",
    "scale_reps": 5,
    "tools_count": 20,
}


def default_corpus() -> Path:
    """Where the tests find the shared corpus (``tests/conftest.py``): the same rule."""
    env = os.environ.get("NODE_TEST_CORPUS")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data" / "corpus"


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench.run",
        description="Side-by-side benchmarks of dicom-node, DCMTK storescp and Orthanc.",
    )
    p.add_argument("--quick", action="store_true", help="small counts: about a minute")
    p.add_argument("--runs", type=int, help="runs per figure, the median is reported (3)")
    p.add_argument(
        "--workloads",
        default=",".join(WORKLOADS),
        help=f"comma-separated subset of {','.join(WORKLOADS)} (default: all)",
    )
    p.add_argument(
        "--peers", default="orthanc,storescp", help="peers to compare with (default: both)"
    )
    p.add_argument("--count", type=int, help="0.5 MB CT instances per ingest run (500)")
    p.add_argument(
        "--associations", default="1,4", help="association counts of the CT ingest (1,4)"
    )
    p.add_argument("--corpus", type=Path, help="shared corpus folder (with MANIFEST.tsv)")
    p.add_argument("--corpus-limit", type=int, help="send only the first N corpus files")
    p.add_argument("--find-studies", type=int, help="studies loaded for C-FIND (200)")
    p.add_argument("--find-reps", type=int, help="repetitions of each C-FIND (50)")
    p.add_argument("--move-count", type=int, help="instances of the C-MOVE study (200)")
    p.add_argument("--large-mb", type=int, help="size of the peak-RSS instance in MB (256)")
    p.add_argument("--scales", help="index sizes in instances (10000,100000)")
    p.add_argument("--with-1m", action="store_true", help="add the 1,000,000-instance index")
    p.add_argument("--scale-reps", type=int, help="repetitions of each index query kind (50)")
    p.add_argument("--tools-count", type=int, help="CT files of the offline-tools workload (1000)")
    p.add_argument(
        "--postgres-url",
        default=DEFAULT_POSTGRES_URL,
        help="server for the PostgreSQL index scale (a database is created and dropped); "
        "'none' to skip",
    )
    p.add_argument(
        "--node-config",
        action="append",
        default=[],
        help="a line added to the node's config, e.g. 'IngestWorkers = 1' (repeatable)",
    )
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "latest.json")
    p.add_argument("--workdir", type=Path, help="parent of the temporary work folder")
    p.add_argument("--keep", action="store_true", help="keep the work folder (debugging)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    return p


def options_from(args: argparse.Namespace, workdir: Path) -> Options:
    defaults = QUICK if args.quick else FULL

    def pick(name: str) -> Any:
        value = getattr(args, name)
        return defaults[name] if value is None else value

    scales = tuple(int(s) for s in _csv(pick("scales")))
    if args.with_1m:
        scales += (1_000_000,)
    workloads = _csv(args.workloads)
    unknown = set(workloads) - set(WORKLOADS)
    if unknown:
        raise SystemExit(f"bench.run: unknown workload(s) {sorted(unknown)}")
    postgres = None if args.postgres_url.lower() in ("", "none") else args.postgres_url
    return Options(
        workdir=workdir,
        quick=args.quick,
        runs=pick("runs"),
        workloads=workloads,
        peers=_csv(args.peers),
        count=pick("count"),
        associations=tuple(int(a) for a in _csv(args.associations)),
        corpus=args.corpus or default_corpus(),
        corpus_limit=pick("corpus_limit"),
        find_studies=pick("find_studies"),
        find_reps=pick("find_reps"),
        move_count=pick("move_count"),
        large_mb=pick("large_mb"),
        scales=scales,
        scale_reps=pick("scale_reps"),
        postgres_url=postgres,
        tools_count=pick("tools_count"),
    )


def run_workloads(opts: Options) -> list[Figure]:
    from bench import workloads
    from bench.indexscale import index_scale

    figures: list[Figure] = []
    selected = set(opts.workloads)
    for name in WORKLOADS:
        if name not in selected or name == "move" and "find" in selected:
            continue
        logger.info("workload %s", name)
        try:
            if name in ("find", "move"):
                figures += workloads.retrieval(
                    opts, do_find="find" in selected, do_move="move" in selected
                )
            elif name == "index":
                figures += index_scale(opts)
            elif name == "tools":
                from bench.tools import tools

                figures += tools(opts)
            else:
                figures += workloads.SIMPLE_WORKLOADS[name](opts)
        except Exception as exc:  # noqa: BLE001 - report it and go on with the others
            logger.exception("workload %s failed", name)
            figures.append(
                Figure(
                    key=name,
                    title=f"{name} (failed)",
                    metric="-",
                    better="higher",
                    error=f"{type(exc).__name__}: {exc}",
                )
            )
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("alembic", "pynetdicom"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    base = args.workdir
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="dicom-bench-", dir=base))
    opts = options_from(args, workdir)
    NodePeer.run_config = "".join(f"{line}\n" for line in args.node_config)
    env = environment.describe()
    if args.node_config:
        env["node_config"] = list(args.node_config)
    if opts.postgres_url and "index" in opts.workloads:
        from bench.indexscale import postgres_version

        env["postgresql"] = postgres_version(opts.postgres_url)
    try:
        figures = run_workloads(opts)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    env["load_average_end"] = environment.load_average()
    env["git_end"] = environment.git_state()  # other commits may land during a long run
    table = markdown(figures, env, opts.runs)
    write_json(args.out, figures, env, opts.as_dict())
    args.out.with_suffix(".md").write_text(table)
    sys.stdout.write(table)
    logger.info("wrote %s", args.out)
    return 1 if any(fig.error for fig in figures) else 0


if __name__ == "__main__":
    sys.exit(main())
