"""Routes without a network: selection, new-since, retries, history, dry run, the scheduler."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from node.jobs.routes import RouteService, UnknownRoute
from node.jobs.scheduler import RouteScheduler
from tests.conftest import postgres_schema_url
from tests.jobs.conftest import Env, peer_hosts
from tests.jobs.helpers_pipelines import pipeline_env, route, store_study


def _env(tmp_path: Path, url: str | None = None, **kw: object) -> Env:
    routes = (
        route("ct", "Modality=CT", anonymize=(), secret="k", schedule="0 2 * * *"),
        route("all", select="all"),
    )
    return pipeline_env(tmp_path, url, hosts=peer_hosts(104), routes=routes, **kw)


def _finish(env: Env, *, ok: bool) -> None:
    """Play the runner: every queued job ends (sent, or failed for good)."""
    while (job := env.queue.claim("test")) is not None:
        if ok:
            env.queue.succeed(job.pk, "test", {"done": 2})
        else:
            env.queue.fail(job.pk, "test", "peer down", retry=False)


def test_new_since_last_run_retries_failures_and_records_history(tmp_path: Path) -> None:
    env = _env(tmp_path)
    service = RouteService(env.settings, env.index.engine, env.queue)
    ct, _ = store_study(env, 2)
    store_study(env, 1, modality="MR")
    first = service.run("ct")
    assert first["selected"] == 1 and len(first["jobs"]) == 1
    job = env.queue.get(first["jobs"][0])
    assert job.kind == "forward" and job.origin == "route:ct"
    assert job.params["studies"] == [ct] and job.params["route"] == "ct"
    assert job.params["anonymize"]["secret"] == "k"
    # In flight: not selected again.
    assert service.run("ct")["selected"] == 0
    _finish(env, ok=False)
    # Failed: retried and reported.
    retry = service.run("ct")
    assert retry["selected"] == 1 and retry["retried"] == [ct]
    _finish(env, ok=True)
    assert service.run("ct")["selected"] == 0  # sent, unchanged
    store_study(env, 1, study=ct)  # a change
    assert service.run("ct")["selected"] == 1
    _finish(env, ok=True)
    history = service.history("ct")
    assert [(h["selected"], h["state"]) for h in history] == [
        (1, "succeeded"),
        (0, "succeeded"),
        (1, "succeeded"),
        (0, "succeeded"),
        (1, "failed"),
    ]
    assert history[-1]["studies"][0]["error"] == "peer down"
    assert history[0]["studies"][0]["instances_sent"] == 2
    assert history[0]["studies"][0]["new_study_instance_uid"] not in (None, ct)
    # Select = all sends everything each run (nothing in flight).
    assert service.run("all")["selected"] == 2
    _finish(env, ok=True)
    assert service.run("all")["selected"] == 2
    with pytest.raises(UnknownRoute):
        service.run("nope")
    listed = {r["name"]: r for r in service.list()}
    assert listed["ct"]["last_run"]["state"] == "succeeded"
    assert listed["ct"]["schedule"] == "0 2 * * *"


def test_dry_run_shows_the_header_before_and_after(tmp_path: Path) -> None:
    env = _env(tmp_path)
    service = RouteService(env.settings, env.index.engine, env.queue)
    ct, sops = store_study(env, 2)
    store_study(env, 1, modality="MR")
    dry = service.run("ct", dry_run=True)
    assert env.queue.counts()["queued"] == 0  # nothing submitted
    by_uid = {s["study_instance_uid"]: s for s in dry["studies"]}
    assert by_uid[ct]["would_send"] and by_uid[ct]["why"] == "never sent"
    assert by_uid[ct]["instances"] == 2 and by_uid[ct]["patient_name"] == "DOE^JOHN"
    (mr,) = [s for s in dry["studies"] if s["study_instance_uid"] != ct]
    assert not mr["would_send"] and mr["why"] == "does not match the filter"
    sample = dry["sample"]
    assert sample["sop_instance_uid"] in sops
    assert sample["before"]["PatientName"] == "DOE^JOHN"
    assert sample["after"]["PatientName"] != "DOE^JOHN"
    assert sample["after"]["StudyInstanceUID"] != ct
    service.run("ct")
    _finish(env, ok=True)
    again = service.run("ct", dry_run=True)
    assert {s["study_instance_uid"]: s["why"] for s in again["studies"]}[ct] == (
        "sent, unchanged since"
    )


def test_the_scheduler_runs_a_cron_route(tmp_path: Path) -> None:
    env = _env(tmp_path)
    store_study(env, 1)
    service = RouteService(env.settings, env.index.engine, env.queue)

    async def main() -> list[tuple[str, object]]:
        scheduler = RouteScheduler(env.settings, env.index.engine, service, retry_interval=0.1)
        await scheduler.start()
        try:
            await _until(lambda: scheduler.leading)
            assert scheduler.next_run_time("ct") is not None
            assert scheduler.next_run_time("all") is None  # not scheduled
            scheduler.run_due_now("ct")
            await _until(lambda: bool(scheduler.runs))
            return scheduler.runs
        finally:
            await scheduler.stop()

    runs = asyncio.run(main())
    assert [name for name, _ in runs] == ["ct"]
    (run,) = service.history("ct")
    assert (run["reason"], run["selected"]) == ("schedule", 1)


async def _until(predicate: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


@pytest.mark.postgres
def test_one_leader_on_postgresql_and_a_take_over(tmp_path: Path) -> None:
    gen = postgres_schema_url()
    url = next(gen)
    try:
        env = _env(tmp_path, url)
        other = _env(tmp_path / "b", url)

        async def main() -> None:
            a = RouteScheduler(
                env.settings,
                env.index.engine,
                RouteService(env.settings, env.index.engine),
                retry_interval=0.1,
            )
            b = RouteScheduler(
                other.settings,
                other.index.engine,
                RouteService(other.settings, other.index.engine),
                retry_interval=0.1,
            )
            await a.start()
            await _until(lambda: a.leading)
            await b.start()
            await asyncio.sleep(0.5)
            assert a.leading and not b.leading
            assert b.next_run_time("ct") == a.next_run_time("ct") is not None
            await a.stop()
            await _until(lambda: b.leading)
            assert b.next_run_time("ct") is not None
            await b.stop()

        asyncio.run(main())
        env.index.engine.dispose()
        other.index.engine.dispose()
    finally:
        gen.close()
