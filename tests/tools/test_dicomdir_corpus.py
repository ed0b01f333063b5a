"""The whole shared corpus exported to one STD-GEN-CD medium that validates.

One export of every corpus file (about 1,000, in one process): files are copied or converted
to Explicit VR Little Endian, the DICOMDIR is read back by pydicom's ``FileSet`` and checked by
``dcmdump``, ``dciodvfy`` (no error) and ``gdcmdump``.

Left out of the input, and said so here: the few files whose own Study, Series or SOP Instance
UID is not a valid UID (hex strings, ``999.``/``9.`` roots).  A DICOMDIR must repeat the file's
UID, so dciodvfy would rightly flag those records; ``test_dicomdir`` shows they are referenced
with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

from node.tools.dicomdir import export_files
from node.tools.dicomdir._values import is_valid_uid
from tests.tools.test_dicomdir import validate

#: Why a corpus file may be left out of the medium (anything else fails the test).
_ACCEPTED = (
    "duplicate SOP Instance UID",  # the corpus holds copies of one instance in many syntaxes
    "is itself a DICOMDIR",
    "no SOP Class UID or SOP Instance UID",
    "not a DICOM file",
)


def test_whole_corpus_exports_to_a_valid_medium(
    corpus_dir: Path,
    corpus_manifest: list[dict[str, str]],
    tmp_path: Path,
    require_binary: Callable[[str], str],
) -> None:
    def uids_ok(row: dict[str, str]) -> bool:
        uids = [row["SOPInstanceUID"], row["StudyInstanceUID"], row["SeriesInstanceUID"]]
        return all(is_valid_uid(uid) for uid in uids if uid)

    rows = [row for row in corpus_manifest if uids_ok(row)]
    assert len(corpus_manifest) - len(rows) < 20
    decodable = {
        str(corpus_dir / row["path"])
        for row in rows
        if row["pixel_decode_pydicom"].startswith("ok")
        or row["pixel_decode_pydicom"] == "no-pixel-data"
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = export_files(
            [corpus_dir / row["path"] for row in rows], tmp_path / "media", fileset_id="CORPUS"
        )
    unexplained = [
        f"{s.source}: {s.reason}"
        for s in report.skipped
        if not s.reason.startswith(_ACCEPTED)
        and not (s.reason.startswith("cannot convert") and s.source not in decodable)
    ]
    assert unexplained == []
    # every decodable instance is on the medium once
    referenced_uids = {row["SOPInstanceUID"] for row in rows if str(corpus_dir / row["path"])
                       in decodable and row["SOPInstanceUID"]}  # fmt: skip
    assert report.referenced >= len(referenced_uids) > 900
    fs = validate(
        tmp_path / "media" / "DICOMDIR", require_binary, expect_instances=report.referenced
    )
    on_medium = {instance.SOPInstanceUID for instance in fs}
    assert referenced_uids <= on_medium
    assert {instance.TransferSyntaxUID for instance in fs} == {"1.2.840.10008.1.2.1"}
    assert report.inventions  # the corpus has files without StudyID, dates, numbers...
