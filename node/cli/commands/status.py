"""``node-ctl status``: a running node's version, uptime, holdings, jobs and activity.

Asks the node's admin API (``GET /status``); ``--json`` prints the answer as it came.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from node.cli._api_client import AdminClient, add_api_arguments, run_with_client


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status",
        help="a running node's status (admin API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_api_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the JSON answer")
    parser.set_defaults(func=run)


def duration(seconds: float) -> str:
    """``3d 4h 05m``, ``2h 03m 04s``, ``5m 06s``, ``7s``."""
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h {minutes:02d}m"
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def _counts(c: dict[str, Any]) -> str:
    return (
        f"{c['patients']} patient(s), {c['studies']} study(ies), "
        f"{c['series']} series, {c['instances']} instance(s)"
    )


def summary(status: dict[str, Any]) -> list[str]:
    """The readable lines of a ``/status`` answer."""
    lines = [
        f"dicom-node {status['version']}, up {duration(status['uptime_seconds'])} "
        f"(since {status['started_at']})",
        f"DICOM port {status['dicom_port']}, {status['associations']} association(s) in progress",
    ]
    for ae in status["ae_titles"]:
        lines.append(f"  {ae['title']} ({ae['access']}): {_counts(ae)}")
    jobs = status["jobs"]
    lines.append("jobs: " + ", ".join(f"{n} {state}" for state, n in jobs.items()))
    events = status["events"]
    if events:
        lines.append("events: " + ", ".join(f"{kind} {n}" for kind, n in sorted(events.items())))
    return lines


def run(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        status = client.get("/status")
        if args.json:
            print(json.dumps(status, indent=2))
        else:
            print("\n".join(summary(status)))
        return 0

    return run_with_client("status", args, body)
