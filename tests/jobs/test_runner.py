"""The runner: cancel, per-kind concurrency, shutdown release and resume, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from node.jobs import InvalidJobParams, parse_job_args, submit_job
from node.jobs.runner import JobRunner
from storage.jobs import JobView
from tests.conftest import postgres_schema_url
from tests.interop.conftest import StoreSCP
from tests.jobs.conftest import Env, make_env, peer_hosts


@pytest.fixture
def peer(
    require_binary: Callable[[str], str], tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[StoreSCP]:
    scp = StoreSCP(require_binary("storescp"), free_port(), tmp_path / "scp", ["+uf"])
    yield scp
    scp.stop()


@pytest.fixture
def penv(tmp_path: Path, peer: StoreSCP) -> Iterator[Env]:
    env = make_env(tmp_path, hosts=peer_hosts(peer.port), job_workers=2)
    yield env
    env.index.engine.dispose()


def _sop_uids(scp: StoreSCP) -> list[str]:
    return [str(dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in scp.files()]


@pytest.mark.interop
def test_cancel_stops_a_running_forward(penv: Env, peer: StoreSCP) -> None:
    study, _ = penv.add_study(80)
    pk = submit_job(
        penv.queue, penv.settings, "forward", {"studies": [study], "destination": "DEST"}, "t"
    )
    asked = []

    def cancel_once_running(runner: JobRunner) -> None:
        view = penv.queue.get(pk)
        if not asked and view.state == "running" and view.progress_done >= 2:
            penv.queue.cancel(pk)
            asked.append(view.progress_done)

    (view,) = penv.run([pk], during=cancel_once_running)
    assert view.state == "cancelled"
    assert asked and view.progress_done < 80
    # What was sent is recorded, and is what the peer has.
    assert sorted(view.checkpoint["done"]) == sorted(_sop_uids(peer))


@pytest.mark.interop
def test_shutdown_releases_and_a_restart_resumes_without_resending(
    penv: Env, peer: StoreSCP
) -> None:
    study, sops = penv.add_study(60)
    pk = submit_job(
        penv.queue, penv.settings, "forward", {"studies": [study], "destination": "DEST"}, "t"
    )
    (view,) = penv.run([pk], until=lambda v: v[0].state == "running" and v[0].progress_done >= 3)
    # env.run stopped the runner: the job is queued again, its attempt given back.
    view = penv.queue.get(pk)
    assert view.state == "queued" and view.attempts == 0 and view.lease_owner is None
    sent_before = list(view.checkpoint["done"])
    assert 3 <= len(sent_before) < 60
    (view,) = penv.run([pk])
    assert view.state == "succeeded", view.error
    received = _sop_uids(peer)
    assert sorted(received) == sorted(sops)  # every instance, none twice


def test_per_kind_concurrency_is_respected(tmp_path: Path) -> None:
    env = make_env(tmp_path, job_workers=2, job_concurrency={"render": 1})
    studies = [env.add_study(4, rows=32)[0] for _ in range(3)]
    pks = [submit_job(env.queue, env.settings, "render", {"studies": [s]}, "t") for s in studies]
    other, _ = env.add_study(2)
    pks += [submit_job(env.queue, env.settings, "delete", {"studies": [other]}, "t")]
    seen: list[int] = []

    def observe(runner: JobRunner) -> None:
        running = env.queue.list(states=["running"], kinds=["render"])
        seen.append(len(running))
        assert sum(1 for r in runner.running.values() if r.job.kind == "render") <= 1

    runner = env.runner()
    views = env.run(pks, runner=runner, during=observe)
    assert [v.state for v in views] == ["succeeded"] * 4, [v.error for v in views]
    assert runner.peak["render"] == 1 and max(seen) <= 1
    env.index.engine.dispose()


def test_unknown_kind_and_bad_params_are_refused_at_submission(env: Env) -> None:
    with pytest.raises(InvalidJobParams, match="unknown job kind"):
        submit_job(env.queue, env.settings, "bogus", {}, "t")
    with pytest.raises(InvalidJobParams, match="at least one"):
        submit_job(env.queue, env.settings, "delete", {}, "t")
    with pytest.raises(InvalidJobParams, match="destination"):
        submit_job(env.queue, env.settings, "forward", {"studies": ["1.2.3"]}, "t")
    with pytest.raises(InvalidJobParams, match="need --anonymize"):
        parse_job_args("forward", ["--destination", "X", "--retain-uids"])
    params = parse_job_args("render", ["--size", "64", "--study", "1.2.3", "+F", "2"])
    assert params["size"] == 64 and params["frame"] == 2 and params["studies"] == ["1.2.3"]
    assert env.queue.counts()["queued"] == 0


def test_a_job_on_an_empty_selection_succeeds_with_nothing_done(env: Env) -> None:
    pk = submit_job(env.queue, env.settings, "render", {"studies": ["1.2.3.4"]}, "t")
    (view,) = env.run([pk])
    assert view.state == "succeeded" and view.result["selected"] == 0


@pytest.mark.postgres
def test_jobs_run_on_postgresql(tmp_path: Path) -> None:
    for url in postgres_schema_url():
        env = make_env(tmp_path, database_url=url)
        try:
            study, sops = env.add_study(3, rows=16)
            pks = [
                submit_job(env.queue, env.settings, "render", {"studies": [study]}, "t"),
                submit_job(
                    env.queue,
                    env.settings,
                    "convert",
                    {"series": [], "instances": sops[:1], "convert": "rle"},
                    "t",
                ),
            ]
            views: list[JobView] = env.run(pks)
            assert [v.state for v in views] == ["succeeded", "succeeded"], [v.error for v in views]
            (delete,) = env.run(
                [submit_job(env.queue, env.settings, "delete", {"studies": [study]}, "t")]
            )
            assert delete.state == "succeeded" and delete.result["deleted"] == 3
            assert env.index.instances("NODE", study_uids=[study]) == []
        finally:
            env.index.engine.dispose()


def test_a_submission_wakes_an_idle_runner(env: Env) -> None:
    study, _ = env.add_study(1)
    idle = env.queue.submit("delete", {"ae": "NODE", "studies": ["9.9.9"]}, origin="t")
    runner = env.runner()
    runner.poll = 30.0  # only a wake-up can start the next job in time
    submitted: list[int] = []

    def submit_once(_runner: JobRunner) -> None:
        if not submitted and env.queue.get(idle).final:
            submitted.append(
                submit_job(env.queue, env.settings, "delete", {"studies": [study]}, "t")
            )

    views = env.run(
        [idle],
        runner=runner,
        timeout=10,
        during=submit_once,
        until=lambda v: bool(submitted) and env.queue.get(submitted[0]).final,
    )
    assert views[0].state == "succeeded"
    assert env.queue.get(submitted[0]).state == "succeeded"
