"""``EarlyHeader``: the header parsed from a dataset's first fragments, while the rest arrives.

It must return the header exactly when the bytes up to the pixel data are there (never a
header cut short), give up cheaply when that never happens, and ingest must store from it
what it would store from the whole file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from config.model import AEEntry
from storage.db import create_index_engine
from storage.files import FileStore
from storage.index import Index
from storage.ingest import EarlyHeader, Ingestor, Received, build_file_meta
from storage.migrate import upgrade
from tests.services.helpers import make_ct

EXPLICIT = "1.2.840.10008.1.2.1"
IMPLICIT = "1.2.840.10008.1.2"


def _encoded(ds: Dataset, syntax: str) -> bytes:
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = syntax == IMPLICIT, True
    write_dataset(buffer, ds)
    return buffer.getvalue()


def _ct_with_pixels(rows: int = 64) -> Dataset:
    ds = make_ct(rows=rows)
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.arange(rows * rows, dtype="<u2").tobytes()
    return ds


def _feed(head: EarlyHeader, data: bytes, chunk: int) -> tuple[Dataset | None, int]:
    """Feed ``data`` in chunks; (header, bytes fed when it came) or (None, all)."""
    for offset in range(0, len(data), chunk):
        header = head.feed(memoryview(data)[offset : offset + chunk])
        if header is not None:
            return header, offset + chunk
        if not head.waiting:
            return None, offset + chunk
    return None, len(data)


@pytest.mark.parametrize("syntax", [EXPLICIT, IMPLICIT])
@pytest.mark.parametrize("chunk", [7, 100, 16372])
def test_the_header_comes_once_the_pixel_data_tag_has_arrived(syntax: str, chunk: int) -> None:
    ds = _ct_with_pixels()
    data = _encoded(ds, syntax)
    pixel_tag_at = data.index(b"\xe0\x7f\x10\x00")
    header, fed = _feed(EarlyHeader(syntax), data, chunk)
    assert header is not None
    assert fed >= pixel_tag_at + 4  # never before the tag itself is there
    assert "PixelData" not in header
    assert header.SOPInstanceUID == ds.SOPInstanceUID
    assert header.PatientName == ds.PatientName


def test_a_dataset_without_pixel_data_gives_up_after_a_few_parses() -> None:
    ds = make_ct()
    del ds.PixelData
    ds.ImageComments = "x" * 4000
    data = _encoded(ds, EXPLICIT) * 400  # about 2 MB of elements and never a pixel tag
    head = EarlyHeader(EXPLICIT)
    header, fed = _feed(head, data, 16384)
    assert header is None
    assert not head.waiting
    assert fed <= EarlyHeader.LIMIT + 16384


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2.1.99", "", "1.2.3.4"])
def test_deflated_or_unknown_syntaxes_are_left_to_the_parse_at_the_end(syntax: str) -> None:
    assert not EarlyHeader(syntax).waiting


def test_garbage_never_makes_a_header() -> None:
    rng = np.random.default_rng(7)
    head = EarlyHeader(EXPLICIT)
    header, _ = _feed(head, rng.bytes(1 << 21), 16384)
    assert header is None


def test_ingest_stores_from_the_early_header_what_it_would_store_from_the_file(
    tmp_path: Path,
) -> None:
    engine = create_index_engine(f"sqlite:///{tmp_path / 'index.sqlite'}")
    upgrade(engine)
    index = Index(engine)
    ae = AEEntry(title="A", storage_area=tmp_path / "a")
    ingestor = Ingestor(index, {"A": FileStore(tmp_path / "a")})
    ds = _ct_with_pixels()
    data = _encoded(ds, EXPLICIT)
    header, _ = _feed(EarlyHeader(EXPLICIT), data, 16372)
    assert header is not None
    header.PatientName = "CHANGED^TO^SHOW^IT^IS^USED"  # a header the file does not hold
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, EXPLICIT, "SCU")
    received = FileStore(tmp_path / "a").tmp / "tmprecv0.dcm"
    received.write_bytes(meta + data)
    result = ingestor.store(
        ae,
        Received(path=received, offset=len(meta), meta=meta, header=header),
        EXPLICIT,
        calling_ae_title="SCU",
    )
    stored = (tmp_path / "a" / result.path).read_bytes()
    assert stored == meta + data  # the file is the received bytes, whatever the header
    [row] = index.instances("A")
    assert row.sop_instance_uid == ds.SOPInstanceUID
    with engine.connect() as conn:
        name = conn.exec_driver_sql("SELECT patient_name FROM patients").scalar()
    assert name == "CHANGED^TO^SHOW^IT^IS^USED"
    engine.dispose()
