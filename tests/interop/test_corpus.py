"""The whole shared corpus through DCMTK's storescu, and every stored file back by C-GET.

storescu proposes only uncompressed syntaxes unless told, so the corpus is sent in one run
per transfer syntax with the matching ``-x`` option (files in syntaxes storescu cannot
propose, and files it cannot read, are left out and counted).  Every file storescu sent and
that carries the four UIDs an instance needs must be indexed; every indexed instance must
come back by C-GET with its dataset byte-identical to the stored file.
"""

from __future__ import annotations

import collections
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt
from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelGet

from tests.interop.conftest import PEER_ENV, dataset_bytes
from tests.interop.test_dcmtk import STORESCU_FLAG

pytestmark = pytest.mark.interop


def _has_uids(path: Path) -> str | None:
    """The SOP Instance UID when the file parses and has the four UIDs, else None."""
    try:
        ds = dcmread(path, stop_before_pixels=True)
        uids = [
            str(ds.get(k, "") or "").strip()
            for k in ("SOPInstanceUID", "SOPClassUID", "StudyInstanceUID", "SeriesInstanceUID")
        ]
    except Exception:  # noqa: BLE001 - broken files are part of the corpus
        return None
    return uids[0] if all(uids) else None


def test_whole_corpus_stored_and_retrieved(
    interop_node, require_binary, corpus_dir: Path, corpus_manifest, tmp_path: Path
) -> None:
    import subprocess

    storescu = require_binary("storescu")
    node = interop_node(max_pdu_size=65536)
    groups: dict[str, list[str]] = collections.defaultdict(list)
    for row in corpus_manifest:
        if row["TransferSyntaxUID"] in STORESCU_FLAG:
            groups[row["TransferSyntaxUID"]].append(row["path"])
    failed_by_sender: set[str] = set()
    for syntax, paths in groups.items():
        files = [str(corpus_dir / p) for p in paths]
        proc = subprocess.run(
            [
                storescu,
                "-aec",
                "NODE",
                "-R",
                "-nh",
                STORESCU_FLAG[syntax],
                "127.0.0.1",
                str(node.port),
                *files,
            ],
            capture_output=True,
            text=True,
            env=PEER_ENV,
            timeout=600,
            errors="replace",
        )
        # storescu names the files it could not send ("Store Failed, file: ...", "unknown
        # storage SOP class in file: ...", "missing SOP class (or instance) in file: ...")
        complaints = [line for line in proc.stderr.splitlines() if "file: " in line]
        failed_by_sender.update(f for f in files if any(f"file: {f}" in c for c in complaints))
    sent = [str(corpus_dir / p) for paths in groups.values() for p in paths]
    expected = {
        uid for path in sent if path not in failed_by_sender and (uid := _has_uids(Path(path)))
    }
    stored = {i.sop_instance_uid: i for i in node.index.instances("NODE")}
    assert len(expected) > 900
    missing = expected - set(stored)
    assert not missing, f"{len(missing)} sent instance(s) not indexed: {sorted(missing)[:5]}"

    # Every stored instance back by C-GET, one association, one request per study.
    pairs = sorted({(i.sop_class_uid, i.transfer_syntax_uid) for i in stored.values()})
    assert len(pairs) <= 128
    received: dict[str, tuple[Dataset, str]] = {}

    def on_store(event: evt.Event) -> int:
        ds = event.dataset
        # the node in this process turned on pynetdicom's chunked receive: a file, then
        chunked = getattr(event.request, "_dataset_path", None)
        data = dataset_bytes(Path(chunked)) if chunked else event.encoded_dataset(False)
        received[str(ds.SOPInstanceUID).rstrip("\0 ")] = (data, str(event.context.transfer_syntax))
        return 0x0000

    ae = AE(ae_title="GETSCU")
    ae.maximum_pdu_size = 65536
    ae.add_requested_context(StudyRootQueryRetrieveInformationModelGet)
    for sop_class, syntax in pairs:
        ae.add_requested_context(sop_class, [syntax])
    roles = [build_role(sop_class, scp_role=True) for sop_class in {p[0] for p in pairs}]
    assoc = ae.associate(
        "127.0.0.1",
        node.port,
        ae_title="NODE",
        ext_neg=roles,
        evt_handlers=[(evt.EVT_C_STORE, on_store)],
        max_pdu=65536,
    )
    assert assoc.is_established
    failures = 0
    for study_uid in sorted({i.study_instance_uid for i in stored.values()}):
        query = Dataset()
        query.QueryRetrieveLevel = "STUDY"
        query.StudyInstanceUID = study_uid
        final = list(assoc.send_c_get(query, StudyRootQueryRetrieveInformationModelGet))[-1][0]
        failures += int(final.get("NumberOfFailedSuboperations", 0))
    assoc.release()
    assert failures == 0
    assert set(received) == set(stored)
    for uid, instance in stored.items():
        data, syntax = received[uid]
        assert syntax == instance.transfer_syntax_uid
        assert data == dataset_bytes(node.stores["NODE"].absolute(instance.path)), uid
