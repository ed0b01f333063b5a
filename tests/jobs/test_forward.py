"""``forward`` into a real DCMTK storescp: bytes, anonymization, transcoding, peer down."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydicom import dcmread

from node.jobs import submit_job
from tests.interop.conftest import StoreSCP, dataset_bytes
from tests.jobs.conftest import Env, make_env, peer_hosts

pytestmark = pytest.mark.interop


@pytest.fixture
def storescp(
    require_binary: Callable[[str], str], tmp_path: Path
) -> Iterator[Callable[..., StoreSCP]]:
    started: list[StoreSCP] = []

    def _start(port: int, *extra: str) -> StoreSCP:
        scp = StoreSCP(require_binary("storescp"), port, tmp_path / f"scp{len(started)}", [*extra])
        started.append(scp)
        return scp

    yield _start
    for scp in started:
        scp.stop()


@pytest.fixture
def fenv(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[Env]:
    port = free_port()
    env = make_env(tmp_path, hosts=peer_hosts(port))
    env.peer_port = port  # type: ignore[attr-defined]
    yield env
    env.index.engine.dispose()


def _received(scp: StoreSCP) -> dict[str, Path]:
    out = {}
    for path in scp.files():
        ds = dcmread(path, stop_before_pixels=True)
        out[str(ds.SOPInstanceUID)] = path
    return out


def test_forward_sends_the_stored_bytes(fenv: Env, storescp: Callable[..., StoreSCP]) -> None:
    scp = storescp(fenv.peer_port)  # type: ignore[attr-defined]
    study, sops = fenv.add_study(4)
    pk = submit_job(
        fenv.queue,
        fenv.settings,
        "forward",
        {"studies": [study], "destination": "DEST", "route": "r1", "route_study": 7},
        "route:r1",
    )
    (view,) = fenv.run([pk])
    assert view.state == "succeeded", view.error
    assert view.result["sent"] == 4 and view.result["failed"] == 0
    assert view.params["route"] == "r1" and view.params["route_study"] == 7
    assert sorted(view.checkpoint["done"]) == sorted(sops)
    received = _received(scp)
    assert sorted(received) == sorted(sops)
    store = fenv.stores["NODE"]
    for inst in fenv.index.instances("NODE", study_uids=[study]):
        stored = dataset_bytes(store.absolute(inst.path))
        assert dataset_bytes(received[inst.sop_instance_uid]) == stored


def test_forward_anonymized_is_consistent_across_jobs(
    fenv: Env, storescp: Callable[..., StoreSCP]
) -> None:
    scp = storescp(fenv.peer_port, "+xa", "+uf")  # type: ignore[attr-defined]
    study, sops = fenv.add_study(3, rows=8, patient_name="SECRET^NAME", patient_id="PID-42")
    params = {
        "studies": [study],
        "destination": "DEST",
        "anonymize": {"secret": "s3cret"},
        "convert": {"family": "rle"},
    }
    # Two jobs with the same secret (as two runs of a route): the peer gets each new
    # instance twice, identical in its UIDs and pseudonyms.
    pks = [submit_job(fenv.queue, fenv.settings, "forward", params, "t") for _ in range(2)]
    views = fenv.run(pks)
    assert [v.state for v in views] == ["succeeded"] * 2, [v.error for v in views]
    (new_study,) = views[0].result["new_study_uids"]
    assert views[1].result["new_study_uids"] == [new_study] != [study]
    received: dict[str, list[tuple[str, str, str]]] = {}
    for path in scp.files():
        ds = dcmread(path)
        assert "SECRET" not in str(ds.PatientName) and ds.PatientID != "PID-42"
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.5"
        key = (str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID), str(ds.PatientID))
        received.setdefault(str(ds.SOPInstanceUID), []).append(key)
    assert len(received) == 3 and not set(received) & set(sops)
    for copies in received.values():
        assert len(copies) == 2 and copies[0] == copies[1]
        assert copies[0][0] == new_study


def test_forward_transcodes_when_the_peer_refuses_the_stored_syntax(
    fenv: Env, storescp: Callable[..., StoreSCP]
) -> None:
    scp = storescp(fenv.peer_port)  # type: ignore[attr-defined]  # uncompressed only
    study, sops = fenv.add_study(2, rows=8)
    (conv,) = fenv.run(
        [
            submit_job(
                fenv.queue, fenv.settings, "convert", {"studies": [study], "convert": "rle"}, "t"
            )
        ]
    )
    assert conv.state == "succeeded", conv.error
    params = {"studies": [study], "destination": "DEST"}
    (view,) = fenv.run([submit_job(fenv.queue, fenv.settings, "forward", params, "t")])
    assert view.state == "succeeded", view.error
    assert view.result["sent"] == 2 and view.result["warnings"] == 2
    for path in scp.files():
        assert dcmread(path).file_meta.TransferSyntaxUID != "1.2.840.10008.1.2.5"


def test_peer_down_retries_with_backoff_then_succeeds(
    fenv: Env, storescp: Callable[..., StoreSCP]
) -> None:
    study, sops = fenv.add_study(2)
    params = {"studies": [study], "destination": "DEST"}
    pk = submit_job(fenv.queue, fenv.settings, "forward", params, "t")
    # Nothing listens: the attempt fails and the job is queued again with a backoff.
    views = fenv.run([pk], until=lambda v: v[0].attempts >= 2 and v[0].state == "queued")
    assert views[0].state == "queued"
    assert "cannot connect" in (views[0].error or "")
    assert views[0].next_attempt_at > views[0].updated_at
    scp = storescp(fenv.peer_port)  # type: ignore[attr-defined]
    (view,) = fenv.run([pk])
    assert view.state == "succeeded", view.error
    assert view.attempts >= 3
    assert sorted(_received(scp)) == sorted(sops)
