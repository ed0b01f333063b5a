"""Our reader against DCMTK's own, on the same files.

DCMTK's reading comes from ``dcmqrti -v`` (see ``conftest.dcmtk_reading``), which prints
what ``DcmQueryRetrieveConfig`` parsed.  Three groups of files:

- valid for DCMTK: we must read exactly the same tables and globals;
- invalid for DCMTK: we must refuse them too;
- deliberate differences (docs/config.md, "Differences from dcmqrscp"): files DCMTK
  accepts with a meaning other than what they say, which we refuse, and harmless layout
  DCMTK refuses, which we accept.  Testing both sides keeps the list honest.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from config import ConfigError
from config.dcmqrscp import ParsedConfig, read_config
from config.keywords import KEYWORDS
from config.model import HostEntry

from .conftest import DATA, REPO_ROOT, DcmtkReading, Peer

pytestmark = pytest.mark.interop

Reader = Callable[[Path], DcmtkReading | None]

HOSTS = "HostTable BEGIN\na1 = (A1, host1, 1001)\na2 = (A2, host2, 1002)\nHostTable END\n"


def _triples(entries: tuple[HostEntry, ...]) -> list[Peer]:
    return [(e.ae_title, e.hostname, e.port) for e in entries]


def assert_same_reading(ours: ParsedConfig, dcmtk: DcmtkReading, folder: Path) -> None:
    v = ours.values
    assert {k: _triples(e) for k, e in v["hosts"].items()} == dcmtk.hosts
    assert {k: _triples(e) for k, e in v["vendors"].items()} == dcmtk.vendors
    assert v.get("network_tcp_port", 104) == dcmtk.network_tcp_port
    assert v.get("max_pdu_size", 16384) == dcmtk.max_pdu_size
    assert v.get("max_associations", 16) == dcmtk.max_associations
    assert len(v["ae_table"]) == len(dcmtk.ae_table)
    for ae, theirs in zip(v["ae_table"], dcmtk.ae_table, strict=True):
        assert ae.title == theirs.title
        assert ae.storage_area == Path(os.path.normpath(folder / theirs.storage_area))
        assert ae.access == {"WR": "RW"}.get(theirs.access, theirs.access)
        assert ae.quota is not None
        assert (ae.quota.max_studies, ae.quota.max_bytes_per_study) == theirs.quota
        if theirs.peers is None:
            assert ae.peers is None
        else:
            assert ae.peers is not None
            assert _triples(ae.peers) == theirs.peers


def _without_extensions(text: str) -> str:
    """The text without our keywords and our tables (TriggerTable, RouteTable)."""
    extensions = {name for name, k in KEYWORDS.items() if k.extension}
    kept, inside = [], None
    for line in text.splitlines(keepends=True):
        words = line.split()
        if inside is not None:
            inside = None if words[:2] == [inside, "END"] else inside
            continue
        if words[:2] in (["TriggerTable", "BEGIN"], ["RouteTable", "BEGIN"]):
            inside = words[0]
            continue
        if not (words and words[0] in extensions):
            kept.append(line)
    return "".join(kept)


def _dcmtk_sample_with_examples() -> str:
    enabled = []
    for line in (DATA / "dcmtk-sample.cfg").read_text().splitlines(keepends=True):
        if line.startswith(("#acme", "#united", '#"', "#ACME", "#UNITED", "#READ")):
            line = line[1:]
        enabled.append(line)
    return "".join(enabled)


VALID = {
    "dcmtk-sample": (DATA / "dcmtk-sample.cfg").read_text(),
    "dcmtk-sample-examples": _dcmtk_sample_with_examples(),
    "examples-node": _without_extensions((REPO_ROOT / "examples/node.cfg").read_text()),
    "examples-full": _without_extensions((REPO_ROOT / "examples/dcmqrscp-full.cfg").read_text()),
    "separators-and-quotes": (
        "   NetworkTCPPort 2001\n"
        "MaxPDUSize ,= 32768\n"
        "MaxAssociations = 4,\n"
        "UserName = (do not change user)\n"
        'SpecificCharacterSet = "ISO_IR 192", override, discard, transliterate\n'
        "ApplicationTitle OLD\nNetworkType tcp\n"
        "HostTable BEGIN\n"
        "a1 = (A1, host1, 1001)\n"
        "a2 = \"A2, host2, 1002\" 'A3,host3,1003'\n"
        '"group one" = a1, a2 (A4,host4,1004)\n'
        "mix=a1,(A5, host5 = 1005)\n"
        "a3 (A6,host6,1006)(A7,host7,1007)\n"
        "HostTable END\n"
        "VendorTable BEGIN\n"
        "\"Acme CT Company' = a1\n"
        "'United' = a2, (V1, vhost, 9)\n"
        "VendorTable END\n"
        "AETable BEGIN\n"
        'ACME, /srv/acme, WR, (9, 1024MB), "group one"\n'
        "\"SP ACE\" (/srv/with space) R '3,7Kb' ANY whatever junk\n"
        "BYTES /srv/b W (1,100b) mix a1\n"
        "REL relative/dir RW (2, 2gB) a3\n"
        "AETable END\n"
    ),
    "tables-twice": (
        HOSTS + "HostTable BEGIN\ng = a1, a2\nHostTable END\n"
        "AETable BEGIN\nOLD /o RW (1, 1mb) ANY\nAETable END\n"
        "AETable BEGIN\nNEW /n RW (1, 1mb) g\nAETable END\n"
    ),
    "crlf": "NetworkTCPPort 3000\r\n\r\nAETable BEGIN\r\nX /x RW (1, 1mb) ANY\r\nAETable END\r\n",
}


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_files_read_as_dcmtk_reads_them(
    name: str, write_cfg: Callable[..., Path], dcmtk_reading: Reader
) -> None:
    path = write_cfg(VALID[name])
    dcmtk = dcmtk_reading(path)
    assert dcmtk is not None, f"DCMTK refuses the {name} case"
    assert_same_reading(read_config(path), dcmtk, path.parent)


INVALID = {
    "undefined-peer": "AETable BEGIN\nX /x RW (1, 1mb) nobody\nAETable END\n",
    "undefined-group-member": "HostTable BEGIN\ng = a, b\nHostTable END\n",
    "tuple-without-commas": "HostTable BEGIN\na = (A h 1)\nHostTable END\n",
    "unterminated-table": "HostTable BEGIN\na = (A, h, 1)\n",
    "end-without-begin": "AETable END\n",
    "unknown-keyword": "Frobnicate 1\n",
    "keyword-glued-to-value": "NetworkTCPPort=104\n",
    "quota-zero-studies": "AETable BEGIN\nX /x RW (0, 1mb) ANY\nAETable END\n",
    "quota-not-in-parentheses": "AETable BEGIN\nX /x RW 1, 1mb ANY\nAETable END\n",
    "missing-columns": "AETable BEGIN\nX /x RW\nAETable END\n",
    "peer-lower-case-any": "AETable BEGIN\nX /x RW (1, 1mb) any\nAETable END\n",
    "nested-begin": "HostTable BEGIN\nHostTable BEGIN\n",
}


@pytest.mark.parametrize("name", sorted(INVALID))
def test_invalid_files_are_refused_by_both(
    name: str, write_cfg: Callable[..., Path], dcmtk_reading: Reader
) -> None:
    path = write_cfg(INVALID[name])
    assert dcmtk_reading(path) is None, f"DCMTK accepts the {name} case"
    with pytest.raises(ConfigError):
        read_config(path)


#: DCMTK accepts these, but reads something other than what they say; we refuse them.
STRICTER = {
    "duplicate-ae-title": "AETable BEGIN\nX /x RW (1, 1mb) ANY\nX /y R (1, 1mb) ANY\nAETable END\n",
    # DCMTK 3.6.7 reads the size as -1, which its index database takes as its 1 GiB maximum
    # (later DCMTK releases refuse the file).
    "quota-without-unit": "AETable BEGIN\nX /x RW (1, 1024) ANY\nAETable END\n",
    "fractional-quota": "AETable BEGIN\nX /x RW (1, 1.5gb) ANY\nAETable END\n",
    "lower-case-access": "AETable BEGIN\nX /x rw (1, 1mb) ANY\nAETable END\n",
    "ae-title-too-long": "AETable BEGIN\nABCDEFGHIJKLMNOPQ /x RW (1, 1mb) ANY\nAETable END\n",
    "quoted-number": 'NetworkTCPPort "2000"\n',
    "port-not-a-number": "HostTable BEGIN\na = (A, h, x)\nHostTable END\n",
    "extra-values": "UserName do not change\n",
    "duplicate-host-name": "HostTable BEGIN\na = (A, h, 1)\na = (B, h, 2)\nHostTable END\n",
}


@pytest.mark.parametrize("name", sorted(STRICTER))
def test_we_refuse_what_dcmtk_misreads(
    name: str, write_cfg: Callable[..., Path], dcmtk_reading: Reader
) -> None:
    path = write_cfg(STRICTER[name])
    assert dcmtk_reading(path) is not None, f"DCMTK now refuses the {name} case: update docs"
    with pytest.raises(ConfigError):
        read_config(path)


#: DCMTK refuses (or crashes on) these over layout alone; we read the obvious meaning.
LENIENT = {
    "indented-row": "AETable BEGIN\n   X /x RW (1, 1mb) ANY\nAETable END\n",
    "blank-line-with-spaces-in-table": "AETable BEGIN\n   \nX /x RW (1, 1mb) ANY\nAETable END\n",
    "indented-comment": "   # note\nNetworkTCPPort 2000\n",
    "comment-after-peers": HOSTS + "AETable BEGIN\nX /x RW (1, 1mb) a1 # note\nAETable END\n",
    "line-longer-than-511": "HostTable BEGIN\nbig = "
    + ", ".join(f"(AE{i}, host{i}.example.org, {1000 + i})" for i in range(20))
    + "\nHostTable END\n",
}


@pytest.mark.parametrize("name", sorted(LENIENT))
def test_we_accept_harmless_layout_dcmtk_refuses(
    name: str, write_cfg: Callable[..., Path], dcmtk_reading: Reader
) -> None:
    path = write_cfg(LENIENT[name])
    assert dcmtk_reading(path) is None, f"DCMTK now accepts the {name} case: update docs"
    read_config(path)  # no ConfigError


def test_spaces_inside_a_tuple(write_cfg: Callable[..., Path], dcmtk_reading: Reader) -> None:
    """DCMTK's own sample writes ``( AETitle, HostName, Portnumber )``, but DCMTK reads a
    space after ``(`` as an empty AE title, shifting the host into the title and losing the
    port.  It accepts the file; we read what it says."""
    path = write_cfg("HostTable BEGIN\na = ( A8 , host8 , 1008 )\nHostTable END\n")
    dcmtk = dcmtk_reading(path)
    assert dcmtk is not None
    assert dcmtk.hosts == {"a": [("", "A8", 0)]}
    assert read_config(path).values["hosts"]["a"] == (
        HostEntry(ae_title="A8", hostname="host8", port=1008),
    )
