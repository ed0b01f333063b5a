"""The admin API's token: where it comes from, and the check every request goes through.

Why a token file when none is configured: the API never runs open.  With ``AdminAPIPort``
and no ``AdminToken``, the daemon generates a random token once into
``<DataDir>/admin.token`` (mode 0600, as Jupyter does) and keeps using it; ``node-ctl``
given the same config reads it there.  Whoever can read that file can already read the
node's data.

The check is ASGI middleware in front of the router, so it covers every path (known, unknown,
``/openapi.json``) and a new endpoint cannot forget it: no ``Authorization: Bearer <token>``
or a wrong one gets 401 with a ``WWW-Authenticate`` header.  Tokens are compared with
:func:`hmac.compare_digest`.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
import stat
from pathlib import Path

from starlette.types import ASGIApp, Receive, Scope, Send

from config.model import Settings

logger = logging.getLogger(__name__)

#: Name of the generated token file in ``DataDir``.
TOKEN_FILE = "admin.token"


def token_path(settings: Settings) -> Path:
    """Where a generated token lives for ``settings``: ``<DataDir>/admin.token``."""
    return settings.data_dir / TOKEN_FILE


def read_token_file(path: Path) -> str | None:
    """The token in ``path`` (stripped), or None when the file does not exist or is empty."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    return text or None


def server_token(settings: Settings) -> str:
    """The token the API requires: ``AdminToken``, else the one in ``<DataDir>/admin.token``
    (generated there, mode 0600, when the file does not exist yet)."""
    if settings.admin_token:
        return settings.admin_token
    path = token_path(settings)
    existing = read_token_file(path)
    if existing is not None:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            logger.warning("%s is readable by others (mode %o): chmod 600 it", path, mode)
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(32)  # hex: never starts with "-" (a CLI option to argparse)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        existing = read_token_file(path)
        if existing is None:
            raise
        return existing
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
    logger.info("admin API token generated in %s", path)
    return token


def token_matches(header: str | None, token: str) -> bool:
    """Is ``header`` (the Authorization value) ``Bearer <token>``?"""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


class TokenAuth:
    """ASGI middleware: HTTP requests without the right bearer token get 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the admin API needs a non-empty token")
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if token_matches(header, self.token):
            await self.app(scope, receive, send)
            return
        if header is None:
            detail, challenge = "this API needs 'Authorization: Bearer <token>'", "Bearer"
        else:
            detail = "invalid token"
            challenge = 'Bearer error="invalid_token"'
        client = scope.get("client") or ("?", 0)
        logger.warning(
            "refused %s %s from %s:%s: %s",
            scope.get("method"),
            scope.get("path"),
            client[0],
            client[1],
            detail,
        )
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", challenge.encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = [
    "TOKEN_FILE",
    "TokenAuth",
    "read_token_file",
    "server_token",
    "token_matches",
    "token_path",
]
