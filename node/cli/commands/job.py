"""``node-ctl job submit|list|show|cancel|retry|wait``: a running node's jobs (admin API).

``submit KIND`` takes the kind's own flags (``node-ctl job submit render --help``), which
are those of triggers in the config: ``node-ctl job submit render --study UID --size 256``.
``--wait`` (or ``job wait N``) follows the job with a progress bar on a terminal and exits
0 when it succeeded, 1 when it failed or was cancelled, 124 when ``--timeout`` ran out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from node.cli._api_client import AdminClient, add_api_arguments, print_table, run_with_client
from node.cli.commands._progress import ProgressBar, add_progress_args

#: Exit code of ``wait`` when ``--timeout`` runs out (as coreutils' ``timeout``).
TIMEOUT_EXIT = 124
_FINAL = ("succeeded", "failed", "cancelled")


def register(subparsers: Any) -> None:
    from node.jobs.kinds import KINDS

    parser = subparsers.add_parser(
        "job",
        help="submit, list, show, cancel and wait for a running node's jobs (admin API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="job_command", metavar="ACTION", required=True)

    submit = sub.add_parser("submit", help="submit a job: node-ctl job submit KIND [flags]")
    kinds = submit.add_subparsers(dest="kind", metavar="KIND", required=True)
    for name, kind in sorted(KINDS.items()):
        p = kinds.add_parser(
            name, help=kind.help, description=kind.help, prefix_chars="-+", allow_abbrev=False
        )
        kind.add_arguments(p)
        _add_wait_arguments(p, "--wait")
        add_api_arguments(p)
        p.set_defaults(func=run_submit, job_kind=kind)

    listing = sub.add_parser("list", help="jobs, newest first")
    listing.add_argument("--state", action="append", default=[], help="repeatable")
    listing.add_argument("--kind", action="append", default=[], help="repeatable")
    listing.add_argument("--origin", help="origin prefix: api, cli, route:NAME, trigger:NAME")
    listing.add_argument("--limit", type=int, default=50, help="at most N jobs (default 50)")
    listing.add_argument("--offset", type=int, default=0)
    listing.add_argument("--json", action="store_true", help="print the JSON answer")
    add_api_arguments(listing)
    listing.set_defaults(func=run_list)

    show = sub.add_parser("show", help="one job in full")
    show.add_argument("pk", type=int, metavar="JOB")
    show.add_argument("--json", action="store_true", help="print the JSON answer")
    add_api_arguments(show)
    show.set_defaults(func=run_show)

    for action, text in (
        ("cancel", "cancel a job (a running one stops at its next step)"),
        ("retry", "queue a failed or cancelled job again"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument("pk", type=int, metavar="JOB")
        add_api_arguments(p)
        p.set_defaults(func=run_action, action=action)

    wait = sub.add_parser("wait", help="wait for a job to finish, with a progress bar")
    wait.add_argument("pk", type=int, metavar="JOB")
    _add_wait_arguments(wait, None)
    add_api_arguments(wait)
    wait.set_defaults(func=run_wait)


def _add_wait_arguments(parser: argparse.ArgumentParser, flag: str | None) -> None:
    group = parser.add_argument_group("waiting")
    if flag is not None:
        group.add_argument(flag, action="store_true", help="wait for the job to finish")
    group.add_argument(
        "--timeout", type=float, metavar="S", help=f"give up after S seconds (exit {TIMEOUT_EXIT})"
    )
    group.add_argument(
        "--interval", type=float, default=0.5, metavar="S", help="poll every S seconds (0.5)"
    )
    add_progress_args(group)  # type: ignore[arg-type]


def _progress(job: dict[str, Any]) -> str:
    done, total = job["progress_done"], job["progress_total"]
    return f"{done}/{total}" if total else str(done) if done else ""


def _one_line(text: str | None, width: int = 60) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= width else text[: width - 3] + "..."


def run_submit(args: argparse.Namespace) -> int:
    params = args.job_kind.params_from_args(args)

    def body(client: AdminClient) -> int:
        job = client.post("/jobs", {"kind": args.kind, "params": params})
        print(f"job {job['pk']} queued ({job['kind']})")
        if args.wait:
            return wait_for(client, job["pk"], args)
        return 0

    return run_with_client("job submit", args, body)


def run_list(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        page = client.get(
            "/jobs",
            state=args.state,
            kind=args.kind,
            origin=args.origin,
            limit=args.limit,
            offset=args.offset,
        )
        if args.json:
            print(json.dumps(page, indent=2))
            return 0
        rows = [
            [
                str(j["pk"]),
                j["kind"],
                j["state"]
                + (" (cancelling)" if j["cancel_requested"] and not j["finished_at"] else ""),
                _progress(j),
                f"{j['attempts']}/{j['max_attempts']}",
                j["origin"],
                j["created_at"],
                _one_line(j["error"]),
            ]
            for j in page["items"]
        ]
        headers = ["job", "kind", "state", "progress", "tries", "origin", "created", "error"]
        print_table(rows, headers)
        if page["more"]:
            print(f"more: --offset {args.offset + len(page['items'])}", file=sys.stderr)
        return 0

    return run_with_client("job list", args, body)


def show_lines(job: dict[str, Any]) -> list[str]:
    """The readable lines of one job."""
    lines = [f"job {job['pk']}: {job['kind']}, {job['state']}"]
    for key in ("origin", "attempts", "created_at", "started_at", "finished_at"):
        value = job[key]
        if key == "attempts":
            value = f"{job['attempts']} of {job['max_attempts']}"
        if value not in (None, ""):
            lines.append(f"  {key}: {value}")
    if job["progress_total"] or job["progress_done"]:
        lines.append(f"  progress: {_progress(job)}")
    if job["cancel_requested"] and job["state"] == "running":
        lines.append("  cancel requested: stops at its next step")
    if job["error"]:
        lines.append(f"  error: {job['error']}")
    lines.append("  params: " + json.dumps(job["params"], sort_keys=True))
    if job["result"]:
        lines.append("  result: " + json.dumps(job["result"], sort_keys=True))
    return lines


def run_show(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        job = client.get(f"/jobs/{args.pk}")
        print(json.dumps(job, indent=2) if args.json else "\n".join(show_lines(job)))
        return 0

    return run_with_client("job show", args, body)


def run_action(args: argparse.Namespace) -> int:
    def body(client: AdminClient) -> int:
        job = client.post(f"/jobs/{args.pk}/{args.action}")
        if job["state"] == "running" and job["cancel_requested"]:
            print(f"job {job['pk']}: cancel requested, it stops at its next step")
        else:
            print(f"job {job['pk']}: {job['state']}")
        return 0

    return run_with_client(f"job {args.action}", args, body)


def wait_for(client: AdminClient, pk: int, args: argparse.Namespace) -> int:
    """Poll job ``pk`` until it is final, drawing progress; returns the exit code."""
    bar = ProgressBar(f"job {pk}", enabled=ProgressBar.wanted(args.progress))
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    try:
        while True:
            job = client.get(f"/jobs/{pk}")
            bar.label = f"job {pk} ({job['kind']})"
            bar.update(job["progress_done"], job["progress_total"])
            if job["state"] in _FINAL:
                break
            if deadline is not None and time.monotonic() >= deadline:
                bar.close()
                print(
                    f"node-ctl job wait: job {pk} still {job['state']} after {args.timeout:g} s",
                    file=sys.stderr,
                )
                return TIMEOUT_EXIT
            time.sleep(max(0.05, args.interval))
    finally:
        bar.close()
    if job["state"] == "succeeded":
        result = json.dumps(job["result"], sort_keys=True) if job["result"] else ""
        print(f"job {pk} succeeded" + (f": {result}" if result else ""))
        return 0
    print(
        f"node-ctl job wait: job {pk} {job['state']}: {job['error'] or ''}".rstrip(": "),
        file=sys.stderr,
    )
    return 1


def run_wait(args: argparse.Namespace) -> int:
    return run_with_client("job wait", args, lambda client: wait_for(client, args.pk, args))
