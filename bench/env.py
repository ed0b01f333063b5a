"""What the figures were measured on: CPU, load, memory, and the versions of everything.

Why: a benchmark figure without its machine and versions cannot be compared with the next
run; the load average says whether the machine was quiet.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent

PYTHON_PACKAGES = ("pydicom", "pynetdicom", "SQLAlchemy", "alembic", "psycopg", "numpy")


def _first_line(args: list[str]) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=10, errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return ""
    for line in (proc.stdout + proc.stderr).splitlines():
        if line.strip():
            return line.strip()
    return ""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_mb() -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                out[key] = int(rest.split()[0]) // 1024
    except OSError:
        pass
    return out


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def dcmtk_version() -> str:
    line = _first_line(["storescu", "--version"])
    match = re.search(r"v(\d+\.\d+\.\d+)", line)
    return match.group(1) if match else line


def orthanc_version() -> str:
    binary = shutil.which("Orthanc")
    return _first_line([binary, "--version"]) if binary else ""


def git_state() -> dict[str, Any]:
    """Commit and whether the tree has local changes (read-only git commands)."""
    commit = _first_line(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])
    try:
        status = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        status = ""
    return {"commit": commit, "dirty": bool(status.strip())}


def describe() -> dict[str, Any]:
    """The environment of this run, as stored in the JSON and printed under the table."""
    packages = {}
    for name in PYTHON_PACKAGES:
        try:
            packages[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu_model(),
        "cpus": os.cpu_count(),
        "memory_mb": memory_mb(),
        "load_average_start": load_average(),
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "packages": packages,
        "sqlite": sqlite3.sqlite_version,
        "dcmtk": dcmtk_version(),
        "orthanc": orthanc_version(),
        "git": git_state(),
    }


def summary_line(env: dict[str, Any]) -> str:
    """One line for the bottom of the markdown table."""
    pkgs = env.get("packages", {})
    parts = [
        f"{env.get('cpu', '?')} x{env.get('cpus', '?')}",
        f"load {env.get('load_average_start')} -> {env.get('load_average_end', '?')}",
        f"Python {env.get('python')}",
        f"pynetdicom {pkgs.get('pynetdicom', '?')}",
        f"pydicom {pkgs.get('pydicom', '?')}",
        f"SQLAlchemy {pkgs.get('SQLAlchemy', '?')}",
        f"SQLite {env.get('sqlite')}",
    ]
    if env.get("postgresql"):
        parts.append(f"PostgreSQL {env['postgresql']}")
    parts.append(f"DCMTK {env.get('dcmtk') or '-'}")
    parts.append(f"{env.get('orthanc') or 'Orthanc -'}")
    git = env.get("git", {})
    commit = f"commit {git.get('commit', '?')}{' (dirty)' if git.get('dirty') else ''}"
    end = env.get("git_end", {}).get("commit")
    if end and end != git.get("commit"):
        commit += f" -> {end} (commits landed during the run)"
    parts.append(commit)
    return ", ".join(parts)
