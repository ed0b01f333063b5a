"""User identity negotiation (PS3.7 D.3.3.7): username or username + password.

Passwords are never kept in clear: the users file holds ``username:scrypt$salt$hash`` lines
(``node-ctl user-hash NAME`` writes one), read once at start-up.  A request of a kind we do
not verify (Kerberos, SAML, JWT) is refused when identities are configured.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
from pathlib import Path

logger = logging.getLogger(__name__)

USERNAME = 1
USERNAME_AND_PASSWORD = 2
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}


class UserFileError(ValueError):
    """The users file cannot be read or has a malformed line."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """An ``scrypt$salt$hash`` string for ``password`` (random salt unless given)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    encode = base64.b64encode
    return f"scrypt${encode(salt).decode()}${encode(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest)
        actual = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), **_SCRYPT)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def load_users(path: Path) -> dict[str, str]:
    """``username -> hash`` from a users file (``#`` comments and blank lines allowed)."""
    users: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UserFileError(f"{path}: cannot read the users file: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, stored = line.partition(":")
        if not sep or not name or not stored.startswith("scrypt$"):
            raise UserFileError(f"{path}:{number}: expected 'username:scrypt$...'")
        users[name] = stored
    return users


class UserVerifier:
    """The EVT_USER_ID handler: accepts known users with the right password."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users

    def __call__(self, event: object) -> tuple[bool, bytes | None]:
        kind = getattr(event, "user_id_type", None)
        name = bytes(getattr(event, "primary_field", b"") or b"").decode("utf-8", "replace")
        secret = bytes(getattr(event, "secondary_field", b"") or b"").decode("utf-8", "replace")
        stored = self.users.get(name)
        if kind == USERNAME_AND_PASSWORD:
            ok = stored is not None and check_password(secret, stored)
        elif kind == USERNAME:
            ok = False  # a bare username proves nothing when passwords are configured
        else:
            ok = False
        if not ok:
            logger.warning("user identity refused for %r (type %s)", name, kind)
        return ok, None
