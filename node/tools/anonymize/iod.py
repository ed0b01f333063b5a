"""How much an IOD requires an attribute: Type 1, 2 or not at all.

Why: a compound action of Table E.1-1 (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) removes an attribute
unless the IOD requires it, and ``--dumb`` must not empty a Type 1 attribute.  The
answer comes from ``data/iod_types.json`` (see ``_build_data``): SOP Class -> IOD ->
modules -> the Type 1/1C/2/2C attributes of each module.

Where the SOP Class is not a standard one (private or missing), the strongest type any
module gives the attribute is used: it keeps a value where some IOD would need one,
which costs nothing in confidentiality (a dummy or empty value replaces it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources

__all__ = ["IodTypes", "load_iod_types"]

_RANK = {"1": 4, "1C": 3, "2": 2, "2C": 1}


def _strongest(kinds: Iterable[str]) -> str | None:
    best: str | None = None
    for kind in kinds:
        if best is None or _RANK[kind] > _RANK[best]:
            best = kind
    return best


def path_key(path: tuple[int, ...]) -> str:
    """``(0x00081140, 0x00081155)`` -> ``"00081140/00081155"`` (the JSON's key form)."""
    return "/".join(f"{tag:08X}" for tag in path)


class IodTypes:
    """Type lookups per SOP Class, cached per class."""

    def __init__(self, data: dict[str, object]) -> None:
        self._sop_classes: dict[str, str] = data["sop_classes"]  # type: ignore[assignment]
        self._iods: dict[str, list[str]] = data["iods"]  # type: ignore[assignment]
        self._modules: dict[str, dict[str, str]] = data["modules"]  # type: ignore[assignment]
        self._cache: dict[str, dict[str, str]] = {}
        union: dict[str, str] = {}
        for table in self._modules.values():
            for key, kind in table.items():
                union[key] = _strongest([kind, union[key]]) if key in union else kind
        self._union = union

    def iod_of(self, sop_class_uid: str) -> str | None:
        """The IOD id (``ct-image``...) of a SOP Class, or None when not a standard one."""
        return self._sop_classes.get(sop_class_uid)

    def table(self, sop_class_uid: str) -> dict[str, str]:
        """Every path of the SOP Class's IOD that is Type 1/1C/2/2C, with its type."""
        found = self._cache.get(sop_class_uid)
        if found is not None:
            return found
        iod = self._sop_classes.get(sop_class_uid)
        if iod is None:
            table = self._union
        else:
            merged: dict[str, str] = {}
            for module in self._iods.get(iod, []):
                for key, kind in self._modules.get(module, {}).items():
                    merged[key] = _strongest([kind, merged[key]]) if key in merged else kind
            table = merged
        self._cache[sop_class_uid] = table
        return table

    def type_of(self, sop_class_uid: str, path: tuple[int, ...]) -> str | None:
        """``"1"``, ``"1C"``, ``"2"``, ``"2C"`` or None (Type 3 or not in the IOD).

        ``path`` is the tag of the attribute preceded by the tags of the sequences that
        contain it.
        """
        return self.table(sop_class_uid).get(path_key(path))


@cache
def load_iod_types() -> IodTypes:
    """The table shipped in ``data/iod_types.json``."""
    text = (
        resources.files("node.tools.anonymize")
        .joinpath("data/iod_types.json")
        .read_text(encoding="utf-8")
    )
    return IodTypes(json.loads(text))
