"""Fixtures shared by every test package.

- ``corpus_dir``: the shared corpus of real DICOM files (``../shared/data/corpus`` beside the
  checkout, or ``NODE_TEST_CORPUS``).  Tests read it in place; it is never copied into the repo.
- ``require_binary(name)``: the path of a real DCMTK/GDCM/dicom3tools binary.  In CI (``CI`` set)
  a missing binary is a failure, because CI installs them; on a developer's machine it is a skip
  with a message that says what to install.
- ``free_port()``: a free TCP port on the loopback interface.
"""

from __future__ import annotations

import csv
import os
import secrets
import shutil
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from storage.db import normalise_url

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Debian package that ships each binary the tests use.
BINARY_PACKAGES = {
    "echoscu": "dcmtk",
    "storescu": "dcmtk",
    "storescp": "dcmtk",
    "findscu": "dcmtk",
    "movescu": "dcmtk",
    "getscu": "dcmtk",
    "dcmqrscp": "dcmtk",
    "dcmqrti": "dcmtk",
    "dcmdump": "dcmtk",
    "dcm2pnm": "dcmtk",
    "dcmj2pnm": "dcmtk",
    "dcmmkdir": "dcmtk",
    "dcmdjpeg": "dcmtk",
    "dcmdrle": "dcmtk",
    "dump2dcm": "dcmtk",
    "img2dcm": "dcmtk",
    "dcmcjpls": "dcmtk",
    "dcmdjpls": "dcmtk",
    "gdcmscu": "libgdcm-tools",
    "gdcmanon": "libgdcm-tools",
    "gdcmconv": "libgdcm-tools",
    "gdcmdump": "libgdcm-tools",
    "gdcminfo": "libgdcm-tools",
    "gdcmgendir": "libgdcm-tools",
    "gdcm2pnm": "libgdcm-tools",
    "gdcmimg": "libgdcm-tools",
    "gdcmpdf": "libgdcm-tools",
    "gdcmraw": "libgdcm-tools",
    "gdcmdiff": "libgdcm-tools",
    "gdcmscanner": "libgdcm-tools",
    "dciodvfy": "dicom3tools",
    "dcentvfy": "dicom3tools",
    "docker-compose": "docker-compose",
}


def corpus_root() -> Path:
    """Where the shared corpus lives (it is not part of the repository)."""
    env = os.environ.get("NODE_TEST_CORPUS")
    if env:
        return Path(env)
    return REPO_ROOT.parent / "shared" / "data" / "corpus"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    root = corpus_root()
    if not (root / "MANIFEST.tsv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"shared corpus not found at {root}")
        pytest.skip(f"shared corpus not found at {root} (set NODE_TEST_CORPUS)")
    return root


@pytest.fixture(scope="session")
def corpus_manifest(corpus_dir: Path) -> list[dict[str, str]]:
    """Rows of ``MANIFEST.tsv`` (path, SOP class, transfer syntax, read_status, notes...)."""
    with (corpus_dir / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="session")
def require_binary() -> Callable[[str], str]:
    def _require(name: str) -> str:
        path = shutil.which(name)
        if path:
            return path
        package = BINARY_PACKAGES.get(name, "?")
        message = f"{name} not installed (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must install it in .ci/run")
        pytest.skip(message)

    return _require


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def free_port() -> Callable[[], int]:
    return _free_port


POSTGRES_URL = os.environ.get("NODE_TEST_POSTGRES_URL")


def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped afterwards.

    Runs when ``NODE_TEST_POSTGRES_URL`` is set (``.ci/run`` sets it to the machine's
    server); in CI a missing URL is a failure, elsewhere a skip.
    """
    if not POSTGRES_URL:
        if os.environ.get("CI"):
            pytest.fail("NODE_TEST_POSTGRES_URL is not set: CI must run the PostgreSQL tests")
        pytest.skip("PostgreSQL tests need NODE_TEST_POSTGRES_URL")
    base = normalise_url(POSTGRES_URL)
    schema = f"t_{secrets.token_hex(6)}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in base else "?"
    try:
        yield f"{base}{separator}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    yield from postgres_schema_url()
