"""Consistent UID replacement: deterministic from a secret, or through a persistent map."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest

from node.tools.anonymize import (
    JsonUidStore,
    MemoryUidStore,
    OptionError,
    SecretUidMap,
    StoredUidMap,
    UidMap,
    UidStore,
)
from node.tools.anonymize.uids import check_root, is_well_known, random_uid

UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")
ORIGINAL = "1.2.840.113619.2.30.1.1762295590.1623.978668950.109"


def _valid(uid: str) -> bool:
    return len(uid) <= 64 and UID_RE.match(uid) is not None


def test_secret_map_is_deterministic_and_keyed() -> None:
    a, b = SecretUidMap(b"secret"), SecretUidMap(b"secret")
    assert a.replace(ORIGINAL) == b.replace(ORIGINAL)  # another instance, same secret
    assert a.replace(ORIGINAL) != SecretUidMap(b"other").replace(ORIGINAL)
    assert a.replace(ORIGINAL) != a.replace(ORIGINAL + "1")
    assert isinstance(a, UidMap)


def test_secret_map_makes_uuid_derived_uids() -> None:
    new = SecretUidMap(b"secret").replace(ORIGINAL)
    assert new.startswith("2.25.") and _valid(new)
    as_uuid = uuid.UUID(int=int(new[5:]))
    assert as_uuid.version == 8 and as_uuid.variant == uuid.RFC_4122


def test_root_uid() -> None:
    root = "1.2.826.0.1.3680043.10.999"
    mapped = SecretUidMap(b"secret", root).replace(ORIGINAL)
    assert mapped.startswith(root + ".") and _valid(mapped)
    assert len(mapped) <= 64
    values = {SecretUidMap(b"secret", root).replace(f"1.2.3.{i}") for i in range(2000)}
    assert len(values) == 2000 and all(_valid(v) for v in values)
    with pytest.raises(OptionError, match="not a valid UID"):
        check_root("1.2.03")
    with pytest.raises(OptionError, match="too long"):
        check_root("1." * 30 + "1")


def test_random_uids() -> None:
    assert random_uid() != random_uid()
    assert _valid(random_uid("1.2.3")) and random_uid("1.2.3").startswith("1.2.3.")


def test_well_known() -> None:
    assert is_well_known("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    assert is_well_known("1.2.840.10008.15.1.1")  # UTC synchronization frame of reference
    assert not is_well_known(ORIGINAL)


def test_stored_map_in_memory() -> None:
    store = MemoryUidStore()
    assert isinstance(store, UidStore)
    mapping = StoredUidMap(store)
    first = mapping.replace(ORIGINAL)
    assert mapping.replace(ORIGINAL) == first and len(store) == 1
    # a generator from a secret: stored pairs win, new ones follow the secret
    keyed = StoredUidMap(MemoryUidStore({ORIGINAL: "1.2.3"}), SecretUidMap(b"s").replace)
    assert keyed.replace(ORIGINAL) == "1.2.3"
    assert keyed.replace("1.2.4") == SecretUidMap(b"s").replace("1.2.4")


def test_json_store_persists_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "map" / "uids.json"
    with JsonUidStore(path) as store:
        first = StoredUidMap(store).replace(ORIGINAL)
    assert json.loads(path.read_text()) == {ORIGINAL: first}
    again = StoredUidMap(JsonUidStore(path))
    assert again.replace(ORIGINAL) == first
    path.write_text("[1, 2]")
    with pytest.raises(OptionError, match="expected an object"):
        JsonUidStore(path)
