"""``node-ctl route list|run|history``: a running node's routes (admin API).

``route run NAME --dry-run`` sends nothing: it lists the studies the route would take and
shows one instance's header before and after the route's de-identification, side by side
(``*`` marks a changed value, ``-`` a removed attribute, ``+`` an added one), so an admin
sees what would leave the building before it does.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from node.cli._api_client import AdminClient, add_api_arguments, print_table, run_with_client

#: Longest value shown in the side-by-side header (UIDs are 64 characters).
VALUE_WIDTH = 64


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "route",
        help="list, run (or dry-run) and follow a running node's routes (admin API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="route_command", metavar="ACTION", required=True)

    listing = sub.add_parser("list", help="the routes of the RouteTable")
    listing.add_argument("--json", action="store_true", help="print the JSON answer")
    add_api_arguments(listing)
    listing.set_defaults(func=run_list)

    run = sub.add_parser("run", help="run a route now (its jobs are queued)")
    run.add_argument("name", metavar="NAME")
    run.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: list the studies and show a header before/after",
    )
    run.add_argument("--json", action="store_true", help="print the JSON answer")
    add_api_arguments(run)
    run.set_defaults(func=run_run)

    history = sub.add_parser("history", help="a route's last runs and their studies")
    history.add_argument("name", metavar="NAME")
    history.add_argument("--limit", type=int, default=20, help="at most N runs (default 20)")
    history.add_argument("--studies", action="store_true", help="list each run's studies")
    history.add_argument("--json", action="store_true", help="print the JSON answer")
    add_api_arguments(history)
    history.set_defaults(func=run_history)


def _text(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    text = " ".join(text.split())
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def side_by_side(before: dict[str, Any], after: dict[str, Any]) -> list[list[str]]:
    """Rows ``[mark, keyword, before, after]``: every attribute of either header, in the
    order of ``before`` then the added ones; ``*`` changed, ``-`` removed, ``+`` added."""
    rows = []
    for keyword in [*before, *(k for k in after if k not in before)]:
        if keyword not in after:
            mark = "-"
        elif keyword not in before:
            mark = "+"
        else:
            mark = "*" if before[keyword] != after[keyword] else ""
        rows.append([mark, keyword, _text(before.get(keyword)), _text(after.get(keyword))])
    return rows


def dry_run_lines(result: dict[str, Any]) -> tuple[list[list[str]], list[str]]:
    """The studies table rows and the other lines of a dry run's report."""
    rows = [
        [
            "yes" if s.get("would_send") else "no",
            str(s.get("study_date") or ""),
            str(s.get("patient_id") or ""),
            str(s.get("patient_name") or ""),
            str(s.get("instances", "")),
            str(s.get("study_instance_uid")),
            str(s.get("why") or ""),
        ]
        for s in result.get("studies", [])
    ]
    notes = [
        f"route {result['route']}: {result.get('source', '?')} -> {result.get('destination', '?')}"
        f", {result.get('would_send', 0)} study(ies) would be sent (dry run: nothing sent)"
    ]
    if result.get("skipped_not_listed"):
        notes.append(f"{result['skipped_not_listed']} more study(ies) not sent and not listed")
    return rows, notes


def run_list(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        routes = client.get("/routes")["routes"]
        if args.json:
            print(json.dumps(routes, indent=2))
            return 0
        rows = []
        for r in routes:
            when = [w for w in (r.get("schedule"), r.get("trigger")) if w] or ["manual"]
            last = r.get("last_run") or {}
            rows.append(
                [
                    r["name"],
                    f"{r.get('source')} -> {r.get('destination')}",
                    " + ".join(when),
                    str(r.get("select", "")),
                    " > ".join(step["step"] for step in r.get("steps", [])),
                    f"{last.get('state')} {last.get('started_at')}" if last else "never",
                    str(r.get("next_run") or ""),
                ]
            )
        headers = ["route", "from -> to", "when", "select", "steps", "last run", "next run"]
        print_table(rows, headers)
        return 0

    return run_with_client("route list", args, body)


def run_run(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        result = client.post(f"/routes/{args.name}/run", dry_run=args.dry_run or None)
        if args.json:
            print(json.dumps(result, indent=2))
            return 0
        if not args.dry_run:
            jobs = ", ".join(str(pk) for pk in result.get("jobs", [])) or "none"
            print(
                f"route {args.name}: run {result.get('run')}, "
                f"{result.get('selected', 0)} study(ies) selected, job(s) {jobs}"
            )
            return 0
        rows, notes = dry_run_lines(result)
        print(notes[0])
        if rows:
            print()
            headers = ["send", "date", "patient id", "name", "inst", "study", "why"]
            print_table(rows, headers)
        for note in notes[1:]:
            print(note)
        sample = result.get("sample")
        if sample:
            print()
            print(f"sample instance {sample.get('sop_instance_uid')}:")
            if sample.get("note"):
                print(f"  {sample['note']}")
            if sample.get("error"):
                print(f"  {sample['error']}")
            else:
                table = side_by_side(sample.get("before", {}), sample.get("after", {}))
                print_table(table, ["", "attribute", "before", "after"])
                changed = sum(1 for row in table if row[0])
                print(f"{changed} of {len(table)} attribute(s) changed, removed or added")
        return 0

    return run_with_client("route run", args, body)


def run_history(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        runs = client.get(f"/routes/{args.name}/history", limit=args.limit)["runs"]
        if args.json:
            print(json.dumps(runs, indent=2))
            return 0
        if not runs:
            print(f"route {args.name} has not run yet", file=sys.stderr)
            return 0
        rows = [
            [
                str(r["run"]),
                r["reason"],
                r["state"],
                str(r["started_at"]),
                str(r.get("finished_at") or ""),
                str(r["selected"]),
                str(r["sent"]),
                str(r["failed"]),
                str(r["pending"]),
            ]
            for r in runs
        ]
        headers = ["run", "reason", "state", "started", "finished", "selected", "sent"]
        print_table(rows, [*headers, "failed", "pending"])
        if args.studies:
            for r in runs:
                for s in r.get("studies", []):
                    error = f": {_text(s['error'])}" if s.get("error") else ""
                    print(
                        f"  run {r['run']}: {s['study_instance_uid']} {s['state']} "
                        f"(job {s['job']}){error}"
                    )
        return 0

    return run_with_client("route history", args, body)
