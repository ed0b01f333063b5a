"""What every job kind shares: the argument contract and the selection of instances.

A kind turns command-line style arguments (``render --size 256 --study 1.2.3``, as written
in a config trigger or given to ``node-ctl job submit``) into JSON-ready parameters, checks
them against the settings, and later runs them::

    parser -> add_arguments(parser)          flags in the DCMTK/GDCM style
    ns     -> params_from_args(ns) -> dict   JSON-ready, nothing resolved yet
    dict   -> validate(params, settings)     normalised dict, or InvalidJobParams
    dict   -> start(ctx, params, checkpoint) -> Work  (the runner's side, node/jobs/runner.py)

Every kind takes the same selection: ``{"ae": AETable title (default: the first),
"studies": [...], "series": [...], "instances": [...]}`` (flags ``--ae``, ``--study``,
``--series``, ``--instance``, repeatable; the lists are combined with AND, as
``Index.instances`` does, and at least one UID is required).

Errors::

    InvalidJobParams     the arguments or parameters are wrong (message says which)
"""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any, NoReturn

from config.model import Settings

if TYPE_CHECKING:
    from node.jobs.work import JobContext, Work

#: What a UID we accept in parameters looks like (loose: stored UIDs may break the rules,
#: but never contain separators or exceed 64 characters).
_UID = re.compile(r"^[0-9A-Za-z.\-_]{1,64}$")


class InvalidJobParams(ValueError):
    """A job's arguments or parameters are wrong; the message is for the user."""


class _Parser(argparse.ArgumentParser):
    """An argparse parser that raises instead of printing and exiting."""

    def error(self, message: str) -> NoReturn:
        raise InvalidJobParams(f"{self.prog}: {message}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        raise InvalidJobParams(message.strip() if message else f"{self.prog}: exit {status}")


def make_parser(kind: str) -> argparse.ArgumentParser:
    """A parser for ``kind``'s arguments that raises :class:`InvalidJobParams` on errors."""
    return _Parser(prog=kind, add_help=False, allow_abbrev=False, prefix_chars="-+")


# --------------------------------------------------------------------------- selection


def add_selection_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (combined with AND)")
    group.add_argument("--ae", help="AE title whose records to use (default: the first)")
    group.add_argument(
        "--study", dest="studies", action="append", default=[], metavar="UID", help="repeatable"
    )
    group.add_argument(
        "--series", dest="series", action="append", default=[], metavar="UID", help="repeatable"
    )
    group.add_argument(
        "--instance",
        "--image",
        dest="instances",
        action="append",
        default=[],
        metavar="UID",
        help="SOP Instance UID (repeatable)",
    )


def selection_from_args(ns: argparse.Namespace) -> dict[str, Any]:
    return {
        "ae": ns.ae,
        "studies": list(ns.studies),
        "series": list(ns.series),
        "instances": list(ns.instances),
    }


def _uid_list(params: dict[str, Any], key: str) -> list[str]:
    value = params.get(key) or []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise InvalidJobParams(f"{key}: expected a list of UIDs")
    out: list[str] = []
    for uid in value:
        if not isinstance(uid, str) or not _UID.match(uid.strip()):
            raise InvalidJobParams(f"{key}: {uid!r} is not a UID")
        if uid.strip() not in out:
            out.append(uid.strip())
    return out


def validate_selection(params: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The selection part of ``params``, normalised (AE resolved, UID lists deduplicated)."""
    if not settings.ae_table:
        raise InvalidJobParams("the configuration has no AETable entry")
    ae = params.get("ae")
    if ae in (None, ""):
        ae = settings.ae_table[0].title
    if not isinstance(ae, str) or settings.ae(ae) is None:
        raise InvalidJobParams(f"ae: {ae!r} is not an AE title of the AETable")
    out = {
        "ae": ae.strip(),
        "studies": _uid_list(params, "studies"),
        "series": _uid_list(params, "series"),
        "instances": _uid_list(params, "instances"),
    }
    if not (out["studies"] or out["series"] or out["instances"]):
        raise InvalidJobParams("select at least one --study, --series or --instance")
    return out


def check_known(params: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(params) - known - {"ae", "studies", "series", "instances"})
    if unknown:
        raise InvalidJobParams(f"unknown parameter(s): {', '.join(unknown)}")


def storage_ae(settings: Settings, title: Any, what: str) -> str:
    """An AETable title that can be written to (for copies into another AE)."""
    if not isinstance(title, str) or settings.ae(title) is None:
        raise InvalidJobParams(f"{what}: {title!r} is not an AE title of the AETable")
    return title.strip()


def peer_ae(settings: Settings, title: Any, what: str = "destination") -> str:
    """A peer AE title that ``Settings.move_destination`` resolves (AETable, HostTable)."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidJobParams(f"{what}: an AE title is required")
    if settings.move_destination(title.strip()) is None:
        raise InvalidJobParams(
            f"{what}: {title!r} is not in the AETable peers nor in the HostTable"
        )
    return title.strip()


# --------------------------------------------------------------------------- the kind


class JobKind:
    """One kind of job: its arguments, its parameters and how it runs.

    Subclasses set ``name`` and ``help``, and override ``_add_arguments``,
    ``_params_from_args``, ``_validate`` (their own parameters only; the selection is
    handled here) and ``start``.
    """

    name: str = ""
    help: str = ""
    #: Keys of ``params`` beyond the selection that this kind knows.
    keys: frozenset[str] = frozenset()
    #: Carried unchanged (e.g. ``route``, ``route_study`` from the route scheduler).
    carried: frozenset[str] = frozenset({"route", "route_study", "trigger"})

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the selection flags and this kind's own flags to ``parser``."""
        add_selection_arguments(parser)
        self._add_arguments(parser)

    def params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        """JSON-ready parameters from parsed arguments (not yet validated)."""
        params = selection_from_args(ns)
        params.update(self._params_from_args(ns))
        return params

    def validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        """Normalised parameters; raises :class:`InvalidJobParams`."""
        if not isinstance(params, dict):
            raise InvalidJobParams("parameters must be a JSON object")
        check_known(params, set(self.keys) | set(self.carried))
        out = validate_selection(params, settings)
        out.update(self._validate(params, settings))
        for key in self.carried:
            if key in params:
                out[key] = params[key]
        return out

    # -- for subclasses ----------------------------------------------------------------

    def _add_arguments(self, parser: argparse.ArgumentParser) -> None:
        pass

    def _params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {}

    def _validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        return {}

    def start(
        self, ctx: JobContext, params: dict[str, Any], checkpoint: dict[str, Any] | None
    ) -> Work:
        """The job's work, resumed from ``checkpoint`` (None on a first run)."""
        raise NotImplementedError


__all__ = [
    "InvalidJobParams",
    "JobKind",
    "add_selection_arguments",
    "make_parser",
    "peer_ae",
    "selection_from_args",
    "storage_ae",
    "validate_selection",
]
