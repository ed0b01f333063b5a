"""Index <-> file store consistency: every row has its file, every file its row."""

from __future__ import annotations

from dataclasses import dataclass, field

from storage.files import FileStore
from storage.index import Index


@dataclass
class IntegrityReport:
    missing_files: list[tuple[str, str]] = field(default_factory=list)
    orphan_files: list[tuple[str, str]] = field(default_factory=list)
    checked_rows: int = 0

    @property
    def ok(self) -> bool:
        return not self.missing_files and not self.orphan_files

    def as_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked_rows": self.checked_rows,
            "missing_files": [f"{ae}:{path}" for ae, path in self.missing_files],
            "orphan_files": [f"{ae}:{path}" for ae, path in self.orphan_files],
        }

    def summary(self) -> str:
        lines = [
            f"{self.checked_rows} index row(s) checked: "
            f"{len(self.missing_files)} without file, {len(self.orphan_files)} file(s) without row"
        ]
        lines += [f"missing file: {ae}:{path}" for ae, path in self.missing_files]
        lines += [f"orphan file: {ae}:{path}" for ae, path in self.orphan_files]
        lines.append("OK" if self.ok else "INCONSISTENT")
        return "\n".join(lines)


def check(index: Index, stores: dict[str, FileStore]) -> IntegrityReport:
    report = IntegrityReport()
    for ae_title, store in stores.items():
        rows = set(index.all_paths(ae_title))
        report.checked_rows += len(rows)
        files = set(store.walk())
        report.missing_files += [(ae_title, p) for p in sorted(rows - files)]
        report.orphan_files += [(ae_title, p) for p in sorted(files - rows)]
    return report
