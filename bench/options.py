"""The knobs of a benchmark run (``bench.run`` builds them from its command line)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DEFAULT_POSTGRES_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

#: Every workload, in the order they run.
WORKLOADS = ("ingest", "corpus", "find", "move", "rss", "index", "tools")


@dataclass
class Options:
    workdir: Path
    quick: bool = False
    runs: int = 3
    workloads: tuple[str, ...] = WORKLOADS
    #: peers besides us: "orthanc", "storescp"
    peers: tuple[str, ...] = ("orthanc", "storescp")
    #: instances of 0.5 MB CT per ingest run
    count: int = 500
    #: associations of the concurrent ingest figure (the single-association one always runs)
    associations: tuple[int, ...] = (1, 4)
    corpus: Path | None = None
    corpus_limit: int | None = None
    find_studies: int = 200
    find_reps: int = 50
    move_count: int = 200
    large_mb: int = 256
    scales: tuple[int, ...] = (10_000, 100_000)
    scale_reps: int = 50
    postgres_url: str | None = DEFAULT_POSTGRES_URL
    #: CT files of the offline-tools workload (node-ctl vs gdcmanon, gdcmconv, dcm2pnm...)
    tools_count: int = 1000

    def as_dict(self) -> dict[str, Any]:
        """For the JSON: paths as text, no password of the PostgreSQL URL."""
        out = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}
        if self.postgres_url:
            from sqlalchemy.engine import make_url

            out["postgres_url"] = make_url(self.postgres_url).render_as_string(hide_password=True)
        return out
