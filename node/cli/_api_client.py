"""The admin API's client for node-ctl (``status``, ``studies``, ``job``, ``route``).

Where it connects: ``--api URL``, else the config's ``AdminAPIAddress``/``AdminAPIPort``
(``-c FILE`` or ``NODE_CONFIG``; a wildcard address means this host).  The token:
``--token``, else the config's ``AdminToken``, else ``<DataDir>/admin.token``, the file the
node generates when no token is configured (so the same config is all node-ctl needs).

Every failure becomes one :class:`ApiClientError` whose message is one line for the user;
httpx's exceptions are mapped in one place (:func:`_request`)::

    ApiClientError
     +-- NotConfigured     no URL or no token could be found (exit code 2)
     +-- Unreachable       nothing answers at the URL, or it timed out
     +-- ApiRefused        the API answered 4xx/5xx: ``status`` and ``detail``
"""

from __future__ import annotations

import argparse
import ipaddress
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx


class ApiClientError(Exception):
    """A call to the admin API failed; ``str()`` is the one-line message."""

    exit_code = 1


class NotConfigured(ApiClientError):
    """No URL or no token: the command line or the config must say."""

    exit_code = 2


class Unreachable(ApiClientError):
    """Nothing answered at the API's URL (refused, timed out, not HTTP)."""


class ApiRefused(ApiClientError):
    """The API answered with an error status."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{detail} (HTTP {status})")
        self.status = status
        self.detail = detail


def add_api_arguments(parser: argparse.ArgumentParser) -> None:
    """``--api URL``, ``--token TOKEN``, ``-c/--config FILE``."""
    group = parser.add_argument_group("admin API (default: from the node's config)")
    group.add_argument("--api", metavar="URL", help="the API's base URL, e.g. http://host:8042")
    group.add_argument("--token", help="the API token (default: AdminToken or DataDir/admin.token)")
    group.add_argument("-c", "--config", type=Path, help="the node's config file (or NODE_CONFIG)")


def _connect_host(address: str) -> str:
    """The host to connect to for a bind address (a wildcard means this host)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.is_unspecified:
        ip = ipaddress.ip_address("::1" if ip.version == 6 else "127.0.0.1")
    return f"[{ip}]" if ip.version == 6 else str(ip)


def resolve(api: str | None, token: str | None, config: Path | None) -> tuple[str, str]:
    """The base URL and token to use (see the module docstring); :class:`NotConfigured`."""
    settings = None
    if api is None or token is None:
        from config import ConfigError, load

        try:
            settings = load(config)
        except (ConfigError, OSError) as exc:
            raise NotConfigured(str(exc)) from exc
    if api is None:
        assert settings is not None
        if settings.admin_api_port is None:
            where = f"{config}" if config else "the configuration"
            raise NotConfigured(f"{where} sets no AdminAPIPort: give --api URL or -c CONFIG")
        host = _connect_host(settings.admin_api_address)
        api = f"http://{host}:{settings.admin_api_port}"
    if token is None:
        assert settings is not None
        token = settings.admin_token
        if not token:
            from node.api import read_token_file, token_path

            path = token_path(settings)
            try:
                token = read_token_file(path)
            except OSError as exc:
                raise NotConfigured(
                    f"cannot read the token in {path}: {exc.strerror or exc} (give --token)"
                ) from exc
            if token is None:
                raise NotConfigured(
                    f"no token: give --token, set AdminToken, or use the node's config "
                    f"(its token is in {path} once the node has started)"
                )
    return api.rstrip("/"), token


class AdminClient:
    """A small synchronous client: ``get``, ``post``, ``delete``, ``download``."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0) -> None:
        self.base_url = base_url
        self._http = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AdminClient:
        url, token = resolve(args.api, args.token, args.config)
        return cls(url, token)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AdminClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str, **params: Any) -> Any:
        return self._request("GET", path, params=params).json()

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self._request("POST", path, json=body, params=params).json()

    def delete(self, path: str, **params: Any) -> Any:
        return self._request("DELETE", path, params=params).json()

    def download(self, path: str, out: Path, **params: Any) -> int:
        """Stream the answer of ``GET path`` into ``out``; returns the bytes written."""
        written = 0
        with self._call() as http, http.stream("GET", path, params=_clean(params)) as response:
            _raise_for(response)
            with out.open("wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
                    written += len(chunk)
        return written

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if "params" in kwargs:
            kwargs["params"] = _clean(kwargs["params"])
        with self._call() as http:
            response = http.request(method, path, **kwargs)
        _raise_for(response)
        return response

    @contextmanager
    def _call(self) -> Iterator[httpx.Client]:
        """Map httpx's transport errors to :class:`Unreachable` (the one place)."""
        try:
            yield self._http
        except httpx.TimeoutException as exc:
            raise Unreachable(f"the admin API at {self.base_url} timed out") from exc
        except httpx.ConnectError as exc:
            raise Unreachable(f"cannot reach the admin API at {self.base_url}: {exc}") from exc
        except httpx.HTTPError as exc:
            raise Unreachable(f"admin API at {self.base_url}: {exc}") from exc


def _clean(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None and v != [] and v != ""}


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    response.read()
    try:
        detail = response.json().get("detail", response.text)
    except ValueError:
        detail = response.text.strip() or response.reason_phrase
    if isinstance(detail, list):  # FastAPI's validation errors
        detail = "; ".join(
            f"{'.'.join(str(p) for p in item.get('loc', [])[1:])}: {item.get('msg')}"
            for item in detail
        )
    raise ApiRefused(response.status_code, str(detail))


def run_with_client(prog: str, args: argparse.Namespace, body: Callable[[AdminClient], int]) -> int:
    """Run ``body(client)``; an :class:`ApiClientError` becomes one ``node-ctl PROG:`` line."""
    try:
        with AdminClient.from_args(args) as client:
            return body(client)
    except ApiClientError as exc:
        print(f"node-ctl {prog}: {exc}", file=sys.stderr)
        return exc.exit_code


def print_table(rows: list[list[str]], headers: list[str], out: TextIO | None = None) -> None:
    """Left-aligned columns two spaces apart, under a header line."""
    out = out if out is not None else sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for row in [headers, *rows]:
        line = "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        print(line.rstrip(), file=out)


__all__ = [
    "AdminClient",
    "ApiClientError",
    "ApiRefused",
    "NotConfigured",
    "Unreachable",
    "add_api_arguments",
    "print_table",
    "resolve",
    "run_with_client",
]
