"""``node.tools.dump`` against DCMTK ``dcmdump``, and the layout on small datasets.

The corpus test runs ``dcmdump`` once over every file (in a background process while our
side dumps the same files) and compares, element by element and at every sequence depth,
the set of tags, the VR, the value and the length.  The differences that remain are
documented where they are allowed:

- ``+U8`` makes dcmdump rewrite (0008,0005) to ISO_IR 192 and report UTF-8 lengths, so
  that attribute is skipped and text lengths are compared only for ASCII values;
- dcmdump's internal VRs (``up``, ``xs``, ``ox``, ``lt``) stand for UL, US/SS, OB/OW;
- where dcmdump shows ``UN``/``??`` (no dictionary entry, or a zero-length UN that pydicom
  re-types from its dictionaries) the VR and value are not compared; such elements must
  stay a small minority;
- dcmdump shortens long values (with or without ``...``): a prefix is compared;
- an odd-length value is reported one byte longer by dcmdump (it pads on reading);
- files dcmdump refuses (damaged) are skipped, and must stay a handful.
"""

from __future__ import annotations

import math
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit

from node.tools.dump import (
    ITEM,
    ITEM_DELIMITER,
    SEQUENCE_DELIMITER,
    UnreadableFile,
    dump,
    dump_lines,
    read_dataset,
)

_LINE = re.compile(
    r"^(?P<ind> *)\((?P<g>[0-9a-f]{4}),(?P<e>[0-9a-f]{4})\) (?P<vr>\S\S) (?P<val>.*?) *"
    r"# *(?P<len>u/l|\d+), *(?P<vm>\d+) (?P<name>[^\n]*)$",
    re.S,
)
_START = re.compile(r"^ *\([0-9a-f]{4},[0-9a-f]{4}\) ")
_HEAD = re.compile(r"^# dcmdump \(\d+/\d+\): (.*)$")

Row = tuple[int, int, str, str, int, int | None]  # depth, tag, VR, value, VM, length

_EQUIVALENT_VR = {"up": {"UL"}, "xs": {"US", "SS"}, "ox": {"OB", "OW"}, "lt": {"OW", "US", "SS"}}
_NUMERIC_VR = {"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "OF", "OD", "OL", "OV"}


def parse_dcmdump(text: str) -> dict[str, list[Row]]:
    """Rows of the data set (not the meta header) of each file in ``dcmdump +F`` output."""
    out: dict[str, list[Row]] = {}
    rows: list[Row] | None = None
    in_meta = False
    pending: str | None = None
    for line in text.split("\n"):
        head = _HEAD.match(line)
        if head:
            rows = out.setdefault(head.group(1), [])
            in_meta, pending = False, None
            continue
        if rows is None:
            continue
        if _START.match(line):
            pending = line
        elif pending is not None:  # a value with a line break in it
            pending += "\n" + line
        else:
            if line.startswith("# Dicom-Meta-Information-Header"):
                in_meta = True
            elif line.startswith("# Dicom-Data-Set"):
                in_meta = False
            continue
        match = _LINE.match(pending)
        if match is None:
            continue
        pending = None
        if not in_meta:
            length = None if match.group("len") == "u/l" else int(match.group("len"))
            rows.append(
                (
                    len(match.group("ind")) // 2,
                    int(match.group("g") + match.group("e"), 16),
                    match.group("vr"),
                    match.group("val"),
                    int(match.group("vm")),
                    length,
                )
            )
    return out


def by_path(rows: list[Row]) -> dict[tuple[Any, ...], Row]:
    """Key each element by its position: ((sequence tag, item index), ...), tag."""
    out: dict[tuple[Any, ...], Row] = {}
    stack: list[list[int]] = []
    for row in rows:
        depth, tag, vr = row[0], row[1], row[2]
        if tag == ITEM:
            if vr != "pi":
                stack = stack[: (depth + 1) // 2]
                stack[-1][1] += 1
            continue
        if tag in (ITEM_DELIMITER, SEQUENCE_DELIMITER):
            continue
        stack = stack[: depth // 2]
        out[(tuple((s, i) for s, i in stack), tag)] = row
        if vr == "SQ":
            stack.append([tag, -1])
    return out


def _components(value: str) -> tuple[list[str], bool]:
    if value == "(no value available)":
        return [], False
    cut = value.endswith("...")
    if cut:
        value = value[:-3]
    if value.startswith("["):
        value = value[1:]
        if not cut and value.endswith("]"):
            value = value[:-1]
    parts = value.split("\\")
    if cut:
        parts = parts[:-1]  # the last one may be cut in the middle
    # pydicom strips each value's padding and a PN's empty trailing groups.
    return [p.strip().rstrip("=^").strip() for p in parts], cut


def same_value(vr: str, theirs: str, ours: str) -> bool:
    a, a_cut = _components(theirs)
    b, b_cut = _components(ours)
    if a_cut or b_cut or (vr in _NUMERIC_VR and 0 < len(a) < len(b)):
        n = min(len(a), len(b))
        a, b = a[:n], b[:n]
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x == y:
            continue
        try:
            if math.isclose(float(x), float(y), rel_tol=1e-6, abs_tol=1e-30):
                continue
        except ValueError:
            pass
        return False
    return True


def compare(theirs: list[Row], ours: list[Row], *, utf8: bool) -> tuple[list[str], int, int]:
    """(differences, elements compared, elements dcmdump could not type)."""
    a, b = by_path(theirs), by_path(ours)
    for rows in (a, b):
        for key in [k for k in rows if k[1] == 0x00080005]:
            del rows[key]
    problems = [f"tag {k} only in dcmdump" for k in a.keys() - b.keys()]
    problems += [f"tag {k} only in ours" for k in b.keys() - a.keys()]
    untyped = 0
    for key in a.keys() & b.keys():
        _, _, vr_a, val_a, _, len_a = a[key]
        _, _, vr_b, val_b, _, len_b = b[key]
        pixel_seq = val_a.startswith("(PixelSequence")
        if vr_a != vr_b and vr_b not in _EQUIVALENT_VR.get(vr_a, ()):
            if vr_a in ("UN", "??"):
                untyped += 1
                continue
            if not (pixel_seq and {vr_a, vr_b} <= {"OB", "OW"}):
                problems.append(f"{key}: VR {vr_a} != {vr_b}")
                continue
        if vr_a == "SQ" or pixel_seq:
            if val_a != val_b:
                problems.append(f"{key}: {val_a} != {val_b}")
            continue
        comparable = utf8 or (val_a.isascii() and "\x1b" not in val_a)
        odd_padded = val_a == val_b + "\\00"  # dcmdump pads an odd-length value
        if comparable and not odd_padded and not same_value(vr_b, val_a, val_b):
            problems.append(f"{key}: value {val_a!r} != {val_b!r}")
        if len_a is not None and len_b is not None and len_a != len_b:
            padded = len_b % 2 == 1 and len_a == len_b + 1
            converted = not val_a.isascii()
            if not (padded or converted):
                problems.append(f"{key}: length {len_a} != {len_b}")
    return problems, len(a.keys() & b.keys()), untyped


def _rows(ds: Dataset) -> list[Row]:
    return [
        (line.depth, line.tag, str(line.vr), line.value, line.vm, line.length)
        for line in dump_lines(ds, width=512)
    ]


@pytest.mark.interop
def test_dump_agrees_with_dcmdump_on_the_corpus(
    corpus_dir: Path,
    corpus_manifest: list[dict[str, str]],
    require_binary: Callable[[str], str],
) -> None:
    dcmdump = require_binary("dcmdump")
    paths = [row["path"] for row in corpus_manifest]
    # dcmdump runs on the other core while we dump the same files here.
    reference = subprocess.Popen(
        [dcmdump, "-q", "+F", "-Un", "+U8", *paths],
        cwd=corpus_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    ours: dict[str, list[Row]] = {}
    for path in paths:
        ours[path] = _rows(read_dataset(corpus_dir / path))
    out, _ = reference.communicate(timeout=600)
    theirs = parse_dcmdump(out.decode("utf-8", "replace"))

    # Files +U8 cannot convert (ISO 2022 sets iconv lacks, bad charset values): plain run.
    unconverted = [p for p in paths if not theirs.get(p)]
    plain_run = subprocess.run(
        [dcmdump, "-q", "+F", "-Un", *unconverted],
        cwd=corpus_dir,
        capture_output=True,
        timeout=600,
    )
    plain = parse_dcmdump(plain_run.stdout.decode("latin-1"))
    refused = [p for p in unconverted if not plain.get(p)]
    assert len(refused) <= 10, f"dcmdump refuses {len(refused)} files: {refused}"

    problems: list[str] = []
    compared = untyped = 0
    for path in paths:
        if path in refused:  # damaged: dumping it above without an exception is the test
            continue
        utf8 = bool(theirs.get(path))
        found, n, u = compare(theirs.get(path) or plain[path], ours[path], utf8=utf8)
        problems += [f"{path}: {p}" for p in found]
        compared += n
        untyped += u
    assert compared > 250_000  # the whole corpus took part
    assert untyped < compared // 500, f"{untyped} elements dcmdump could not type"
    assert not problems, f"{len(problems)} differences, first ones:\n" + "\n".join(problems[:40])


# --------------------------------------------------------------------------- layout


def _sample() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.set_original_encoding(False, True)
    ds.PatientName = "DOE^JOHN"
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows = 512
    ds.PatientWeight = None
    item = Dataset()
    item.CodeValue = "121320"
    item.CodeMeaning = "Uncompressed predecessor"
    ds.PurposeOfReferenceCodeSequence = Sequence([item])
    block = ds.private_block(0x0009, "ACME_1", create=True)
    block.add_new(0x01, "LO", "secret")
    return ds


def test_dump_lines_layout_values_lengths_and_private_creators() -> None:
    lines = list(dump_lines(_sample()))
    by_tag = {line.tag: line for line in lines}
    assert by_tag[0x00100010].value == "[DOE^JOHN]"
    assert (by_tag[0x00100010].length, by_tag[0x00100010].vm) == (8, 1)
    assert by_tag[0x00080008].value == "[ORIGINAL\\PRIMARY]"
    assert by_tag[0x00080008].vm == 2
    assert by_tag[0x00280010].value == "512"
    assert by_tag[0x00101030].value == "(no value available)"
    assert by_tag[0x00101030].vm == 0
    private = by_tag[0x00091001]
    assert private.private_creator == "ACME_1"
    assert private.name.startswith("ACME_1: ")
    assert by_tag[0x00090010].name == "PrivateCreator"
    seq = by_tag[0x0040A170]
    assert seq.value == "(Sequence with explicit length #=1)"
    # item: (0008,0100) 8+6 and (0008,0104) 8+24 in explicit VR little endian
    item = next(line for line in lines if line.tag == ITEM)
    assert item.length == 46
    assert seq.length == 8 + 46
    nested = [line for line in lines if line.depth == 2]
    assert [line.tag for line in nested] == [0x00080100, 0x00080104]


def test_dump_text_has_dcmdump_sections_and_columns() -> None:
    text = dump(_sample(), meta=True)
    assert "# Dicom-Meta-Information-Header" in text
    assert "# Dicom-Data-Set" in text
    assert "# Used TransferSyntax: Explicit VR Little Endian" in text
    line = next(x for x in text.splitlines() if x.startswith("(0010,0010)"))
    assert re.fullmatch(r"\(0010,0010\) PN \[DOE\^JOHN\] +#   8, 1 PatientName", line)
    assert "  (fffe,e000) na (Item with explicit length #=2)" in text
    assert "(fffe,e0dd) na (SequenceDelimitationItem for re-encod.)" in text


def test_encapsulated_pixel_data_shows_one_line_per_fragment() -> None:
    from pydicom.encaps import encapsulate

    ds = _sample()
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xe0" + b"\x00" * 60, b"\xff\xd8\x01\x02"])
    ds["PixelData"].VR = "OB"
    lines = [line for line in dump_lines(ds) if line.depth <= 1 and line.tag in (0x7FE00010, ITEM)]
    head = next(line for line in lines if line.tag == 0x7FE00010)
    assert head.value == "(PixelSequence #=3)"  # offset table + two fragments
    items = [line for line in dump_lines(ds) if line.vr == "pi"]
    assert [i.length for i in items] == [8, 64, 4]
    assert items[1].value.startswith("ff\\d8\\ff\\e0")
    assert items[1].value.endswith("...")


def test_long_values_are_clipped_unless_width_is_none() -> None:
    ds = _sample()
    ds.StudyDescription = "x" * 200
    short = next(line for line in dump_lines(ds) if line.tag == 0x00081030)
    full = next(line for line in dump_lines(ds, width=None) if line.tag == 0x00081030)
    assert short.value.endswith("...") and len(short.value) < 80
    assert full.value == "[" + "x" * 200 + "]"


def test_read_dataset_refuses_what_is_not_dicom(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("path\tsize\nnot a dicom file at all\n")
    with pytest.raises(UnreadableFile):
        read_dataset(path)
