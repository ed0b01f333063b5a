"""``forward``: C-STORE the selected instances to a peer AE, optionally de-identified and
transcoded on the way.

Parameters beyond the selection::

    "destination": "PEER_AE"        resolved with Settings.move_destination (AETable, HostTable)
    "calling_aet": "AE" | null      our AE title on the association (default: the selection's)
    "anonymize":   {...} | null     see node.jobs.kinds.pipeline
    "convert":     {...} | null     see node.jobs.kinds.pipeline
    "route", "route_study"          carried unchanged (the route scheduler's bookkeeping)
"""

from __future__ import annotations

import argparse
from typing import Any

from config.model import Settings
from node.jobs.kinds import pipeline
from node.jobs.kinds.base import InvalidJobParams, JobKind, peer_ae


def add_destination_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    parser.add_argument(
        "--destination",
        "-aem",
        "--move",
        dest="destination",
        required=required,
        metavar="AE",
        help="peer AE title (AETable peers, then HostTable)",
    )
    parser.add_argument(
        "-aet", "--aetitle", dest="calling_aet", metavar="AE", help="our calling AE title"
    )


def validate_calling(value: Any) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str) or len(value.strip()) > 16:
        raise InvalidJobParams(f"calling_aet: {value!r} is not an AE title")
    return value.strip()


class Forward(JobKind):
    name = "forward"
    help = "C-STORE instances to a peer AE (optionally anonymized and transcoded)"
    keys = frozenset({"destination", "calling_aet", "anonymize", "convert"})

    def _add_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_destination_arguments(parser, required=True)
        pipeline.add_anonymize_arguments(parser, switch=True)
        pipeline.add_convert_arguments(parser, required=False)

    def _params_from_args(self, ns: argparse.Namespace) -> dict[str, Any]:
        return {
            "destination": ns.destination,
            "calling_aet": ns.calling_aet,
            "anonymize": pipeline.anonymize_from_args(ns, switch=True),
            "convert": pipeline.convert_from_args(ns),
        }

    def _validate(self, params: dict[str, Any], settings: Settings) -> dict[str, Any]:
        return {
            "destination": peer_ae(settings, params.get("destination")),
            "calling_aet": validate_calling(params.get("calling_aet")),
            "anonymize": pipeline.validate_anonymize(params.get("anonymize")),
            "convert": pipeline.validate_convert(params.get("convert")),
        }

    def start(self, ctx: Any, params: dict[str, Any], checkpoint: dict[str, Any] | None) -> Any:
        from node.jobs.work import ForwardWork

        return ForwardWork(ctx, params, checkpoint)


KIND = Forward()
