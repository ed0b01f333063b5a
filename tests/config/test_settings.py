"""config.load(): file, environment on top, paths, cross-checks."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

import config
from config import ConfigError, Settings, load
from config.dcmqrscp import read_config
from config.keywords import KEYWORD_FOR_FIELD
from config.model import HostEntry
from config.settings import EnvOverrides

from .conftest import REPO_ROOT

WriteCfg = Callable[..., Path]

FILE = """\
NetworkTCPPort  = 2000
MaxPDUSize      = 32768
DataDir         = data
LogLevel        = WARNING
AETable BEGIN
STORE store RW (10, 1gb) ANY
AETable END
"""


def test_public_api() -> None:
    assert config.__all__ == ["ConfigError", "Settings", "load"]
    assert config.__doc__ and "dcmqrscp.cfg" in config.__doc__


def test_no_file_gives_dcmqrscp_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load(environ={})
    assert settings.network_tcp_port == 104
    assert settings.max_pdu_size == 16384
    assert settings.max_associations == 16
    assert settings.ae_table == ()
    assert settings.config_path is None
    assert settings.data_dir == tmp_path / "var"  # absolute, from the current directory


def test_file_values_and_relative_paths(write_cfg: WriteCfg, tmp_path: Path) -> None:
    path = write_cfg(FILE)
    settings = load(path, environ={})
    assert settings.config_path == path
    assert settings.network_tcp_port == 2000
    assert settings.max_pdu_size == 32768
    assert settings.log_level == "WARNING"
    assert settings.data_dir == tmp_path / "data"
    assert settings.ae("STORE") is not None
    assert settings.ae_table[0].storage_area == tmp_path / "store"


def test_environment_wins_over_the_file(write_cfg: WriteCfg) -> None:
    settings = load(
        write_cfg(FILE),
        environ={
            "NODE_NETWORK_TCP_PORT": "11112",
            "NODE_DATABASE_URL": "postgresql+psycopg://u@db/node",
            "NODE_LOG_LEVEL": "debug",
        },
    )
    assert settings.network_tcp_port == 11112
    assert settings.database_url == "postgresql+psycopg://u@db/node"
    assert settings.resolved_database_url() == "postgresql+psycopg://u@db/node"
    assert settings.log_level == "DEBUG"
    assert settings.max_pdu_size == 32768  # untouched values stay the file's


def test_environment_without_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    environ = {
        "NODE_NETWORK_TCP_PORT": "0",  # same meaning as in the file: dcmqrscp's 104
        "NODE_MAX_PDU_SIZE": "65536",
        "NODE_MAX_ASSOCIATIONS": "3",
        "NODE_USER_NAME": "dicom",
        "NODE_GROUP_NAME": "dicom",
        "NODE_SPECIFIC_CHARACTER_SET": '"ISO_IR 192", override',
        "NODE_DATA_DIR": "rel",
        "NODE_BIND_ADDRESS": "127.0.0.1",
        "NODE_ACSE_TIMEOUT": "5",
        "NODE_DIMSE_TIMEOUT": "6",
        "NODE_NETWORK_TIMEOUT": "7",
        "NODE_SHUTDOWN_GRACE": "0",
        "NODE_ADMIN_API_ADDRESS": "::1",
        "NODE_ADMIN_API_PORT": "8042",
        "NODE_ADMIN_TOKEN": "token with spaces",
        "NODE_TLS_CERTIFICATE": "tls/c.pem",
        "NODE_TLS_PRIVATE_KEY": "/abs/k.pem",
        "NODE_TLS_CA_CERTIFICATE": "tls/ca.pem",
        "NODE_TLS_REQUIRE_PEER_CERTIFICATE": "true",
    }
    s = load(environ=environ)
    assert (s.network_tcp_port, s.max_pdu_size, s.max_associations) == (104, 65536, 3)
    assert (s.user_name, s.group_name) == ("dicom", "dicom")
    assert s.specific_character_set == ("ISO_IR 192", "override")
    assert s.data_dir == tmp_path / "rel"
    assert s.bind_address == "127.0.0.1"
    assert (s.acse_timeout, s.dimse_timeout, s.network_timeout) == (5.0, 6.0, 7.0)
    assert s.shutdown_grace == 0.0
    assert (s.admin_api_address, s.admin_api_port) == ("::1", 8042)
    assert s.admin_token == "token with spaces"
    assert s.tls_certificate == tmp_path / "tls" / "c.pem"
    assert s.tls_private_key == Path("/abs/k.pem")
    assert s.tls_ca_certificate == tmp_path / "tls" / "ca.pem"
    assert s.tls_require_peer_certificate is True


def test_every_keyword_has_an_environment_variable() -> None:
    assert set(EnvOverrides.model_fields) - {"config"} == set(KEYWORD_FOR_FIELD)
    assert set(KEYWORD_FOR_FIELD) <= set(Settings.model_fields)


def test_node_config_names_the_file(write_cfg: WriteCfg) -> None:
    path = write_cfg(FILE)
    assert load(environ={"NODE_CONFIG": str(path)}).network_tcp_port == 2000


def test_path_argument_wins_over_node_config(write_cfg: WriteCfg) -> None:
    chosen = write_cfg("NetworkTCPPort 3000\n", name="chosen.cfg")
    other = write_cfg("NetworkTCPPort 4000\n", name="other.cfg")
    assert load(chosen, environ={"NODE_CONFIG": str(other)}).network_tcp_port == 3000


def test_variable_names_are_case_insensitive_and_empty_ones_ignored(write_cfg: WriteCfg) -> None:
    settings = load(
        write_cfg(FILE), environ={"node_network_tcp_port": "5000", "NODE_LOG_LEVEL": ""}
    )
    assert settings.network_tcp_port == 5000
    assert settings.log_level == "WARNING"


def test_load_reads_os_environ_by_default(
    write_cfg: WriteCfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_CONFIG", str(write_cfg(FILE)))
    monkeypatch.setenv("NODE_MAX_ASSOCIATIONS", "9")
    settings = load()
    assert (settings.network_tcp_port, settings.max_associations) == (2000, 9)


def test_an_explicit_environ_ignores_os_environ(
    write_cfg: WriteCfg, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NODE_NETWORK_TCP_PORT", "9999")
    assert load(write_cfg(FILE), environ={}).network_tcp_port == 2000


def test_unknown_variables_are_reported(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="config.settings"):
        load(environ={"NODE_DATABASE_ULR": "x", "NODE_TEST_CORPUS": "/c", "OTHER": "1"})
    assert "NODE_DATABASE_ULR" in caplog.text
    assert "NODE_TEST_CORPUS" not in caplog.text


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "NODE_NETWORK_TCP_PORT",
            "abc",
            "NODE_NETWORK_TCP_PORT: NetworkTCPPort: 'abc' is not a number",
        ),
        (
            "NODE_NETWORK_TCP_PORT",
            "70000",
            "NODE_NETWORK_TCP_PORT: NetworkTCPPort 70000 out of range",
        ),
        ("NODE_ADMIN_API_PORT", "0", "NODE_ADMIN_API_PORT: AdminAPIPort 0 out of range"),
        ("NODE_ACSE_TIMEOUT", "soon", "NODE_ACSE_TIMEOUT: ACSETimeout: 'soon' is not a number"),
        ("NODE_LOG_LEVEL", "LOUD", "NODE_LOG_LEVEL: LogLevel"),
        (
            "NODE_SPECIFIC_CHARACTER_SET",
            "utf8",
            "NODE_SPECIFIC_CHARACTER_SET: SpecificCharacterSet",
        ),
        ("NODE_TLS_REQUIRE_PEER_CERTIFICATE", "sure", "NODE_TLS_REQUIRE_PEER_CERTIFICATE: TLS"),
    ],
)
def test_bad_environment_values(variable: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        load(environ={variable: value})
    assert str(info.value).startswith(message)
    assert info.value.path == variable


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.cfg: cannot read the configuration"):
        load(environ={"NODE_CONFIG": str(tmp_path / "nope.cfg")})


def test_file_errors_pass_through_load(write_cfg: WriteCfg) -> None:
    path = write_cfg("NetworkTCPPort 1\nBogus 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}:2: unknown keyword 'Bogus'$"):
        load(path, environ={})


@pytest.mark.parametrize(
    ("text", "environ", "where", "message"),
    [
        (
            "TLSCertificate = c.pem\n",
            {},
            ":1: ",
            "TLSCertificate and TLSPrivateKey must be set together",
        ),
        (
            "\nTLSPrivateKey = k.pem\n",
            {},
            ":2: ",
            "TLSCertificate and TLSPrivateKey must be set together",
        ),
        ("TLSCACertificate = ca.pem\n", {}, ":1: ", "TLSCACertificate needs TLSCertificate"),
        (
            "TLSCertificate = c\nTLSPrivateKey = k\nTLSRequirePeerCertificate = yes\n",
            {},
            ":3: ",
            "TLSRequirePeerCertificate needs TLSCACertificate",
        ),
        (
            "TLSCertificate = c\nTLSPrivateKey = k\n",
            {"NODE_TLS_REQUIRE_PEER_CERTIFICATE": "1"},
            "NODE_TLS_REQUIRE_PEER_CERTIFICATE: ",
            "TLSRequirePeerCertificate needs TLSCACertificate",
        ),
    ],
)
def test_tls_settings_must_fit_together(
    write_cfg: WriteCfg, text: str, environ: dict[str, str], where: str, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load(write_cfg(text), environ=environ)
    assert where in str(info.value)
    assert message in str(info.value)


def test_complete_tls_settings_load(write_cfg: WriteCfg, tmp_path: Path) -> None:
    text = (
        "TLSCertificate = c.pem\nTLSPrivateKey = k.pem\nTLSCACertificate = ca.pem\n"
        "TLSRequirePeerCertificate = on\n"
    )
    settings = load(write_cfg(text), environ={})
    assert settings.tls_certificate == tmp_path / "c.pem"
    assert settings.tls_require_peer_certificate is True


def test_examples_node_cfg_is_the_runnable_default() -> None:
    settings = load(REPO_ROOT / "examples" / "node.cfg", environ={})
    assert settings.network_tcp_port == 11112
    assert settings.data_dir == REPO_ROOT / "var"
    node, common = settings.ae_table
    assert (node.title, node.access, node.peers) == ("DICOM_NODE", "RW", None)
    assert node.storage_area == REPO_ROOT / "var" / "storage" / "DICOM_NODE"
    assert (common.title, common.access, common.peers) == ("COMMON", "R", None)
    assert settings.resolved_database_url() == f"sqlite:///{REPO_ROOT / 'var' / 'index.sqlite'}"
    assert (settings.admin_api_address, settings.admin_api_port) == ("127.0.0.1", 11113)
    assert settings.admin_token is None  # generated into var/admin.token at start


def test_examples_full_cfg_sets_everything() -> None:
    path = REPO_ROOT / "examples" / "dcmqrscp-full.cfg"
    assert set(read_config(path).lines) == set(KEYWORD_FOR_FIELD)  # every keyword is shown
    settings = load(path, environ={})
    assert settings.hosts["modalities"] == settings.hosts["acme_ct"] + settings.hosts["united_mr"]
    assert settings.vendors["Acme CT Company"] == settings.hosts["acme_ct"]
    inbox = settings.ae("INBOX")
    assert inbox is not None and inbox.peers is not None
    assert inbox.peers[-1] == HostEntry(ae_title="ROUTER", hostname="router.example", port=11112)
    assert settings.move_destination("VIEWER") == HostEntry(
        ae_title="VIEWER", hostname="viewer.example", port=4006
    )
