"""The side-by-side workloads: ingest, corpus ingest, C-FIND, C-MOVE, peak RSS.

Each workload returns ``Figure`` objects with every system's values.  The rules that make
the figures comparable:

- a fresh system (new process, empty storage) for every ingest, move and RSS run, so no run
  pays for the previous one's index;
- the systems take turns inside each run, in a rotating order, so a change of load on the
  (shared) machine spreads over all of them instead of hitting one;
- the clients are DCMTK's for everyone (``bench.clients``); a run counts only when the
  receiver holds what was sent (a shortfall is reported in the notes).
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench import clients, datasets
from bench.options import Options
from bench.peers import (
    MOVE_DEST_AET,
    ORTHANC,
    STORESCP,
    US,
    Server,
    StoreSCPPeer,
    available,
    free_port,
    make_server,
)
from bench.report import Figure

logger = logging.getLogger(__name__)


def percentile(samples: list[float], fraction: float) -> float:
    """Nearest-rank percentile (no interpolation: a p95 is a time that was measured)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def systems_for(opts: Options, candidates: tuple[str, ...], notes: list[str]) -> list[str]:
    """Us, then the requested peers among ``candidates`` that are installed here."""
    out = [US]
    for peer in candidates:
        if peer not in opts.peers:
            continue
        why = available(peer)
        if why:
            notes.append(f"{peer} left out: {why}")
            continue
        out.append(peer)
    return out


def rotation(names: list[str], run: int) -> list[str]:
    shift = run % len(names)
    return names[shift:] + names[:shift]


@contextmanager
def running(server: Server) -> Iterator[Server]:
    """Start ``server``; stop it afterwards (its files stay until ``discard``)."""
    server.start()
    try:
        yield server
    finally:
        server.stop()


def discard(server: Server) -> None:
    shutil.rmtree(server.workdir, ignore_errors=True)


def _record_error(fig: Figure, system: str, run: int, exc: Exception) -> None:
    logger.error("%s: %s run %d failed: %s", fig.key, system, run + 1, exc)
    message = f"{system} run {run + 1}: {exc}"
    fig.error = f"{fig.error}; {message}" if fig.error else message


# -- ingest ------------------------------------------------------------------------------

INGEST_TARGETS = {
    1: ("≥ 1.5x Orthanc, ≥ 0.5x storescp", {ORTHANC: 1.5, STORESCP: 0.5}),
    4: ("≥ 2x Orthanc, ≥ 0.5x storescp", {ORTHANC: 2.0, STORESCP: 0.5}),
}


def ingest(opts: Options) -> list[Figure]:
    """0.5 MB CT instances over 1 association and over N concurrent ones (N storescu)."""
    most = max(opts.associations)
    folder = opts.workdir / "data" / "ct"
    logger.info("ingest: writing %d CT instances", opts.count)
    info = datasets.write_ct_series(folder, opts.count, subfolders=most)
    megabytes = sum(p.stat().st_size for p in info.paths) / 2**20
    figures = []
    for associations in sorted(set(opts.associations)):
        target, ratios = INGEST_TARGETS.get(associations, ("", {}))
        fig = Figure(
            key=f"ingest-ct-{associations}",
            title=f"Ingest 0.5 MB CT, {associations} association{'s' if associations > 1 else ''}",
            metric="instances/s",
            better="higher",
            target=target,
            min_ratio=ratios,
            details={"instances": opts.count, "megabytes": round(megabytes, 1)},
        )
        if associations == 1 or most == 1:
            groups = [[folder]]
        else:
            subs = [folder / str(i) for i in range(most)]
            groups = [subs[i::associations] for i in range(associations)]
        names = systems_for(opts, (ORTHANC, STORESCP), fig.notes)
        for run in range(opts.runs):
            for system in rotation(names, run):
                _ingest_run(opts, fig, system, run, groups, opts.count)
        figures.append(fig)
        cpu = Figure(
            key=f"{fig.key}-cpu",
            title=f"{fig.title}: receiver CPU (user + system, its process tree)",
            metric="ms per instance",
            better="lower",
        )
        for system, values in fig.details.get("cpu_ms_per_instance", {}).items():
            for value in values:
                cpu.add(system, value)
        if cpu.values:
            figures.append(cpu)
    return figures


def _ingest_run(
    opts: Options, fig: Figure, system: str, run: int, groups: list[list[Path]], expected: int
) -> None:
    server = make_server(system, opts.workdir / "peers" / f"{fig.key}-{system}-{run}")
    try:
        with running(server):
            cpu_before = server.cpu_seconds()
            elapsed = clients.storescu_dirs(server.aet, server.port, groups)
            cpu = server.cpu_seconds() - cpu_before
        stored = server.stored_count()
    except Exception as exc:  # noqa: BLE001 - one failed run must not end the suite
        _record_error(fig, system, run, exc)
        return
    finally:
        discard(server)
    if stored != expected:
        fig.notes.append(f"{system} run {run + 1}: stored {stored} of {expected}")
    fig.add(system, expected / elapsed)
    fig.details.setdefault("elapsed_s", {}).setdefault(system, []).append(round(elapsed, 3))
    fig.details.setdefault("cpu_ms_per_instance", {}).setdefault(system, []).append(
        round(1000 * cpu / expected, 2)
    )
    logger.info(
        "%s %s run %d: %.1f/s, %.2f ms CPU per instance",
        fig.key,
        system,
        run + 1,
        expected / elapsed,
        1000 * cpu / expected,
    )


# -- corpus ------------------------------------------------------------------------------


def corpus_groups(root: Path, limit: int | None) -> dict[str, list[str]]:
    """Corpus files by transfer syntax (storescu proposes one family of syntaxes per run)."""
    with (root / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh, delimiter="\t"), key=lambda r: r["path"])
    rows = [r for r in rows if r["TransferSyntaxUID"] in clients.STORESCU_FLAG]
    if limit is not None:
        rows = rows[:limit]
    groups: dict[str, list[str]] = {}
    for row in rows:
        groups.setdefault(row["TransferSyntaxUID"], []).append(str(root / row["path"]))
    return groups


def corpus(opts: Options) -> list[Figure]:
    """The shared corpus (real files of every kind), one storescu per transfer syntax."""
    fig = Figure(
        key="ingest-corpus",
        title="Ingest shared corpus, 1 association per syntax",
        metric="files/s",
        better="higher",
    )
    if opts.corpus is None or not (opts.corpus / "MANIFEST.tsv").is_file():
        fig.error = f"corpus not found at {opts.corpus} (use --corpus)"
        return [fig]
    groups = corpus_groups(opts.corpus, opts.corpus_limit)
    total = sum(len(files) for files in groups.values())
    fig.details["files"] = total
    fig.details["syntaxes"] = {syntax: len(files) for syntax, files in groups.items()}
    fig.notes.append(
        "rate = files the receiver accepted / time for all of them; the accepted and stored "
        "counts of each system are in the JSON (details.accepted, details.stored)"
    )
    names = systems_for(opts, (ORTHANC, STORESCP), fig.notes)
    for run in range(opts.runs):
        for system in rotation(names, run):
            server = make_server(system, opts.workdir / "peers" / f"corpus-{system}-{run}")
            try:
                elapsed, sent = 0.0, 0
                with running(server):
                    for syntax, files in groups.items():
                        flag = clients.STORESCU_FLAG[syntax]
                        result = clients.storescu_files(server.aet, server.port, files, [flag])
                        elapsed += result.elapsed
                        sent += result.sent
                stored = server.stored_count()
            except Exception as exc:  # noqa: BLE001
                _record_error(fig, system, run, exc)
                continue
            finally:
                discard(server)
            fig.add(system, sent / elapsed)
            fig.details.setdefault("accepted", {})[system] = sent
            fig.details.setdefault("stored", {})[system] = stored
            logger.info("corpus %s run %d: %d files in %.1f s", system, run + 1, sent, elapsed)
    return [fig]


# -- C-FIND and C-MOVE -------------------------------------------------------------------

RETURN_STUDY = {
    "StudyInstanceUID": "",
    "StudyDate": "",
    "StudyTime": "",
    "AccessionNumber": "",
    "PatientName": "",
    "PatientID": "",
    "StudyDescription": "",
    "ModalitiesInStudy": "",
    "NumberOfStudyRelatedInstances": "",
}


@dataclass
class FindQuery:
    key: str
    title: str
    keys: dict[str, str]
    expected: int


def find_queries(studies: list[datasets.StudyInfo], move: datasets.StudyInfo) -> list[FindQuery]:
    everything = [*studies, move]
    smith = sum(1 for s in everything if s.patient_name.startswith("SMITH"))
    march = sum(1 for s in everything if "20200301" <= s.study_date <= "20200331")
    axial_h1 = sum(
        1
        for s in everything
        for desc, day in zip(s.series_descriptions, s.series_dates, strict=True)
        if desc.startswith("AX") and "20200101" <= day <= "20200630"
    )
    return [
        FindQuery(
            "study-name-wildcard",
            "study level, PatientName=SMITH*",
            {"QueryRetrieveLevel": "STUDY", **RETURN_STUDY, "PatientName": "SMITH*"},
            smith,
        ),
        FindQuery(
            "study-date-range",
            "study level, StudyDate range (1 month)",
            {"QueryRetrieveLevel": "STUDY", **RETURN_STUDY, "StudyDate": "20200301-20200331"},
            march,
        ),
        FindQuery(
            "series-wildcard-range",
            "series level, SeriesDescription=AX* + SeriesDate range",
            {
                "QueryRetrieveLevel": "SERIES",
                "StudyInstanceUID": "",
                "SeriesInstanceUID": "",
                "Modality": "",
                "SeriesNumber": "",
                "SeriesDescription": "AX*",
                "SeriesDate": "20200101-20200630",
                "NumberOfSeriesRelatedInstances": "",
            },
            axial_h1,
        ),
        FindQuery(
            "image-series",
            f"image level, one series of {len(move.sop_uids)}",
            {
                "QueryRetrieveLevel": "IMAGE",
                "StudyInstanceUID": move.study_uid,
                "SeriesInstanceUID": move.series_uids[0],
                "SOPInstanceUID": "",
                "SOPClassUID": "",
                "InstanceNumber": "",
            },
            len(move.sop_uids),
        ),
    ]


def retrieval(opts: Options, do_find: bool = True, do_move: bool = True) -> list[Figure]:
    """Load the same studies into us and Orthanc, then time C-FIND and C-MOVE on both."""
    notes: list[str] = []
    names = systems_for(opts, (ORTHANC,), notes)
    data = opts.workdir / "data"
    logger.info(
        "retrieve: writing %d query studies and a %d-instance study",
        opts.find_studies,
        opts.move_count,
    )
    studies = datasets.write_query_set(data / "query", opts.find_studies)
    move = datasets.write_ct_series(data / "move", opts.move_count, info=datasets.new_study(0))
    dest_port = free_port()
    destinations = {"dest": (MOVE_DEST_AET, dest_port)}
    servers = {
        name: make_server(
            name, opts.workdir / "peers" / f"qr-{name}", move_destinations=destinations
        )
        for name in names
    }
    figures: list[Figure] = []
    started: list[Server] = []
    try:
        for name, server in servers.items():
            server.start()
            started.append(server)
            elapsed = clients.storescu_dirs(
                server.aet, server.port, [[data / "query", data / "move"]]
            )
            logger.info("retrieve: loaded %s in %.1f s", name, elapsed)
        if do_find:
            figures += _find_figures(opts, servers, find_queries(studies, move))
        if do_move:
            figures.append(_move_figure(opts, servers, move, dest_port))
    finally:
        for server in started:
            server.stop()
        for server in servers.values():
            discard(server)
    for fig in figures:
        fig.notes[:0] = notes
    return figures


def _find_figures(
    opts: Options, servers: dict[str, Server], queries: list[FindQuery]
) -> list[Figure]:
    figures = []
    names = list(servers)
    sessions: dict[str, clients.FindSession] = {}
    try:
        for name, server in servers.items():
            sessions[name] = clients.FindSession(server.aet, server.port)
        for query in queries:
            by_process = Figure(
                key=f"find-{query.key}-findscu",
                title=f"C-FIND {query.title}: findscu",
                metric="ms",
                better="lower",
                secondary_name="p50 / p95",
                details={"expected_matches": query.expected},
            )
            on_assoc = Figure(
                key=f"find-{query.key}-assoc",
                title=f"C-FIND {query.title}: open association",
                metric="ms",
                better="lower",
                secondary_name="p50 / p95",
                details={"expected_matches": query.expected},
            )
            _time_find(opts, servers, sessions, query, by_process, on_assoc, names)
            figures += [by_process, on_assoc]
    finally:
        for session in sessions.values():
            session.close()
    return figures


def _time_find(
    opts: Options,
    servers: dict[str, Server],
    sessions: dict[str, clients.FindSession],
    query: FindQuery,
    by_process: Figure,
    on_assoc: Figure,
    names: list[str],
) -> None:
    process_ms: dict[str, list[float]] = {n: [] for n in names}
    assoc_ms: dict[str, list[float]] = {n: [] for n in names}
    matches: dict[str, set[int]] = {n: set() for n in names}
    for rep in range(opts.find_reps):
        for name in rotation(names, rep):
            server = servers[name]
            try:
                process_ms[name].append(clients.findscu(server.aet, server.port, query.keys) * 1000)
                seconds, found = sessions[name].find(query.keys)
            except Exception as exc:  # noqa: BLE001
                _record_error(by_process, name, rep, exc)
                on_assoc.error = by_process.error
                return
            assoc_ms[name].append(seconds * 1000)
            matches[name].add(found)
    for fig, samples in ((by_process, process_ms), (on_assoc, assoc_ms)):
        for name, values in samples.items():
            if values:
                fig.add(name, percentile(values, 0.5), percentile(values, 0.95))
        fig.details["samples_ms"] = {n: [round(v, 2) for v in vs] for n, vs in samples.items()}
        fig.details["matches"] = {n: sorted(m) for n, m in matches.items()}
    for name, found in matches.items():
        if found != {query.expected}:
            by_process.notes.append(
                f"{name} returned {sorted(found)} matches, expected {query.expected}"
            )


def _move_figure(
    opts: Options, servers: dict[str, Server], move: datasets.StudyInfo, dest_port: int
) -> Figure:
    count = len(move.sop_uids)
    fig = Figure(
        key="move-study",
        title=f"C-MOVE of a {count}-instance study into storescp",
        metric="instances/s",
        better="higher",
        target="≥ 2x Orthanc",
        min_ratio={ORTHANC: 2.0},
    )
    keys = {"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": move.study_uid}
    names = list(servers)
    for run in range(opts.runs):
        for name in rotation(names, run):
            server = servers[name]
            dest = StoreSCPPeer(
                workdir=opts.workdir / "peers" / f"dest-{name}-{run}",
                aet=MOVE_DEST_AET,
                port=dest_port,
                fork=False,
            )
            try:
                with running(dest):
                    elapsed = clients.movescu(server.aet, server.port, keys)
                received = dest.stored_count()
            except Exception as exc:  # noqa: BLE001
                _record_error(fig, name, run, exc)
                continue
            finally:
                discard(dest)
            if received != count:
                fig.notes.append(f"{name} run {run + 1}: storescp received {received} of {count}")
            fig.add(name, count / elapsed)
            fig.details.setdefault("elapsed_s", {}).setdefault(name, []).append(round(elapsed, 3))
            logger.info("move %s run %d: %.1f/s", name, run + 1, count / elapsed)
    return fig


# -- memory ------------------------------------------------------------------------------


def rss(opts: Options) -> list[Figure]:
    """Peak RSS (VmHWM of the process tree) while receiving one large multi-frame instance."""
    folder = opts.workdir / "data" / "large"
    folder.mkdir(parents=True, exist_ok=True)
    logger.info("rss: writing a %d MB instance", opts.large_mb)
    size = datasets.write_large_instance(folder / "large.dcm", opts.large_mb << 20)
    fig = Figure(
        key="rss-large",
        title=f"Peak RSS receiving one {size / 2**20:.0f} MB instance",
        metric="MB",
        better="lower",
        target="≤ 150 MB (for a 1 GB instance)",
        limit=150.0,
        details={"instance_bytes": size},
    )
    names = systems_for(opts, (ORTHANC, STORESCP), fig.notes)
    for run in range(opts.runs):
        for system in rotation(names, run):
            kwargs = {"fork": False} if system == STORESCP else {}
            server = make_server(system, opts.workdir / "peers" / f"rss-{system}-{run}", **kwargs)
            try:
                with running(server):
                    idle = server.rss_mb()
                    start = time.perf_counter()
                    clients.storescu_dirs(server.aet, server.port, [[folder]])
                    elapsed = time.perf_counter() - start
                    peak = server.peak_rss_mb()
                stored = server.stored_count()
            except Exception as exc:  # noqa: BLE001
                _record_error(fig, system, run, exc)
                continue
            finally:
                discard(server)
            if stored != 1:
                fig.notes.append(f"{system} run {run + 1}: stored {stored} of 1")
            fig.add(system, peak)
            fig.details.setdefault("idle_rss_mb", {}).setdefault(system, []).append(round(idle, 1))
            fig.details.setdefault("mb_per_s", {}).setdefault(system, []).append(
                round(size / 2**20 / elapsed, 1)
            )
            logger.info("rss %s run %d: peak %.0f MB (idle %.0f)", system, run + 1, peak, idle)
    return [fig]


#: name -> workload function (``find`` and ``move`` share their loaded systems in run.py)
SIMPLE_WORKLOADS: dict[str, Callable[[Options], list[Figure]]] = {
    "ingest": ingest,
    "corpus": corpus,
    "rss": rss,
}
