"""Ingest triggers: each matcher, batching into jobs, exactly-once consumption, start-up checks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from config.errors import ConfigError
from node.jobs.triggers import TriggerConsumer, check_triggers
from storage.models import IngestEvent, Job, StableMark
from tests.jobs.conftest import Env
from tests.jobs.helpers_pipelines import pipeline_env, store_study, trigger


def _jobs(env: Env) -> list[Job]:
    with env.index.read_session() as session:
        return list(session.scalars(select(Job).order_by(Job.pk)))


def _events(env: Env) -> int:
    with env.index.read_session() as session:
        return int(session.scalar(select(func.count()).select_from(IngestEvent)) or 0)


MATCHERS = [
    # (match keys, does the CT study from MOD1 to NODE match?)
    ((), True),
    (("0008,0060=CT",), True),
    (("Modality=MR",), False),
    (("Modality=CT\\MR",), True),
    (("(0008,0060)=C?",), True),
    (("CallingAE=MOD1",), True),
    (("CallingAE=MOD*",), True),
    (("CallingAE=OTHER",), False),
    (("CalledAE=NODE",), True),
    (("CalledAE=COPY",), False),
    (("SOPClass=CTImageStorage",), True),
    (("SOPClass=1.2.840.10008.5.1.4.1.1.4",), False),
    (("PatientName=doe*",), True),  # PN ignores case, as C-FIND
    (("PatientID=PID1",), True),
    (("StudyDate=20240101-20240131",), True),
    (("StudyDate=-20231231",), False),
    (("StudyDescription=CHEST", "CallingAE=MOD1", "Modality=CT"), True),
    (("StudyDescription=CHEST", "CallingAE=MOD2"), False),
    (("InstanceNumber=1",), True),  # one instance of two
]


@pytest.mark.parametrize(("keys", "expected"), MATCHERS)
def test_each_matcher(tmp_path: Path, keys: tuple[str, ...], expected: bool) -> None:
    env = pipeline_env(tmp_path, triggers=(trigger("t", "ingest", "render --size 16", *keys),))
    assert env.index.outbox  # Settings.ingest_events_wanted
    _, sops = store_study(env, 2)
    consumer = TriggerConsumer(env.settings, env.index.engine, env.queue)
    assert consumer.consume_once() == 2
    jobs = _jobs(env)
    if not expected:
        assert jobs == []
        return
    (job,) = jobs
    assert job.kind == "render" and job.origin == "trigger:t"
    assert job.params["ae"] == "NODE" and job.params["trigger"] == "t"
    assert job.params["size"] == 16
    wanted = sops[:1] if keys == ("InstanceNumber=1",) else sops
    assert job.params["instances"] == wanted


def test_events_are_consumed_exactly_once_in_batches(tmp_path: Path) -> None:
    env = pipeline_env(
        tmp_path,
        triggers=(
            trigger("ct", "ingest", "render --size 16", "Modality=CT"),
            trigger("all", "ingest", "render --size 32"),
            trigger("mr", "ingest", "render", "Modality=MR"),
        ),
    )
    store_study(env, 5)
    store_study(env, 2, modality="MR")
    assert _events(env) == 7
    consumer = TriggerConsumer(env.settings, env.index.engine, env.queue, batch=4)
    assert consumer.consume_once() == 4
    assert consumer.consume_once() == 3
    assert consumer.consume_once() == 0
    assert _events(env) == 0
    per_trigger: dict[str, int] = {}
    for job in _jobs(env):
        per_trigger[job.origin] = per_trigger.get(job.origin, 0) + len(job.params["instances"])
    assert per_trigger == {"trigger:ct": 5, "trigger:all": 7, "trigger:mr": 2}
    # A second consumer (a restart) finds nothing to do again.
    assert TriggerConsumer(env.settings, env.index.engine, env.queue).consume_once() == 0
    assert sum(per_trigger.values()) == sum(len(j.params["instances"]) for j in _jobs(env))


def test_a_failed_pass_leaves_the_events_for_the_next(tmp_path: Path) -> None:
    env = pipeline_env(tmp_path, triggers=(trigger("all", "ingest", "render"),))
    store_study(env, 3)
    consumer = TriggerConsumer(env.settings, env.index.engine, env.queue)
    real = consumer._apply

    def boom(*args: object) -> None:
        real(*args)  # type: ignore[arg-type]
        raise RuntimeError("crash after the jobs were submitted")

    consumer._apply = boom  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        consumer.consume_once()
    assert _events(env) == 3 and _jobs(env) == []  # all or nothing
    consumer._apply = real  # type: ignore[method-assign]
    assert consumer.consume_once() == 3
    assert len(_jobs(env)) == 1


def test_concurrent_consumers_share_the_events(tmp_path: Path) -> None:
    env = pipeline_env(tmp_path, triggers=(trigger("all", "ingest", "render"),))
    for _ in range(4):
        store_study(env, 5)
    consumers = [
        TriggerConsumer(env.settings, env.index.engine, env.queue, batch=3) for _ in range(3)
    ]

    def drain(c: TriggerConsumer) -> None:
        while c.consume_once():
            pass

    threads = [threading.Thread(target=drain, args=(c,)) for c in consumers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(c.handled for c in consumers) == 20
    instances = [uid for job in _jobs(env) for uid in job.params["instances"]]
    assert len(instances) == len(set(instances)) == 20


def test_stable_rules_mark_studies_changing(tmp_path: Path) -> None:
    env = pipeline_env(tmp_path, triggers=(trigger("s", "stable", "render"),))
    study, _ = store_study(env, 2)
    TriggerConsumer(env.settings, env.index.engine, env.queue).consume_once()
    with env.index.read_session() as session:
        marks = list(session.scalars(select(StableMark)))
    assert [(m.ae_title, m.study_instance_uid) for m in marks] == [("NODE", study)]
    assert _jobs(env) == []  # a stable rule does nothing on ingest


def test_an_invalid_job_fails_start_up_with_the_trigger_name(tmp_path: Path) -> None:
    bad = trigger("thumbs", "ingest", "render --no-such-flag").model_copy(update={"line": 7})
    env = pipeline_env(tmp_path, triggers=(bad,), config_path=tmp_path / "node.cfg")
    with pytest.raises(ConfigError) as info:
        check_triggers(env.settings)
    assert str(info.value).startswith(f"{tmp_path / 'node.cfg'}:7: trigger thumbs: ")
    for job in ("frobnicate", "render --study 1.2.3"):
        env.with_settings(triggers=(trigger("x", "ingest", job),))
        with pytest.raises(ConfigError, match="trigger x"):
            check_triggers(env.settings)
