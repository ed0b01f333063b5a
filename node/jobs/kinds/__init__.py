"""The job kinds and the argument contract every job source uses.

``KINDS`` maps a kind's name to its :class:`JobKind`. Config triggers (``Job = render
--size 256``), ``node-ctl job submit KIND ARGS...`` and the admin API all go through::

    params = parse_job_args("render", ["--size", "256", "--study", uid])   # argv -> dict
    params = KINDS["render"].validate(params, settings)                     # normalised
    pk = submit_job(queue, settings, "render", params, origin="trigger:thumbs")

Every kind accepts the selection ``{"ae", "studies", "series", "instances"}`` (flags
``--ae``, ``--study``, ``--series``, ``--instance``; repeatable; at least one UID).
``docs/jobs.md`` lists each kind's parameters.

Errors::

    InvalidJobParams     bad arguments or parameters (ValueError); the message is for users
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from config.model import Settings
from node.jobs.kinds.anonymize import KIND as _ANONYMIZE
from node.jobs.kinds.base import InvalidJobParams, JobKind, make_parser
from node.jobs.kinds.convert import KIND as _CONVERT
from node.jobs.kinds.delete import KIND as _DELETE
from node.jobs.kinds.export import KIND as _EXPORT
from node.jobs.kinds.forward import KIND as _FORWARD
from node.jobs.kinds.render import KIND as _RENDER

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from storage.jobs import JobQueue

#: Every kind, by name.
KINDS: dict[str, JobKind] = {
    kind.name: kind for kind in (_FORWARD, _ANONYMIZE, _CONVERT, _RENDER, _EXPORT, _DELETE)
}

#: Attempts a job gets by kind (a forward waits out a peer that is down; the others
#: fail the same way every time, so a couple of attempts is enough).
MAX_ATTEMPTS: dict[str, int] = {"forward": 10}
DEFAULT_MAX_ATTEMPTS = 3


def get_kind(kind: str) -> JobKind:
    """The kind called ``kind``; raises :class:`InvalidJobParams` when there is none."""
    try:
        return KINDS[kind]
    except KeyError:
        raise InvalidJobParams(
            f"unknown job kind {kind!r} (one of {', '.join(sorted(KINDS))})"
        ) from None


def parse_job_args(kind: str, argv: list[str]) -> dict[str, Any]:
    """Parameters (JSON-ready, not yet validated) from command-line style arguments."""
    job_kind = get_kind(kind)
    parser = make_parser(kind)
    job_kind.add_arguments(parser)
    ns = parser.parse_args(list(argv))
    return job_kind.params_from_args(ns)


def validate_job(kind: str, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """``params`` checked and normalised for ``kind``; raises :class:`InvalidJobParams`."""
    return get_kind(kind).validate(params, settings)


def submit_job(
    queue: JobQueue,
    settings: Settings,
    kind: str,
    params: dict[str, Any],
    origin: str,
    *,
    delay: float = 0.0,
    max_attempts: int | None = None,
    session: Session | None = None,
) -> int:
    """Validate ``params`` for ``kind`` and queue the job; returns its number.

    ``session``: submit inside the caller's transaction (see ``JobQueue.submit``). The
    daemon's runner is woken at once when the queue is its own (see ``JobRunner``).
    """
    normalised = validate_job(kind, params, settings)
    attempts = max_attempts or MAX_ATTEMPTS.get(kind, DEFAULT_MAX_ATTEMPTS)
    pk = queue.submit(
        kind, normalised, origin=origin, max_attempts=attempts, delay=delay, session=session
    )
    wake = queue.on_submit
    if wake is not None:
        if session is None:
            wake()
        else:  # the job exists for the runner once the caller's transaction commits
            from sqlalchemy import event

            event.listen(session, "after_commit", lambda _s: wake(), once=True)
    return pk


__all__ = [
    "DEFAULT_MAX_ATTEMPTS",
    "KINDS",
    "MAX_ATTEMPTS",
    "InvalidJobParams",
    "JobKind",
    "get_kind",
    "parse_job_args",
    "submit_job",
    "validate_job",
]
