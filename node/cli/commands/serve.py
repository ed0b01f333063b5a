"""``node-ctl serve``: run the node in the foreground until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the DICOM node (C-ECHO/STORE/FIND/MOVE/GET SCP)",
        description="Run the node: load the config, upgrade the index, serve until SIGTERM.",
    )
    parser.add_argument(
        "-c", "--config", type=Path, help="dcmqrscp.cfg-style config file (or NODE_CONFIG)"
    )
    parser.add_argument("--port", type=int, help="override NetworkTCPPort")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from config import ConfigError, load
    from node.daemon import run as run_daemon

    try:
        settings = load(args.config)
    except (ConfigError, OSError) as exc:
        print(f"node-ctl serve: {exc}", file=sys.stderr)
        return 2
    if args.port is not None:
        settings = settings.model_copy(update={"network_tcp_port": args.port})
    try:
        return run_daemon(settings)
    except ConfigError as exc:  # triggers and routes are checked against the index at start
        print(f"node-ctl serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a port is taken: the message names which
        print(f"node-ctl serve: {exc.strerror or exc}", file=sys.stderr)
        return 1
