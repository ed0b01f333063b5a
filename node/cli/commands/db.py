"""``node-ctl db upgrade|check``: the index schema and its consistency with the file store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("db", help="index database: upgrade the schema, check it")
    parser.add_argument("-c", "--config", type=Path, help="config file (or NODE_CONFIG)")
    sub = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = sub.add_parser("upgrade", help="bring the index to the newest schema (Alembic)")
    upgrade.set_defaults(func=run_upgrade)
    check = sub.add_parser(
        "check", help="every index row has its file and every stored file its row"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=run_check)


def _settings(args: argparse.Namespace) -> Any:
    from config import load

    return load(args.config)


def run_upgrade(args: argparse.Namespace) -> int:
    from storage.db import create_index_engine
    from storage.migrate import current_revision, upgrade

    try:
        settings = _settings(args)
    except Exception as exc:  # noqa: BLE001
        print(f"node-ctl db upgrade: {exc}", file=sys.stderr)
        return 2
    engine = create_index_engine(settings.resolved_database_url())
    upgrade(engine)
    print(f"index at revision {current_revision(engine)}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from node.app import open_storage
    from storage.integrity import check

    try:
        settings = _settings(args)
    except Exception as exc:  # noqa: BLE001
        print(f"node-ctl db check: {exc}", file=sys.stderr)
        return 2
    index, stores = open_storage(settings)
    report = check(index, stores)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print(report.summary())
    return 0 if report.ok else 1
