"""``node-ctl user-hash NAME``: a line for the users file (UserIdentityFile)."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "user-hash",
        help="print a UserIdentityFile line (username:scrypt hash) for a user",
        description="Asks for the password (or reads it from stdin with --stdin) and prints "
        "'NAME:scrypt$...' to append to the node's UserIdentityFile.",
    )
    parser.add_argument("name", help="the username peers send in user identity negotiation")
    parser.add_argument("--stdin", action="store_true", help="read the password from stdin")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from node.identity import hash_password

    if ":" in args.name or not args.name.strip():
        print("node-ctl user-hash: a username may not be empty or contain ':'", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass()
    if not password:
        print("node-ctl user-hash: empty password", file=sys.stderr)
        return 2
    print(f"{args.name}:{hash_password(password)}")
    return 0
