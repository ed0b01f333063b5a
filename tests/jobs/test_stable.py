"""Study-stable: once per change, only after StudyStableSeconds, rules and routes together."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import select

from node.jobs.stable import StableChecker
from node.jobs.triggers import TriggerConsumer
from storage.index import utcnow
from storage.models import Job, RouteRun
from tests.jobs.conftest import Env, peer_hosts
from tests.jobs.helpers_pipelines import pipeline_env, route, store_study, trigger


def _jobs(env: Env) -> list[Job]:
    with env.index.read_session() as session:
        return list(session.scalars(select(Job).order_by(Job.pk)))


def _consume(env: Env) -> None:
    TriggerConsumer(env.settings, env.index.engine, env.queue).consume_once()


def test_fires_once_per_change_after_the_quiet_time(tmp_path: Path) -> None:
    env = pipeline_env(
        tmp_path,
        study_stable_seconds=1.0,
        triggers=(
            trigger("ct", "stable", "render --size 16", "Modality=CT", "CallingAE=MOD*"),
            trigger("mr", "stable", "render", "Modality=MR"),
        ),
    )
    study, _ = store_study(env, 3)
    _consume(env)
    checker = StableChecker(env.settings, env.index.engine, env.queue)
    assert checker.check_once() == 0  # not quiet for a second yet
    later = utcnow() + timedelta(seconds=2)
    assert checker.check_once(later) == 1
    assert checker.check_once(later) == 0  # once
    (job,) = _jobs(env)
    assert (job.origin, job.params["studies"], job.params["size"]) == (
        "trigger:ct",
        [study],
        16,
    )
    # A new instance is a change: it fires again, once.
    store_study(env, 1, study=study)
    _consume(env)
    assert checker.check_once() == 0  # changed less than a second ago
    assert checker.check_once(utcnow() + timedelta(seconds=2)) == 1
    assert checker.check_once(utcnow() + timedelta(seconds=4)) == 0
    assert [j.origin for j in _jobs(env)] == ["trigger:ct", "trigger:ct"]
    # Another checker (a restart, another node) does not fire it again.
    other = StableChecker(env.settings, env.index.engine, env.queue)
    assert other.check_once(utcnow() + timedelta(seconds=10)) == 0


def test_studies_from_before_the_rules_do_not_fire(tmp_path: Path) -> None:
    env = pipeline_env(tmp_path, study_stable_seconds=1.0)
    store_study(env, 2)  # no rule yet: no outbox, no mark
    env = pipeline_env(
        tmp_path, study_stable_seconds=1.0, triggers=(trigger("s", "stable", "render"),)
    )
    _consume(env)
    checker = StableChecker(env.settings, env.index.engine, env.queue)
    assert checker.check_once(utcnow() + timedelta(seconds=5)) == 0


def test_a_stable_route_runs_for_the_studies_of_its_source(tmp_path: Path) -> None:
    env = pipeline_env(
        tmp_path,
        study_stable_seconds=1.0,
        hosts=peer_hosts(104),
        routes=(route("out", trigger="stable"),),
    )
    assert env.index.outbox
    first, _ = store_study(env, 2)
    second, _ = store_study(env, 1)
    store_study(env, 1, ae="COPY")
    _consume(env)
    checker = StableChecker(env.settings, env.index.engine, env.queue)
    assert checker.check_once(utcnow() + timedelta(seconds=2)) == 3
    with env.index.read_session() as session:
        (run,) = session.scalars(select(RouteRun))
    assert (run.route, run.reason, run.selected) == ("out", "stable", 2)
    jobs = _jobs(env)
    assert sorted(j.params["studies"][0] for j in jobs) == sorted([first, second])
    assert {j.kind for j in jobs} == {"forward"} and {j.origin for j in jobs} == {"route:out"}
