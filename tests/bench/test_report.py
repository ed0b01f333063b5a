"""The arithmetic of the benchmark report: ratio orientation, targets, percentiles, profiles."""

from __future__ import annotations

from pathlib import Path

from bench.peers import ORTHANC, STORESCP, US
from bench.profile import analyse
from bench.report import Figure, markdown
from bench.workloads import percentile, rotation


def _throughput() -> Figure:
    fig = Figure(
        key="k",
        title="Ingest",
        metric="instances/s",
        better="higher",
        target="≥ 1.5x Orthanc",
        min_ratio={ORTHANC: 1.5},
    )
    for ours, theirs, files in ((300, 100, 600), (200, 110, 500), (250, 90, 550)):
        fig.add(US, ours)
        fig.add(ORTHANC, theirs)
        fig.add(STORESCP, files)
    return fig


def test_ratio_is_times_better_for_throughput() -> None:
    fig = _throughput()
    assert fig.median(US) == 250
    assert fig.ratio(ORTHANC) == 250 / 100
    assert fig.ratio(STORESCP) == 250 / 550
    assert fig.met() is True
    fig.min_ratio[STORESCP] = 0.5
    assert fig.met() is False


def test_ratio_is_times_better_for_latency_and_limits_apply() -> None:
    fig = Figure(key="f", title="C-FIND", metric="ms", better="lower", limit=10.0)
    fig.add(US, 8.0, 40.0)
    fig.add(ORTHANC, 16.0, 20.0)
    assert fig.ratio(ORTHANC) == 2.0
    assert fig.ratio(ORTHANC, "secondary") == 0.5
    assert fig.met() is True
    fig.secondary_limit = 30.0
    assert fig.met() is False
    fig.secondary_limit = None
    fig.extra_ok = False
    assert fig.met() is False


def test_a_failed_workload_is_never_met() -> None:
    fig = _throughput()
    fig.error = "orthanc run 2: storescu failed"
    assert fig.met() is False


def test_markdown_row_and_notes() -> None:
    fig = _throughput()
    fig.notes.append("orthanc run 1: stored 99 of 100")
    latency = Figure(
        key="q", title="Query", metric="ms", better="lower", secondary_name="p50 / p95"
    )
    latency.add(US, 5.0, 9.0)
    text = markdown([fig, latency], {"cpu": "CPU", "cpus": 2, "git": {}}, runs=3)
    assert (
        "| Ingest | instances/s | 250 | 100 | 550 | 2.50x | 0.45x | ≥ 1.5x Orthanc | yes |" in text
    )
    assert "| Query | ms (p50 / p95) | 5.00 / 9.00 | - | - | - | - | - | - |" in text
    assert "- Ingest: orthanc run 1: stored 99 of 100" in text
    assert "Median of 3 run(s)" in text


def test_percentile_is_a_measured_value() -> None:
    samples = [float(v) for v in range(1, 101)]
    assert percentile(samples, 0.5) == 50.0
    assert percentile(samples, 0.95) == 95.0
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0


def test_rotation_gives_every_system_every_position() -> None:
    names = [US, ORTHANC, STORESCP]
    firsts = {rotation(names, run)[0] for run in range(3)}
    assert firsts == set(names)
    assert sorted(rotation(names, 4)) == sorted(names)


def test_profile_keeps_only_threads_that_carried_data(tmp_path: Path) -> None:
    boot = "Thread._bootstrap (threading.py:1002);Thread.run (threading.py:982)"
    assoc = f"thread (1): A;{boot};Association.run_reactor (pynetdicom/association.py:675)"
    probe = f"thread (2): B;{boot};Association.run_reactor (pynetdicom/association.py:653)"
    dul = f"thread (3): C;{boot};DULServiceProvider.run_reactor (pynetdicom/dul.py:419)"
    handler = (
        f"{assoc};Association._run_reactor (pynetdicom/association.py:731);"
        "handle_store (node/services/store.py:24)"
    )
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "\n".join(
            [
                f"{handler};Ingestor.store (storage/ingest.py:1);"
                "FileStore.put (storage/files.py:1) 6",
                f"{handler};Index.record (storage/index.py:1);Connection.commit (x.py:1);"
                "DefaultDialect.do_commit (sqlalchemy/engine/default.py:954) 3",
                f"{assoc};Association._run_reactor (pynetdicom/association.py:714) 1",
                f"{probe};Queue.get (queue.py:180) 500",
                f"{dul};P_DATA_TF.decode (pynetdicom/pdu.py:1) 2",
                f"{dul};DULServiceProvider.run_reactor (pynetdicom/dul.py:403) 8",
            ]
        )
        + "\n"
    )
    profiles = analyse(raw)
    association, dul_thread = profiles["association"], profiles["dul"]
    assert association.samples == 10  # the probe's idle thread is left out
    assert association.categories["file: rename/link, fsync of file and folder"] == 6
    assert association.categories["index: SQL commit (SQLite WAL fsync)"] == 3
    assert sum(association.project_lines.values()) == 9
    assert dul_thread.samples == 10
    assert dul_thread.categories["PDU decode (P-DATA-TF -> primitive)"] == 2
