"""``node.receive.ReceivedPart``: the file a C-STORE dataset is received into.

While the fragments are written it parses the header (for ingest); the file must still
hold exactly the meta and the fragments.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from node.receive import ReceivedPart
from storage.ingest import build_file_meta
from tests.services.helpers import make_ct

EXPLICIT = "1.2.840.10008.1.2.1"


def test_fragments_land_in_the_file_and_the_header_is_parsed_on_the_way(tmp_path: Path) -> None:
    ds = make_ct(rows=256)
    ds.Rows = ds.Columns = 256
    ds.PixelData = np.arange(256 * 256, dtype="<u2").tobytes()
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = False, True
    write_dataset(buffer, ds)
    data = buffer.getvalue()
    meta = build_file_meta(ds.SOPClassUID, ds.SOPInstanceUID, EXPLICIT, "SCU")
    part = ReceivedPart(tmp_path, meta, EXPLICIT)
    for offset in range(0, len(data), 16372):
        part.write(memoryview(data)[offset : offset + 16372])
        if offset == 0:
            assert part.header is not None  # parsed with the first fragment
    part.close()
    assert Path(part.name).read_bytes() == meta + data
    assert part.header.SOPInstanceUID == ds.SOPInstanceUID
    assert "PixelData" not in part.header


def test_a_part_without_a_known_syntax_leaves_the_header_to_ingest(tmp_path: Path) -> None:
    part = ReceivedPart(tmp_path, b"meta", "")
    part.write(b"\x08\x00\x18\x00UI\x04\x001.2\0")
    part.close()
    assert part.header is None
    assert Path(part.name).read_bytes() == b"meta\x08\x00\x18\x00UI\x04\x001.2\0"
