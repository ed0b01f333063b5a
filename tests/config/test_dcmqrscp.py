"""The dcmqrscp.cfg reader: every keyword, every table form, every error (with file:line)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config import ConfigError
from config.dcmqrscp import parse_config, read_config
from config.keywords import KEYWORDS
from config.model import HostEntry, Quota
from config.tokens import split_values

from .conftest import DATA, REPO_ROOT

WriteCfg = Callable[..., Path]


def values(write_cfg: WriteCfg, text: str) -> dict[str, Any]:
    return read_config(write_cfg(text)).values


def error(write_cfg: WriteCfg, text: str, line: int) -> str:
    """The message of the ConfigError the text raises, checking it points at ``line``."""
    path = write_cfg(text)
    with pytest.raises(ConfigError) as info:
        read_config(path)
    exc = info.value
    assert exc.line == line, str(exc)
    assert str(exc).startswith(f"{path}:{line}: "), str(exc)
    return exc.message


def peers(*triples: tuple[str, str, int]) -> tuple[HostEntry, ...]:
    return tuple(HostEntry(ae_title=a, hostname=h, port=p) for a, h, p in triples)


AE_ROW = "AETable BEGIN\n{row}\nAETable END\n"
HOSTS = "HostTable BEGIN\na1 = (A1, host1, 1001)\na2 = (A2, host2, 1002)\nHostTable END\n"


# --- globals -------------------------------------------------------------------------


def test_dcmtk_sample_loads_unchanged() -> None:
    parsed = read_config(DATA / "dcmtk-sample.cfg")
    assert parsed.values["network_tcp_port"] == 104
    assert parsed.values["max_pdu_size"] == 16384
    assert parsed.values["max_associations"] == 16
    assert parsed.values["user_name"] == "dcmtk"
    assert parsed.values["group_name"] == "dcmtk"
    assert "specific_character_set" not in parsed.values
    assert parsed.values["hosts"] == {}
    assert parsed.values["vendors"] == {}
    assert parsed.values["ae_table"] == ()
    assert parsed.lines["network_tcp_port"] == 10


def test_dcmtk_sample_with_its_commented_examples_enabled(write_cfg: WriteCfg) -> None:
    """Uncommenting the sample's own examples gives a file both readers accept."""
    text = (DATA / "dcmtk-sample.cfg").read_text()
    enabled = [
        line[1:]
        if line.startswith(("#acme", "#united", '#"', "#ACME", "#UNITED", "#READ"))
        else line
        for line in text.splitlines()
    ]
    v = values(write_cfg, "\n".join(enabled) + "\n")
    assert v["hosts"]["acmeCTcompany"] == peers(
        ("ACME1", "acmehost1", 5678), ("ACME2", "acmehost2", 5678)
    )
    assert v["vendors"]["United MR Company"] == peers(
        ("UNITED1", "unitedhost1", 104), ("UNITED2", "unitedhost2", 104)
    )
    titles = [ae.title for ae in v["ae_table"]]
    assert titles == ["ACME_STORE", "UNITED_STORE", "READWRITE", "READ"]
    read = v["ae_table"][3]
    assert read.access == "R"
    assert read.quota == Quota(max_studies=200, max_bytes_per_study=1024**3)
    assert read.peers is None
    assert read.storage_area == Path("/var/lib/dcmtk/db/READ")


GLOBALS: list[tuple[str, str, object]] = [
    ("NetworkTCPPort = 2001", "network_tcp_port", 2001),
    ("NetworkTCPPort 2001", "network_tcp_port", 2001),
    ("NetworkTCPPort ,= 2001,", "network_tcp_port", 2001),
    ("   NetworkTCPPort\t2001", "network_tcp_port", 2001),
    ("NetworkTCPPort = +2001", "network_tcp_port", 2001),
    ("NetworkTCPPort = 0", "network_tcp_port", 104),  # dcmqrscp: 0 is "not set"
    ("NetworkTCPPort = 2001 # the port", "network_tcp_port", 2001),
    ("MaxPDUSize = 32768", "max_pdu_size", 32768),
    ("MaxPDUSize = 0", "max_pdu_size", 16384),  # dcmqrscp: 0 is "not set"
    ("MaxPDUSize = 1048576", "max_pdu_size", 1048576),
    ("MaxAssociations = 4", "max_associations", 4),
    ("UserName = dicom", "user_name", "dicom"),
    ("UserName = (do not change user)", "user_name", "do not change user"),
    ('UserName = ""', "user_name", None),
    ("GroupName 'pacs users'", "group_name", "pacs users"),
    (
        'SpecificCharacterSet = "ISO_IR 192", override, discard, transliterate',
        "specific_character_set",
        ("ISO_IR 192", "override", "discard", "transliterate"),
    ),
    ("SpecificCharacterSet = fallback", "specific_character_set", ("fallback",)),
    (
        "SpecificCharacterSet = 'ISO 2022 IR 6\\ISO 2022 IR 87' abort",
        "specific_character_set",
        ("ISO 2022 IR 6\\ISO 2022 IR 87", "abort"),
    ),
    ("SpecificCharacterSet", "specific_character_set", ()),
]


@pytest.mark.parametrize(("line", "field", "expected"), GLOBALS)
def test_dcmqrscp_globals(write_cfg: WriteCfg, line: str, field: str, expected: object) -> None:
    assert values(write_cfg, line + "\n")[field] == expected


EXTENSIONS: list[tuple[str, str, object]] = [
    (
        "DatabaseURL = postgresql+psycopg://u:p@db/node?sslmode=require&a=b,c",
        "database_url",
        "postgresql+psycopg://u:p@db/node?sslmode=require&a=b,c",
    ),
    (
        "DatabaseURL = sqlite:////srv/index.db  # on the SSD",
        "database_url",
        "sqlite:////srv/index.db",
    ),
    ("BindAddress = 127.0.0.1", "bind_address", "127.0.0.1"),
    ("ACSETimeout = 5", "acse_timeout", 5.0),
    ("DIMSETimeout = 12.5", "dimse_timeout", 12.5),
    ("NetworkTimeout = 600", "network_timeout", 600.0),
    ("ShutdownGrace = 0", "shutdown_grace", 0.0),
    ("IngestWorkers = 2", "ingest_workers", 2),
    ("LogLevel = debug", "log_level", "DEBUG"),
    ("LogLevel = warn", "log_level", "WARNING"),
    ("AdminAPIAddress = ::1", "admin_api_address", "::1"),
    ("AdminAPIPort = 8042", "admin_api_port", 8042),
    ('AdminToken = "s3cret # with hash"', "admin_token", "s3cret # with hash"),
    ("AdminToken = abc#def", "admin_token", "abc#def"),
    ("TLSRequirePeerCertificate = yes", "tls_require_peer_certificate", True),
    ("TLSRequirePeerCertificate = Off", "tls_require_peer_certificate", False),
    ("RequireUserIdentity = yes", "require_user_identity", True),
    ("JobWorkers = 3", "job_workers", 3),
    ("JobConcurrency = convert=1, forward = 4", "job_concurrency", {"convert": 1, "forward": 4}),
    ("JobLease = 90", "job_lease", 90.0),
    ("StudyStableSeconds = 1.5", "study_stable_seconds", 1.5),
]


@pytest.mark.parametrize(("line", "field", "expected"), EXTENSIONS)
def test_extension_keywords(write_cfg: WriteCfg, line: str, field: str, expected: object) -> None:
    assert values(write_cfg, line + "\n")[field] == expected


PATH_KEYWORDS = {
    "DataDir": "data_dir",
    "TLSCertificate": "tls_certificate",
    "TLSPrivateKey": "tls_private_key",
    "TLSCACertificate": "tls_ca_certificate",
    "UserIdentityFile": "user_identity_file",
}


@pytest.mark.parametrize(("keyword", "field"), sorted(PATH_KEYWORDS.items()))
def test_extension_paths_resolve_against_the_file_folder(
    write_cfg: WriteCfg, tmp_path: Path, keyword: str, field: str
) -> None:
    v = values(write_cfg, f"{keyword} = ../shared/x\n")
    assert v[field] == tmp_path.parent / "shared" / "x"
    v = values(write_cfg, f"{keyword} = '/abs/with space'\n")
    assert v[field] == Path("/abs/with space")


def test_every_keyword_is_covered_by_a_test() -> None:
    tested = {line.split()[0] for line, _, _ in GLOBALS + EXTENSIONS} | set(PATH_KEYWORDS)
    assert tested == set(KEYWORDS)


def test_legacy_keywords_are_ignored(write_cfg: WriteCfg) -> None:
    v = values(
        write_cfg,
        "ApplicationTitle CTN\nApplicationContext x\nImplementationClass 1.2\n"
        "ImplementationVersion V1\nNetworkType tcp\nDisplay :0\nDisplayPort 5\n"
        "NetworkTCPPort 5000\n",
    )
    assert v["network_tcp_port"] == 5000


def test_later_value_wins_as_in_dcmqrscp(write_cfg: WriteCfg) -> None:
    parsed = read_config(write_cfg("NetworkTCPPort 1000\n\nNetworkTCPPort 2000\n"))
    assert parsed.values["network_tcp_port"] == 2000
    assert parsed.lines["network_tcp_port"] == 3


def test_comments_blank_lines_crlf_and_no_final_newline(write_cfg: WriteCfg) -> None:
    text = (
        "# comment\r\n\r\n   \t\r\n    # indented comment\r\nNetworkTCPPort = 3000\r\n"
        "HostTable BEGIN\r\n\r\n  \r\n# c\r\n   # c\r\n"
        "a1 = (A1, host1, 1001)   # trailing comment\r\n"
        "HostTable END\r\n"
        "AETable BEGIN\r\nX /x RW (1, 1mb) a1 # c\r\nAETable END"
    )
    v = values(write_cfg, text)
    assert v["network_tcp_port"] == 3000
    assert v["hosts"]["a1"] == peers(("A1", "host1", 1001))
    assert v["ae_table"][0].peers == peers(("A1", "host1", 1001))


def test_non_utf8_bytes_survive(tmp_path: Path) -> None:
    path = tmp_path / "latin1.cfg"
    path.write_bytes(b"AETable BEGIN\nX /data/r\xe9sum\xe9 RW (1, 1mb) ANY\nAETable END\n")
    ae = read_config(path).values["ae_table"][0]
    assert bytes(ae.storage_area) == b"/data/r\xe9sum\xe9"


def test_split_values_is_dcmtk_tokenizing() -> None:
    assert split_values("a b,c=d") == ["a", "b", "c", "d"]
    assert split_values("(a b) 'c, d' \"e)") == ["a b", "c, d", "e"]
    assert split_values("x # rest") == ["x"]
    assert split_values("'#not a comment' y") == ["#not a comment", "y"]
    assert split_values("(a)(b)") == ["a", "b"]
    assert split_values("") == []


# --- HostTable and VendorTable -------------------------------------------------------


def test_host_table_forms(write_cfg: WriteCfg) -> None:
    text = (
        "HostTable BEGIN\n"
        "a1 = (A1, host1, 1001)\n"
        "a2 = (A2, host2, 1002), (A3, host3, 1003)\n"
        "a3 (A4,host4,1004)(A5,host5,1005)\n"  # no '=', no comma between tuples
        "a4 = \"A6, host6, 1006\" 'A7,host7,1007'\n"  # any quote character delimits
        "a5 = ( A8 , host8 , 1008 )\n"  # the sample's own layout
        '"two words" = a1, a2\n'  # group
        "mix = a1 (A9, host9 = 1009), a3\n"  # names and tuples mixed; '=' is a gap
        "   indented = a1\n"
        "  HostTable END\n"
    )
    hosts = values(write_cfg, text)["hosts"]
    assert hosts["a1"] == peers(("A1", "host1", 1001))
    assert hosts["a2"] == peers(("A2", "host2", 1002), ("A3", "host3", 1003))
    assert hosts["a3"] == peers(("A4", "host4", 1004), ("A5", "host5", 1005))
    assert hosts["a4"] == peers(("A6", "host6", 1006), ("A7", "host7", 1007))
    assert hosts["a5"] == peers(("A8", "host8", 1008))
    assert hosts["two words"] == hosts["a1"] + hosts["a2"]
    assert hosts["mix"] == hosts["a1"] + peers(("A9", "host9", 1009)) + hosts["a3"]
    assert hosts["indented"] == hosts["a1"]
    assert list(hosts) == ["a1", "a2", "a3", "a4", "a5", "two words", "mix", "indented"]


def test_groups_of_groups_expand_fully(write_cfg: WriteCfg) -> None:
    text = HOSTS + "HostTable BEGIN\ng1 = a1, a2\ng2 = g1, (A3, host3, 1003)\nHostTable END\n"
    hosts = values(write_cfg, text)["hosts"]  # a second HostTable adds to the first
    assert hosts["g2"] == peers(("A1", "host1", 1001), ("A2", "host2", 1002), ("A3", "host3", 1003))


def test_vendor_table(write_cfg: WriteCfg) -> None:
    text = HOSTS + (
        "VendorTable BEGIN\n"
        '"Acme CT Company" = a1\n'
        "\"United MR Company' = a2, (V1, vhost, 9)\n"  # mismatched quotes close it too
        "Solo = a1 # comment\n"
        "VendorTable END\n"
    )
    vendors = values(write_cfg, text)["vendors"]
    assert vendors == {
        "Acme CT Company": peers(("A1", "host1", 1001)),
        "United MR Company": peers(("A2", "host2", 1002), ("V1", "vhost", 9)),
        "Solo": peers(("A1", "host1", 1001)),
    }


# --- AETable -------------------------------------------------------------------------


def test_ae_table_columns(write_cfg: WriteCfg, tmp_path: Path) -> None:
    text = HOSTS + (
        "AETable BEGIN\n"
        "STORE     /srv/store    RW (10, 24mb)  a1\n"
        "COMMA, /srv/comma, R, (200, 1024mb), ANY\n"
        "WRITE     relative/dir  W  '3,7KB'     a1 a2 (P1, phost, 4242)\n"
        '"SP ACE" (/srv/with space) WR (1,100b) ANY anything after ANY is ignored\n'
        '  INDENTED /srv/i R (5, 2Gb) "a2"\n'
        "AETable END\n"
    )
    table = values(write_cfg, text)["ae_table"]
    assert [ae.title for ae in table] == ["STORE", "COMMA", "WRITE", "SP ACE", "INDENTED"]
    store, comma, write, space, indented = table
    assert (store.storage_area, store.access) == (Path("/srv/store"), "RW")
    assert store.quota == Quota(max_studies=10, max_bytes_per_study=24 * 1024**2)
    assert store.peers == peers(("A1", "host1", 1001))
    assert (comma.access, comma.peers) == ("R", None)
    assert comma.quota == Quota(max_studies=200, max_bytes_per_study=1024**3)
    assert write.storage_area == tmp_path / "relative" / "dir"
    assert write.access == "W"
    assert write.quota == Quota(max_studies=3, max_bytes_per_study=7 * 1024)
    assert write.peers == peers(("A1", "host1", 1001), ("A2", "host2", 1002), ("P1", "phost", 4242))
    assert space.storage_area == Path("/srv/with space")
    assert space.access == "RW"  # dcmqrscp's writableStorageArea() accepts "WR"
    assert space.quota == Quota(max_studies=1, max_bytes_per_study=100)
    assert space.peers is None
    assert indented.quota == Quota(max_studies=5, max_bytes_per_study=2 * 1024**3)
    assert indented.peers == peers(("A2", "host2", 1002))


@pytest.mark.parametrize(
    ("quota", "studies", "size"),
    [
        ("(1, 1b)", 1, 1),
        ("(1, 10B)", 1, 10),
        ("(2, 3kb)", 2, 3 * 1024),
        ("(2, 3KB)", 2, 3 * 1024),
        ("(2, 3mb)", 2, 3 * 1024**2),
        ("(2, 3mB)", 2, 3 * 1024**2),
        ("(2, 3gb)", 2, 3 * 1024**3),
        ("(2,3GB)", 2, 3 * 1024**3),
        ("( 2 , 3gb )", 2, 3 * 1024**3),
        ("(9, 4096gb)", 9, 4096 * 1024**3),
    ],
)
def test_quota_units(write_cfg: WriteCfg, quota: str, studies: int, size: int) -> None:
    table = values(write_cfg, AE_ROW.format(row=f"X /x RW {quota} ANY"))["ae_table"]
    assert table[0].quota == Quota(max_studies=studies, max_bytes_per_study=size)


def test_a_second_ae_table_replaces_the_first(
    write_cfg: WriteCfg, caplog: pytest.LogCaptureFixture
) -> None:
    text = AE_ROW.format(row="OLD /o RW (1, 1mb) ANY") + AE_ROW.format(row="NEW /n RW (1, 1mb) ANY")
    with caplog.at_level(logging.WARNING, logger="config.dcmqrscp"):
        table = values(write_cfg, text)["ae_table"]
    assert [ae.title for ae in table] == ["NEW"]
    assert "replaces the one at line 1" in caplog.text


def test_parse_config_takes_text(tmp_path: Path) -> None:
    parsed = parse_config("AETable BEGIN\nX data RW (1, 1mb) ANY\nAETable END", tmp_path / "a.cfg")
    assert parsed.values["ae_table"][0].storage_area == tmp_path / "data"
    assert parsed.path == tmp_path / "a.cfg"


# --- errors --------------------------------------------------------------------------


def test_config_error_formats() -> None:
    assert str(ConfigError(Path("/etc/node.cfg"), 7, "bad")) == "/etc/node.cfg:7: bad"
    assert str(ConfigError("NODE_X", None, "bad")) == "NODE_X: bad"
    assert str(ConfigError(None, None, "bad")) == "bad"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.cfg: cannot read the configuration"):
        read_config(tmp_path / "missing.cfg")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # unknown keywords
        ("NetworkTCPPort 1\nFooBar = 1\n", 2, "unknown keyword 'FooBar'"),
        ("networktcpport = 1\n", 1, "case-sensitive: NetworkTCPPort"),
        ("NetworkTCPPort=104\n", 1, "put white space between NetworkTCPPort and its value"),
        ("HostTable END\n", 1, "HostTable END without HostTable BEGIN"),
        ("AETable START\n", 1, "AETable must be followed by BEGIN or END"),
        # numbers
        ("NetworkTCPPort = abc\n", 1, "NetworkTCPPort: 'abc' is not a number"),
        ("NetworkTCPPort = 104abc\n", 1, "is not a number"),
        ('NetworkTCPPort = "104"\n', 1, "is not a number"),
        ("MaxAssociations = 1.5\n", 1, "MaxAssociations: '1.5' is not a number"),
        ("MaxPDUSize = lots\n", 1, "is not a number"),
        ("ACSETimeout = soon\n", 1, "ACSETimeout: 'soon' is not a number"),
        ("DIMSETimeout = -1\n", 1, "must be a number of seconds > 0"),
        ("NetworkTimeout = 0\n", 1, "must be a number of seconds > 0"),
        ("ShutdownGrace = nan\n", 1, "ShutdownGrace"),
        # ranges
        ("NetworkTCPPort = 70000\n", 1, "NetworkTCPPort 70000 out of range 0-65535"),
        ("NetworkTCPPort = -1\n", 1, "out of range"),
        ("AdminAPIPort = 0\n", 1, "AdminAPIPort 0 out of range 1-65535"),
        ("MaxPDUSize = 1024\n", 1, "MaxPDUSize 1024 out of range"),
        ("MaxAssociations = 0\n", 1, "MaxAssociations 0 out of range"),
        # other values
        ("UserName = do not change\n", 1, "UserName takes one value, not 3"),
        ("UserName\n", 1, "UserName needs a value"),
        ("UserName = 'unterminated\n", 1, "unterminated quote"),
        ("SpecificCharacterSet = ISO_IR192\n", 1, "'ISO_IR192' is neither an option"),
        ("SpecificCharacterSet = Override\n", 1, "'Override' is neither an option"),
        ("LogLevel = LOUD\n", 1, "LogLevel: 'LOUD' is not DEBUG"),
        ("TLSRequirePeerCertificate = maybe\n", 1, "is not yes/no"),
        ("DatabaseURL =\n", 1, "DatabaseURL needs a value"),
        ("DataDir = # nothing\n", 1, "DataDir needs a value"),
        ('AdminToken = "x" y\n', 1, "unexpected 'y' after the quoted value"),
        ("JobWorkers = 0\n", 1, "JobWorkers 0 out of range 1-256"),
        ("IngestWorkers = 0\n", 1, "IngestWorkers 0 out of range 1-64"),
        ("JobConcurrency = convert\n", 1, "'convert' is not kind=N"),
        ("JobConcurrency = convert=0\n", 1, "JobConcurrency convert 0 out of range"),
        ("JobConcurrency = ,\n", 1, "JobConcurrency needs kind=N items"),
        # tables: structure
        ("\n\nHostTable BEGIN\na = (A, h, 1)\n", 3, "HostTable BEGIN without HostTable END"),
        ("VendorTable BEGIN\n", 1, "VendorTable BEGIN without VendorTable END"),
        ("x = 1\nAETable BEGIN\nX /x RW (1, 1mb) ANY\n", 1, "unknown keyword"),
        ("AETable BEGIN\nX /x RW (1, 1mb) ANY\n# END\n", 1, "AETable BEGIN without AETable END"),
        ("HostTable BEGIN\nHostTable BEGIN\n", 2, "HostTable BEGIN inside HostTable"),
        (
            "HostTable BEGIN\nAETable END\n",
            2,
            "AETable END inside HostTable (missing HostTable END?)",
        ),
        # HostTable entries
        ("HostTable BEGIN\na = b\nHostTable END\n", 2, "'b' is not a name defined in a HostTable"),
        (
            "HostTable BEGIN\ng = a1\na1 = (A, h, 1)\nHostTable END\n",
            2,
            "HostTable entry 'g': 'a1' is not a name defined in a HostTable above this line",
        ),
        ("HostTable BEGIN\na = (A h 1)\nHostTable END\n", 2, "a peer tuple needs commas"),
        ("HostTable BEGIN\na = (A, h)\nHostTable END\n", 2, "must be (AETitle, HostName, Port)"),
        (
            "HostTable BEGIN\na = (A, h, 1, 2)\nHostTable END\n",
            2,
            "must be (AETitle, HostName, Port)",
        ),
        ("HostTable BEGIN\na = (A, h, x)\nHostTable END\n", 2, "'x' is not a number"),
        ("HostTable BEGIN\na = (A, h, 0)\nHostTable END\n", 2, "0 out of range 1-65535"),
        ("HostTable BEGIN\na = (A, h, 65536)\nHostTable END\n", 2, "65536 out of range 1-65535"),
        (
            "HostTable BEGIN\na = (ABCDEFGHIJKLMNOPQ, h, 1)\nHostTable END\n",
            2,
            "AE title 'ABCDEFGHIJKLMNOPQ' is longer than 16 characters",
        ),
        ("HostTable BEGIN\na = (A\\B, h, 1)\nHostTable END\n", 2, "no backslash"),
        ("HostTable BEGIN\na =\nHostTable END\n", 2, "HostTable entry 'a' lists no peers"),
        ("HostTable BEGIN\na = (A, h, 1\nHostTable END\n", 2, "unterminated"),
        (
            "HostTable BEGIN\na = (A, h, 1)\n\na = (B, h, 1)\nHostTable END\n",
            4,
            "HostTable name 'a' already defined at line 2",
        ),
        # VendorTable entries
        ("VendorTable BEGIN\n'V' = nope\nVendorTable END\n", 2, "vendor 'V': 'nope' is not a name"),
        ("VendorTable BEGIN\n'V'\nVendorTable END\n", 2, "vendor 'V' names no HostTable entry"),
        # AETable rows
        (AE_ROW.format(row="X /x RW (1, 1mb) nobody"), 2, "AE X: 'nobody' is not a name defined"),
        (HOSTS + AE_ROW.format(row="X /x RW (1, 1mb) a1 a3"), 6, "AE X: 'a3' is not a name"),
        (AE_ROW.format(row="X /x RW (1, 1mb) any"), 2, "'any' is not a name defined"),
        (AE_ROW.format(row="ABCDEFGHIJKLMNOPQ /x RW (1, 1mb) ANY"), 2, "longer than 16"),
        (AE_ROW.format(row='"" /x RW (1, 1mb) ANY'), 2, "empty AE title in AETable"),
        (AE_ROW.format(row="'  ' /x RW (1, 1mb) ANY"), 2, "empty AE title in AETable"),
        (
            "AETable BEGIN\nX /x RW (1, 1mb) ANY\nY /y R (1, 1mb) ANY\nX /z R (1, 1mb) ANY\n"
            "AETable END\n",
            4,
            "duplicate AE title 'X' in the AETable",
        ),
        (AE_ROW.format(row="X /x rw (1, 1mb) ANY"), 2, "AE X: access 'rw' is not R, RW or W"),
        (AE_ROW.format(row="X /x RX (1, 1mb) ANY"), 2, "access 'RX' is not R, RW or W"),
        (AE_ROW.format(row="X /x RW (1, 1024) ANY"), 2, "quota size '1024' has no unit"),
        (
            AE_ROW.format(row="X /x RW (1, 1.5gb) ANY"),
            2,
            "whole numbers only; dcmqrscp would read 1gb",
        ),
        (AE_ROW.format(row="X /x RW (1, 24xb) ANY"), 2, "quota size '24xb' is malformed"),
        (AE_ROW.format(row="X /x RW (1, 0mb) ANY"), 2, "maxBytesPerStudy must be more than 0"),
        (AE_ROW.format(row="X /x RW (0, 1mb) ANY"), 2, "maxStudies must be at least 1, not 0"),
        (AE_ROW.format(row="X /x RW (-3, 1mb) ANY"), 2, "maxStudies must be at least 1"),
        (AE_ROW.format(row="X /x RW (ten, 1mb) ANY"), 2, "quota 'ten, 1mb' is not (maxStudies"),
        (AE_ROW.format(row="X /x RW (10) ANY"), 2, "quota '10' is not (maxStudies"),
        (AE_ROW.format(row="X /x RW 10, 1mb ANY"), 2, "quota '10' is not (maxStudies"),
        (AE_ROW.format(row="X /x RW (1, 1mb extra) ANY"), 2, "is not (maxStudies"),
        (AE_ROW.format(row="X /x RW (1, 1mb)"), 2, "AE X: no peers"),
        (AE_ROW.format(row="X /x RW"), 2, "missing columns"),
        (AE_ROW.format(row="X /x RW (1, 1mb"), 2, "unterminated quote or parenthesis"),
        (AE_ROW.format(row="X '' RW (1, 1mb) ANY"), 2, "AE X: empty storage area"),
    ],
)
def test_errors_name_file_and_line(write_cfg: WriteCfg, text: str, line: int, message: str) -> None:
    assert message in error(write_cfg, text, line)


def test_peer_defined_after_the_ae_table_is_an_error(write_cfg: WriteCfg) -> None:
    """DCMTK resolves names while reading, so the HostTable must come first."""
    text = AE_ROW.format(row="X /x RW (1, 1mb) a1") + HOSTS
    assert "'a1' is not a name defined in a HostTable above" in error(write_cfg, text, 2)


@pytest.mark.parametrize("name", ["node.cfg", "dcmqrscp-full.cfg"])
def test_examples_load(name: str) -> None:
    parsed = read_config(REPO_ROOT / "examples" / name)
    assert parsed.values["network_tcp_port"] == 11112
    assert parsed.values["data_dir"].is_relative_to(REPO_ROOT / "var")
    for ae in parsed.values["ae_table"]:
        assert ae.storage_area.is_relative_to(REPO_ROOT / "var")
