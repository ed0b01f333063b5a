"""Consistent UID replacement: the same original UID always becomes the same new UID.

Why pluggable: within one run a dict would do, but de-identified studies are sent to the
same research archive over months, from several nodes.  Two ways keep them consistent:

- ``SecretUidMap``: deterministic, nothing stored.  The new UID is an HMAC-SHA256 of the
  original under a secret, written as a ``2.25.`` UUID-derived UID (PS3.5 B.2) or under a
  root (``--root-uid``).  Every node that holds the secret computes the same UID.
- ``StoredUidMap``: a persistent map (``UidStore``) remembers each pair; new UIDs come
  from a generator (random, or ``SecretUidMap``).  ``MemoryUidStore`` and ``JsonUidStore``
  are the stores here; the index database implements ``UidStore`` for server jobs.

Well-known UIDs (SOP Classes, Transfer Syntaxes, the UTC synchronisation frame of
reference...) are never replaced: they identify nothing and other software relies on them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol, runtime_checkable

from pydicom.uid import UID_dictionary

from node.tools.anonymize.errors import OptionError

__all__ = [
    "JsonUidStore",
    "MemoryUidStore",
    "SecretUidMap",
    "StoredUidMap",
    "UidMap",
    "UidStore",
    "check_root",
    "is_well_known",
    "random_uid",
]

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
#: A root must leave at least this many digits for the hash (about 63 bits).
_MIN_DIGITS = 19


@runtime_checkable
class UidMap(Protocol):
    """What the anonymizer needs: the replacement of one original UID."""

    def replace(self, original: str) -> str:
        """The new UID for ``original`` (always the same one for the same original)."""
        ...


@runtime_checkable
class UidStore(Protocol):
    """Persistent pairs original -> replacement (the index DB implements this later)."""

    def get(self, original: str) -> str | None:
        """The stored replacement, or None."""
        ...

    def put(self, original: str, replacement: str) -> None:
        """Remember a new pair (the original is not yet stored)."""
        ...


def check_root(root: str) -> str:
    """Return ``root`` if it can prefix generated UIDs, else raise ``OptionError``."""
    root = root.strip().rstrip(".")
    if not _UID_RE.match(root):
        raise OptionError(f"root UID {root!r} is not a valid UID")
    if len(root) > 64 - 1 - _MIN_DIGITS:
        raise OptionError(
            f"root UID {root!r} is too long: at most {64 - 1 - _MIN_DIGITS} characters "
            f"leave room for {_MIN_DIGITS} digits"
        )
    return root


def is_well_known(uid: str) -> bool:
    """True for UIDs defined by the standard (PS3.6 Annex A): never replaced."""
    return uid in UID_dictionary


def _uid_from_digest(digest: bytes, root: str | None) -> str:
    if root is None:
        # A version-8 (custom) UUID from the first 128 bits: PS3.5 B.2 wants a UUID.
        value = int.from_bytes(digest[:16], "big")
        value &= ~(0xF000 << 64)
        value |= 0x8000 << 64
        value &= ~(0xC000 << 48)
        value |= 0x8000 << 48
        return f"2.25.{uuid.UUID(int=value).int}"
    digits = min(39, 64 - len(root) - 1)
    value = int.from_bytes(digest, "big") % (10**digits)
    return f"{root}.{value}"


def random_uid(root: str | None = None) -> str:
    """A fresh random UID (``2.25.`` + UUID4, or under ``root``)."""
    if root is None:
        return f"2.25.{uuid.uuid4().int}"
    return _uid_from_digest(secrets.token_bytes(32), root)


class SecretUidMap:
    """Deterministic map: HMAC-SHA256(secret, original) -> UID.  Nothing to store or share
    but the secret."""

    def __init__(self, secret: bytes, root: str | None = None) -> None:
        if not secret:
            raise OptionError("the UID secret must not be empty")
        self._secret = secret
        self.root = check_root(root) if root is not None else None
        self._cache: dict[str, str] = {}

    def replace(self, original: str) -> str:
        found = self._cache.get(original)
        if found is None:
            digest = hmac.new(self._secret, b"uid\0" + original.encode(), hashlib.sha256)
            found = _uid_from_digest(digest.digest(), self.root)
            if len(self._cache) < 1_000_000:
                self._cache[original] = found
        return found


class MemoryUidStore:
    """Pairs in a dict: one process, one run."""

    def __init__(self, pairs: dict[str, str] | None = None) -> None:
        self.pairs: dict[str, str] = dict(pairs or {})

    def get(self, original: str) -> str | None:
        return self.pairs.get(original)

    def put(self, original: str, replacement: str) -> None:
        self.pairs[original] = replacement

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self) -> Iterator[str]:
        return iter(self.pairs)


class JsonUidStore(MemoryUidStore):
    """Pairs in a JSON file (``{"original": "replacement"}``), loaded on open and written
    atomically by ``save()`` (also on leaving a ``with`` block).

    Meant for the CLI across runs on one machine; several processes writing the same file
    at once would lose pairs (use the index database for that).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        pairs: dict[str, str] = {}
        if self.path.exists():
            try:
                loaded = json.loads(self.path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise OptionError(f"UID map {self.path}: {exc}") from None
            if not isinstance(loaded, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in loaded.items()
            ):
                raise OptionError(f"UID map {self.path}: expected an object of UID strings")
            pairs = loaded
        super().__init__(pairs)
        self._dirty = False

    def put(self, original: str, replacement: str) -> None:
        super().put(original, replacement)
        self._dirty = True

    def save(self) -> None:
        """Write the file (temp file, fsync, rename) if anything was added."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".uidmap-", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.pairs, fh, indent=0, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._dirty = False

    def __enter__(self) -> JsonUidStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.save()


class StoredUidMap:
    """A ``UidMap`` over a persistent ``UidStore``: look up, else generate and store."""

    def __init__(
        self,
        store: UidStore,
        generate: Callable[[str], str] | None = None,
        root: str | None = None,
    ) -> None:
        self.store = store
        root = check_root(root) if root is not None else None
        self._generate = generate or (lambda _original: random_uid(root))

    def replace(self, original: str) -> str:
        found = self.store.get(original)
        if found is None:
            found = self._generate(original)
            self.store.put(original, found)
        return found
