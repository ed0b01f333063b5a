"""``config.load()``: the configuration file, then the environment on top, once.

Why the environment wins: containers and CI set one variable (``NODE_DATABASE_URL``,
``NODE_NETWORK_TCP_PORT``) rather than edit a file baked into an image.  Each global
keyword ``FooBar`` of the file has a variable ``NODE_<FIELD>`` named after its
``Settings`` field (``NetworkTCPPort`` -> ``NODE_NETWORK_TCP_PORT``), read with
pydantic-settings and converted by the very same functions as the file's text, so
``NODE_NETWORK_TCP_PORT=0`` means 104 exactly as ``NetworkTCPPort 0`` does.  The tables
(HostTable, VendorTable, AETable) live only in the file.  ``NODE_CONFIG`` names the file
when ``load()`` is not given one.

This is the only module that looks at ``os.environ`` for configuration, and only when
``load()`` is not handed a mapping.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources import PydanticBaseSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

from config.dcmqrscp import read_config
from config.errors import ConfigError, InvalidValue
from config.keywords import KEYWORD_FOR_FIELD, KEYWORDS
from config.model import Settings

logger = logging.getLogger(__name__)

ENV_PREFIX = "NODE_"
#: Variables with our prefix that are not configuration (the test suite's own).
#: NODE_* variables that are not ours: our tests', and Node.js's (NODE_OPTIONS, NODE_PATH,
#: NODE_ENV, NODE_EXTRA_CA_CERTS...), which share the prefix on many machines.
_NOT_CONFIG_PREFIXES = (
    "NODE_TEST_",
    "NODE_OPTIONS",
    "NODE_PATH",
    "NODE_ENV",
    "NODE_EXTRA_CA_CERTS",
    "NODE_TLS_",
    "NODE_NO_",
    "NODE_DEBUG",
    "NODE_V8_",
    "NODE_REPL_",
    "NODE_ICU_",
    "NODE_PENDING_",
    "NODE_REDIRECT_",
    "NODE_SKIP_",
    "NODE_UNIQUE_ID",
    "NODE_CHANNEL_FD",
    "NODE_DISABLE_",
    "NODE_PRESERVE_",
    "NODE_COMPILE_",
)


class EnvOverrides(BaseSettings):
    """The ``NODE_*`` variables as text; ``None`` where a variable is unset or empty."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, case_sensitive=False, extra="ignore", env_ignore_empty=True
    )

    config: str | None = None
    # dcmqrscp.cfg globals
    network_tcp_port: str | None = None
    max_pdu_size: str | None = None
    max_associations: str | None = None
    user_name: str | None = None
    group_name: str | None = None
    specific_character_set: str | None = None
    # extensions
    database_url: str | None = None
    data_dir: str | None = None
    bind_address: str | None = None
    acse_timeout: str | None = None
    dimse_timeout: str | None = None
    network_timeout: str | None = None
    shutdown_grace: str | None = None
    ingest_workers: str | None = None
    log_level: str | None = None
    admin_api_address: str | None = None
    admin_api_port: str | None = None
    admin_token: str | None = None
    tls_certificate: str | None = None
    tls_private_key: str | None = None
    tls_ca_certificate: str | None = None
    tls_require_peer_certificate: str | None = None
    user_identity_file: str | None = None
    require_user_identity: str | None = None
    job_workers: str | None = None
    job_concurrency: str | None = None
    job_lease: str | None = None
    study_stable_seconds: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Values arrive through from_environ(); never from os.environ behind our back.
        return (init_settings,)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EnvOverrides:
        return cls(**_MappingEnvSource(cls, environ)())

    @staticmethod
    def variable(field: str) -> str:
        return ENV_PREFIX + field.upper()


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ  # before super().__init__, which loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def _warn_unknown(environ: Mapping[str, str]) -> None:
    known = {EnvOverrides.variable(name) for name in EnvOverrides.model_fields}
    for name in environ:
        upper = name.upper()
        if (
            upper.startswith(ENV_PREFIX)
            and upper not in known
            and not upper.startswith(_NOT_CONFIG_PREFIXES)
        ):
            logger.warning("ignoring unknown environment variable %s", name)


def load(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Build the node's settings: file (``path``, else ``$NODE_CONFIG``), then environment.

    Parameters
    ----------
    path
        A dcmqrscp.cfg-style file.  Without it and without ``NODE_CONFIG`` the result is
        the model's defaults (dcmqrscp's: port 104, no AE titles) plus the environment.
    environ
        The variables to read; ``os.environ`` when ``None`` (tests pass a dict).

    Returns
    -------
    Settings
        Frozen; every path in it is absolute.  Relative paths in the file resolve against
        the file's folder, relative paths from the environment against the current
        directory.

    Raises
    ------
    ConfigError
        ``file:line: message`` for the file, ``NODE_X: message`` for a variable.
    """
    env: Mapping[str, str] = os.environ if environ is None else environ
    _warn_unknown(env)
    overrides = EnvOverrides.from_environ(env)
    cwd = Path.cwd()

    config_path = (
        path if path is not None else (Path(overrides.config) if overrides.config else None)
    )
    values: dict[str, Any] = {}
    origin: dict[str, tuple[Path | str, int | None]] = {}
    if config_path is not None:
        parsed = read_config(config_path)
        values.update(parsed.values)
        values["config_path"] = parsed.path
        origin = {name: (parsed.path, line) for name, line in parsed.lines.items()}

    for name, raw in overrides.model_dump(exclude={"config"}, exclude_none=True).items():
        variable = EnvOverrides.variable(name)
        keyword = KEYWORDS[KEYWORD_FOR_FIELD[name]]
        try:
            values[name] = keyword.from_environment(raw, cwd)
        except InvalidValue as exc:
            raise ConfigError(variable, None, str(exc)) from None
        origin[name] = (variable, None)

    if "data_dir" not in values:
        values["data_dir"] = cwd / Settings.model_fields["data_dir"].get_default()
    _check_tls(values, origin, config_path)
    try:
        return Settings(**values)
    except ValidationError as exc:  # the readers check first; this is a safety net
        raise ConfigError(config_path, None, f"invalid settings: {exc}") from None


def _check_tls(
    values: dict[str, Any],
    origin: dict[str, tuple[Path | str, int | None]],
    config_path: Path | None,
) -> None:
    """TLS settings that cannot work together fail at start-up, not at the first peer."""

    def fail(field: str, message: str) -> ConfigError:
        where, line = origin.get(field, (config_path, None))
        return ConfigError(where, line, message)

    cert, key = values.get("tls_certificate"), values.get("tls_private_key")
    if (cert is None) != (key is None):
        field = "tls_certificate" if cert is not None else "tls_private_key"
        raise fail(field, "TLSCertificate and TLSPrivateKey must be set together")
    if cert is None:
        for field in ("tls_ca_certificate", "tls_require_peer_certificate"):
            if values.get(field):
                raise fail(
                    field, f"{KEYWORD_FOR_FIELD[field]} needs TLSCertificate and TLSPrivateKey"
                )
    if values.get("tls_require_peer_certificate") and values.get("tls_ca_certificate") is None:
        raise fail(
            "tls_require_peer_certificate",
            "TLSRequirePeerCertificate needs TLSCACertificate to check peers against",
        )
