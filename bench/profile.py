"""Where the time goes: py-spy on ``node-ctl serve`` during the single-association ingest.

``python -m bench.profile [--count 300]`` sends ``count`` 0.5 MB CT instances with one
``storescu`` while ``py-spy record --idle --threads`` samples the node, then breaks the
wall-clock time of the association's two threads down:

- the thread that serves the C-STORE, by category (receive, fsync, SQL commit, header
  parse...) and by the line of our code it was on: since ``node.receive`` serves a C-STORE
  on the DUL thread (``NodeAssociation.serve_here``), that is the DUL thread, the
  association thread stays idle;
- a DUL thread that only carries PDUs (pynetdicom's own ``DULServiceProvider``), if any.

The node runs with ``IngestWorkers 1``: py-spy samples one process.

``--idle`` matters: a thread waiting in ``fsync`` or ``time.sleep`` is idle to the CPU but
is exactly where an association's wall-clock time goes.  py-spy is a development tool
(``pip install py-spy``); it needs ptrace rights on the node (root, or
``kernel.yama.ptrace_scope=0``).
"""

from __future__ import annotations

import argparse
import collections
import linecache
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench import clients, datasets
from bench.env import REPO_ROOT
from bench.peers import NodePeer

logger = logging.getLogger("bench.profile")

PROJECT_DIRS = ("node/", "storage/", "config/")

#: Association thread: first rule whose needle is in the stack wins (order matters).
ASSOC_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("index: SQL commit (SQLite WAL fsync)", ("do_commit",)),
    ("index: quota checks", ("_enforce_study_bytes", "_evict_oldest_studies")),
    ("index: look-up of an existing instance", ("Index.instances",)),
    ("index: other SQL and ORM work", ("Index.record",)),
    (
        "file: rename/link, fsync of file and folder",
        ("FileStore.put", "FileStore.adopt", "PendingWrite", "fsync_dir"),
    ),
    ("header: parse received bytes (pydicom)", ("_read_header",)),
    ("header: index record + DICOM JSON (extract)", ("extract (storage/header.py",)),
    ("file meta encoding (build_file_meta)", ("build_file_meta",)),
    ("logging", ("logging/__init__.py", "LoggerAdapter")),
    ("other work in the C-STORE handler", ("handle_store",)),
    ("send the C-STORE response", ("send_msg", "DIMSEServiceProvider.send")),
    ("pynetdicom: StorageServiceClass around the handler", ("StorageServiceClass",)),
    # node/dul.py + node/receive.py: the handler runs on the DUL thread (serve_here)
    ("receive: write P-DATA fragments into the store's .tmp", ("ReceivedPart",)),
    ("receive: socket reads", ("_recv_exact",)),
    ("receive: waiting for the peer (select)", ("NodeDUL._wait",)),
    (
        "receive: PDU parsing, DIMSE assembly, command set decoding",
        ("NodeDIMSE", "_read_pdu_data", "_p_data"),
    ),
    ("receive: other DUL reactor work", ("NodeDUL",)),
    (
        "pynetdicom: reactor loop sleep, time.sleep(0.001) (includes waiting for the next C-STORE)",
        ("association.py:714",),
    ),
    ("pynetdicom: waiting for the next DIMSE message", ("Association._run_reactor",)),
    ("pynetdicom: association set-up and release", ("Association.run_reactor",)),
]

DUL_RULES: list[tuple[str, tuple[str, ...]]] = [
    ("socket recv", ("AssociationSocket.recv",)),
    ("waiting for data (select)", ("AssociationSocket.ready",)),
    ("PDU decode (P-DATA-TF -> primitive)", ("pdu.py", "pdu_primitives.py")),
    ("DIMSE fragment assembly", ("dimse", "DIMSEMessage")),
    ("state machine and event queue", ("fsm.py", "queue.py")),
    ("reactor poll sleep (time.sleep(run_loop_delay))", ("dul.py:403",)),
    ("other DUL reactor", ("DULServiceProvider",)),
]


@dataclass
class ThreadProfile:
    samples: int = 0
    categories: collections.Counter[str] = field(default_factory=collections.Counter)
    project_lines: collections.Counter[str] = field(default_factory=collections.Counter)
    leaves: collections.Counter[str] = field(default_factory=collections.Counter)


def classify(stack: str, rules: list[tuple[str, tuple[str, ...]]]) -> str:
    for label, needles in rules:
        if any(needle in stack for needle in needles):
            return label
    return "other"


def _project_line(frames: list[str]) -> str | None:
    """The innermost frame of our own code, as ``file:line  source``."""
    for frame in reversed(frames):
        if "(" not in frame:
            continue
        location = frame.rsplit("(", 1)[1].rstrip(")")
        if location.startswith(PROJECT_DIRS):
            path, _, line = location.rpartition(":")
            source = linecache.getline(str(REPO_ROOT / path), int(line)).strip()
            return f"{location}  `{source}`"
    return None


def analyse(raw: Path) -> dict[str, ThreadProfile]:
    """Parse py-spy's raw (collapsed) output into per-thread-kind profiles.

    Only the threads of associations that carried data count: the readiness probe's
    connection also gets an association thread, which waits (idle) for an A-ASSOCIATE-RQ
    that never comes.
    """
    threads: dict[str, list[tuple[list[str], str, int]]] = collections.defaultdict(list)
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        frames = stack.split(";")
        threads[frames[0]].append((frames, stack, int(count_text)))
    out = {"association": ThreadProfile(), "dul": ThreadProfile()}
    for samples in threads.values():
        text = " ".join(stack for _, stack, _ in samples)
        if "handle_store" in text:
            kind, rules = "association", ASSOC_RULES
        elif "DULServiceProvider.run_reactor" in text and "P_DATA_TF" in text:
            kind, rules = "dul", DUL_RULES
        else:
            continue
        profile = out[kind]
        for frames, stack, count in samples:
            profile.samples += count
            profile.categories[classify(stack, rules)] += count
            profile.leaves[frames[-1]] += count
            if kind == "association" and "handle_store" in stack:
                where = _project_line(frames)
                if where:
                    profile.project_lines[where] += count
    return out


def render(profiles: dict[str, ThreadProfile], header: str, top: int = 15) -> str:
    lines = [header, ""]
    titles = {
        "association": "Thread serving the C-STORE (DUL reactor + our handler), wall-clock",
        "dul": "DUL thread (socket, PDUs), wall-clock",
    }
    for kind, profile in profiles.items():
        if not profile.samples:
            continue
        lines += [f"### {titles[kind]}", "", "| Share | Where |", "|---:|---|"]
        for label, count in profile.categories.most_common():
            lines.append(f"| {100 * count / profile.samples:.1f}% | {label} |")
        lines.append("")
        if profile.project_lines:
            lines += [
                "Lines of our code the handler was on (innermost frame in node/ or storage/):",
                "",
                "| Share | Line |",
                "|---:|---|",
            ]
            for where, count in profile.project_lines.most_common(top):
                lines.append(f"| {100 * count / profile.samples:.1f}% | {where} |")
            lines.append("")
    return "\n".join(lines) + "\n"


def record(count: int, rate: int, workdir: Path, raw: Path) -> tuple[float, int]:
    """Ingest ``count`` CT instances under py-spy; returns (instances/s, stored)."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("bench.profile: py-spy not found (pip install py-spy)")
    folder = workdir / "ct"
    datasets.write_ct_series(folder, count)
    # one process: the association must be in the process py-spy samples
    node = NodePeer(workdir=workdir / "node", extra_config="IngestWorkers = 1\n")
    node.start()
    try:
        sampler = subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                str(node.pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--idle",
                "--threads",
                "--nonblocking",
                "-o",
                str(raw),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        time.sleep(1.5)  # let py-spy attach before the association starts
        elapsed = clients.storescu_dirs(node.aet, node.port, [[folder]])
        sampler.send_signal(signal.SIGINT)
        _, err = sampler.communicate(timeout=60)
        if not raw.exists():
            raise SystemExit(f"bench.profile: py-spy wrote nothing: {err.decode()[-400:]}")
    finally:
        node.stop()
    return count / elapsed, node.stored_count()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    p.add_argument("--count", type=int, default=300, help="CT instances to send (300)")
    p.add_argument("--rate", type=int, default=250, help="py-spy samples per second (250)")
    p.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "profile-ingest")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    raw = args.out.with_suffix(".txt")
    raw.unlink(missing_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="dicom-bench-profile-"))
    try:
        rate, stored = record(args.count, args.rate, workdir, raw)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    header = (
        f"## Profile: {args.count} x 0.5 MB CT, one storescu association, "
        f"{rate:.1f} instances/s under py-spy ({stored} stored)"
    )
    text = render(analyse(raw), header)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    logger.info("raw stacks (flamegraph input): %s", raw)
    return 0


if __name__ == "__main__":
    sys.exit(main())
