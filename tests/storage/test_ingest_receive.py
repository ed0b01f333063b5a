"""The receive-side shortcuts of ingest: hand-encoded file meta, adopting a received file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from config.model import AEEntry
from storage.db import create_index_engine
from storage.files import FileStore
from storage.index import Index
from storage.ingest import Ingestor, Received, _build_file_meta_pydicom, build_file_meta
from storage.migrate import upgrade
from tests.services.helpers import make_ct

CT = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT = "1.2.840.10008.1.2.1"


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "syntax", "source"),
    [
        (CT, "1.2.3.4", EXPLICIT, "STORESCU"),  # odd-length UID: NUL padding
        (CT, "1.2.3.45", "1.2.840.10008.1.2", "  AE  "),  # AE stripped, padded with a space
        ("1.2", "1.2.3", "1.2.840.10008.1.2.4.50", ""),  # no SourceApplicationEntityTitle
        ("1.2", "1.23", EXPLICIT, "ABCDEFGHIJKLMNOP"),
        pytest.param(
            CT,
            "1.2.3.\u00e9",
            EXPLICIT,
            "AE",
            marks=pytest.mark.filterwarnings("ignore:Invalid value for VR UI"),
        ),  # not ASCII: pydicom encodes it
    ],
)
def test_file_meta_is_what_pydicom_writes(
    sop_class: str, sop_instance: str, syntax: str, source: str
) -> None:
    expected = _build_file_meta_pydicom(sop_class, sop_instance, syntax, source.strip())
    assert build_file_meta(sop_class, sop_instance, syntax, source) == expected


def _encoded(ds: object) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = False, True
    write_dataset(buffer, ds)  # type: ignore[arg-type]
    return buffer.getvalue()


@pytest.fixture
def ingestor(tmp_path: Path) -> Iterator[tuple[Ingestor, FileStore, AEEntry]]:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade(engine)
    entry = AEEntry(title="NODE", storage_area=tmp_path / "store", access="RW")
    store = FileStore(entry.storage_area)
    yield Ingestor(Index(engine), {"NODE": store}), store, entry
    engine.dispose()


def _received_file(store: FileStore, meta: bytes, dataset: bytes) -> Received:
    path = store.tmp / "tmprecvtest.dcm"
    path.write_bytes(meta + dataset)
    return Received(path=path, offset=len(meta), meta=meta)


def test_a_received_file_with_our_meta_is_adopted_not_copied(
    ingestor: tuple[Ingestor, FileStore, AEEntry],
) -> None:
    ing, store, entry = ingestor
    ds = make_ct()
    dataset = _encoded(ds)
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, EXPLICIT, "MODALITY")
    received = _received_file(store, meta, dataset)
    inode = received.path.stat().st_ino  # type: ignore[union-attr]

    result = ing.store(entry, received, EXPLICIT, calling_ae_title="MODALITY")

    stored = store.absolute(result.path)
    assert stored.stat().st_ino == inode  # the very file, renamed and linked
    assert stored.read_bytes() == meta + dataset
    assert list(store.tmp.iterdir()) == []  # source renamed, marker dropped
    assert dcmread(stored).file_meta.SourceApplicationEntityTitle == "MODALITY"


def test_a_received_file_with_other_meta_is_copied(
    ingestor: tuple[Ingestor, FileStore, AEEntry],
) -> None:
    ing, store, entry = ingestor
    ds = make_ct()
    dataset = _encoded(ds)
    theirs = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, EXPLICIT, "SOMEONE")
    received = _received_file(store, theirs, dataset)

    result = ing.store(entry, received, EXPLICIT, calling_ae_title="MODALITY")

    ours = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, EXPLICIT, "MODALITY")
    assert store.absolute(result.path).read_bytes() == ours + dataset
    assert received.path is not None and received.path.exists()  # the receiver removes it


def test_adopt_then_crash_before_the_index_leaves_nothing_after_recovery(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "store")
    source = store.tmp / "tmprecvx.dcm"
    source.write_bytes(b"data")
    pending = store.adopt("ab/1.2/1.2.3.dcm", source)
    assert store.absolute(pending.relative).read_bytes() == b"data"
    assert not source.exists() and pending.marker.exists()
    # the node dies here: no index row, the marker survives
    assert store.recover(lambda relative: False) == (1, 1)
    assert not store.absolute("ab/1.2/1.2.3.dcm").exists()
    assert list(store.tmp.iterdir()) == []


def test_recovery_removes_a_replaced_file_a_crash_left_behind(tmp_path: Path) -> None:
    """kill -9 after the index moved to the new file, before the old one was removed."""
    store = FileStore(tmp_path / "store")
    old = store.relative_path("1.2.3", "1.2.3.4", unique=True)
    store.put(old, [b"old"]).done()
    new = store.relative_path("1.2.3", "1.2.3.4", unique=True)
    other = store.relative_path("1.2.3", "1.2.3.44", unique=True)  # another instance
    store.put(other, [b"other"]).done()
    pending = store.put(new, [b"new"])  # indexed, then the node died: marker left
    indexed = {new}
    assert store.recover(lambda relative: relative in indexed) == (1, 1)
    assert not store.absolute(old).exists()
    assert store.absolute(new).read_bytes() == b"new"
    assert store.absolute(other).exists()  # not the same instance: left alone
    assert not pending.marker.exists()
