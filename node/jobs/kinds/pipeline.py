"""Per-instance pipeline steps shared by kinds: de-identify and transcode.

Parameters (both optional parts of a kind's params)::

    "anonymize": {"options": {"retain_uids": false, ...},   # PS3.15 Table E.1-1 options
                  "safe_private": ["gggg,xxee,CREATOR", ...],
                  "allow_burned_in": false, "pseudonyms": true,
                  "secret": "...", "secret_file": "/path" | null, "root_uid": null}
    "convert":   {"transfer_syntax": "1.2.840..." | null, "family": "j2k" | null,
                  "lossy": false, "quality": [..] | null, "rate": [..] | null,
                  "allowed_error": null}

The secret keys every replacement (UIDs, pseudonyms, date shifts): the same secret gives
the same new UID for the same original in every job and every run. A job submitted without
``secret`` and ``secret_file`` gets a random secret at validation (consistent within the
job and its retries only); routes pass their own.

The flags are those of ``node-ctl anonymize`` and ``node-ctl convert`` (gdcmanon, gdcmconv).
"""

from __future__ import annotations

import argparse
import secrets
from pathlib import Path
from typing import Any

from node.jobs.kinds.base import InvalidJobParams

#: PS3.15 Table E.1-1 options: flag -> Options field (as ``node-ctl anonymize``).
ANONYMIZE_OPTIONS = (
    ("--retain-safe-private", "retain_safe_private"),
    ("--retain-uids", "retain_uids"),
    ("--retain-device-identity", "retain_device_identity"),
    ("--retain-institution-identity", "retain_institution_identity"),
    ("--retain-patient-characteristics", "retain_patient_characteristics"),
    ("--retain-full-dates", "retain_full_dates"),
    ("--retain-modified-dates", "retain_modified_dates"),
    ("--clean-descriptors", "clean_descriptors"),
    ("--clean-structured-content", "clean_structured_content"),
    ("--clean-graphics", "clean_graphics"),
)
_OPTION_NAMES = frozenset(name for _, name in ANONYMIZE_OPTIONS)

#: ``node-ctl convert``'s syntax families: short flag, long flag, family.
CONVERT_FAMILIES = (
    ("-X", "--explicit", "explicit"),
    ("-M", "--implicit", "implicit"),
    ("-d", "--deflated", "deflated"),
    ("-w", "--raw", "raw"),
    ("-R", "--rle", "rle"),
    ("-J", "--jpeg", "jpeg"),
    ("-L", "--jpegls", "jpegls"),
    ("-K", "--j2k", "j2k"),
)
_FAMILIES = frozenset(f for _, _, f in CONVERT_FAMILIES)


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected numbers separated by commas: {text!r}"
        ) from None


# --------------------------------------------------------------------------- anonymize


def add_anonymize_arguments(parser: argparse.ArgumentParser, *, switch: bool) -> None:
    """The de-identification flags; with ``switch``, ``--anonymize`` turns the step on."""
    group = parser.add_argument_group("de-identification (as node-ctl anonymize)")
    if switch:
        group.add_argument(
            "--anonymize", action="store_true", help="de-identify each instance before sending"
        )
    for flag, name in ANONYMIZE_OPTIONS:
        group.add_argument(flag, dest=f"anon_{name}", action="store_true")
    group.add_argument("--safe-private", action="append", default=[], metavar="gggg,xxee,CREATOR")
    group.add_argument("--allow-burned-in", action="store_true")
    group.add_argument("--no-pseudonyms", action="store_true")
    group.add_argument("--secret", help="secret keying UIDs, pseudonyms and date shifts")
    group.add_argument("--secret-file", help="file holding the secret (read when the job runs)")
    group.add_argument("--root-uid", help="root of new UIDs (default 2.25.)")


def anonymize_from_args(ns: argparse.Namespace, *, switch: bool) -> dict[str, Any] | None:
    options = {name: True for _, name in ANONYMIZE_OPTIONS if getattr(ns, f"anon_{name}")}
    extra = bool(
        options
        or ns.safe_private
        or ns.allow_burned_in
        or ns.no_pseudonyms
        or ns.secret
        or ns.secret_file
        or ns.root_uid
    )
    if switch and not ns.anonymize:
        if extra:
            raise InvalidJobParams("de-identification options need --anonymize")
        return None
    return {
        "options": options,
        "safe_private": list(ns.safe_private),
        "allow_burned_in": bool(ns.allow_burned_in),
        "pseudonyms": not ns.no_pseudonyms,
        "secret": ns.secret,
        "secret_file": ns.secret_file,
        "root_uid": ns.root_uid,
    }


def validate_anonymize(value: Any) -> dict[str, Any] | None:
    """Normalised anonymize step (a secret is drawn when none is given), or None."""
    if value in (None, False):
        return None
    if value is True:
        value = {}
    if not isinstance(value, dict):
        raise InvalidJobParams("anonymize: expected an object")
    unknown = set(value) - {
        "options",
        "safe_private",
        "allow_burned_in",
        "pseudonyms",
        "secret",
        "secret_file",
        "root_uid",
    }
    if unknown:
        raise InvalidJobParams(f"anonymize: unknown key(s) {', '.join(sorted(unknown))}")
    options = value.get("options") or {}
    if not isinstance(options, dict) or set(options) - _OPTION_NAMES:
        raise InvalidJobParams(
            f"anonymize.options: known options are {', '.join(sorted(_OPTION_NAMES))}"
        )
    out: dict[str, Any] = {
        "options": {k: bool(v) for k, v in sorted(options.items()) if v},
        "safe_private": [str(s) for s in value.get("safe_private") or []],
        "allow_burned_in": bool(value.get("allow_burned_in", False)),
        "pseudonyms": bool(value.get("pseudonyms", True)),
        "secret": value.get("secret") or None,
        "secret_file": value.get("secret_file") or None,
        "root_uid": value.get("root_uid") or None,
    }
    if out["options"].get("clean_graphics"):
        raise InvalidJobParams("anonymize: the Clean Graphics Option cannot be done safely")
    if out["secret_file"] is not None:
        path = Path(str(out["secret_file"]))
        if not path.is_file():
            raise InvalidJobParams(f"anonymize.secret_file: {path}: no such file")
        out["secret_file"] = str(path.resolve())
    elif out["secret"] is None:
        out["secret"] = secrets.token_hex(16)
    # Build the engine once here so that bad options fail at submission, not when run.
    from node.tools.anonymize import AnonymizeError

    try:
        build_deidentifier(out)
    except AnonymizeError as exc:
        raise InvalidJobParams(f"anonymize: {exc}") from None
    return out


def anonymize_secret(step: dict[str, Any]) -> bytes:
    if step.get("secret_file"):
        data = Path(step["secret_file"]).read_bytes().strip()
        if not data:
            raise InvalidJobParams(f"anonymize.secret_file {step['secret_file']} is empty")
        return data
    return str(step["secret"]).encode("utf-8")


def build_deidentifier(step: dict[str, Any]) -> Any:
    """The ``Deidentifier`` an anonymize step describes (for the worker processes)."""
    from node.tools.anonymize import Deidentifier, Options, PrivateTag

    options = Options(
        safe_private=frozenset(PrivateTag.parse(t) for t in step.get("safe_private") or []),
        allow_burned_in=bool(step.get("allow_burned_in")),
        pseudonymize_patient=bool(step.get("pseudonyms", True)),
        **{k: True for k, v in (step.get("options") or {}).items() if v},
    )
    return Deidentifier(options, secret=anonymize_secret(step), root_uid=step.get("root_uid"))


# --------------------------------------------------------------------------- convert


def add_convert_arguments(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_argument_group("transcoding (as node-ctl convert)")
    choice = group.add_mutually_exclusive_group(required=required)
    for short, long, family in CONVERT_FAMILIES:
        choice.add_argument(short, long, dest="family", action="store_const", const=family)
    choice.add_argument("--transfer-syntax", metavar="UID", help="a transfer syntax UID")
    group.add_argument("-Y", "--lossy", action="store_true", help="the lossy variant")
    group.add_argument("-q", "--quality", type=_floats, metavar="Q")
    group.add_argument("-e", "--allowed-error", type=int, metavar="N")
    group.add_argument("--rate", type=_floats, metavar="R")


def convert_from_args(ns: argparse.Namespace) -> dict[str, Any] | None:
    if ns.family is None and ns.transfer_syntax is None:
        if ns.lossy or ns.quality or ns.rate or ns.allowed_error is not None:
            raise InvalidJobParams("-Y/-q/-e/--rate need a transfer syntax flag")
        return None
    return {
        "family": ns.family,
        "transfer_syntax": ns.transfer_syntax,
        "lossy": bool(ns.lossy),
        "quality": ns.quality,
        "rate": ns.rate,
        "allowed_error": ns.allowed_error,
    }


def validate_convert(value: Any) -> dict[str, Any] | None:
    if value in (None, False):
        return None
    if isinstance(value, str):
        value = {"family": value} if value in _FAMILIES else {"transfer_syntax": value}
    if not isinstance(value, dict):
        raise InvalidJobParams("convert: expected an object")
    unknown = set(value) - {
        "family",
        "transfer_syntax",
        "lossy",
        "quality",
        "rate",
        "allowed_error",
    }
    if unknown:
        raise InvalidJobParams(f"convert: unknown key(s) {', '.join(sorted(unknown))}")
    family = value.get("family") or None
    syntax = value.get("transfer_syntax") or None
    if (family is None) == (syntax is None):
        raise InvalidJobParams("convert: give exactly one of family and transfer_syntax")
    if family is not None and family not in _FAMILIES:
        raise InvalidJobParams(f"convert: family {family!r} is not one of {sorted(_FAMILIES)}")
    if syntax is not None:
        from node.tools.convert import TARGETS

        if syntax not in TARGETS:
            raise InvalidJobParams(f"convert: cannot write transfer syntax {syntax}")
    quality = value.get("quality")
    if isinstance(quality, (int, float)):
        quality = [float(quality)]
    rate = value.get("rate")
    if isinstance(rate, (int, float)):
        rate = [float(rate)]
    return {
        "family": family,
        "transfer_syntax": syntax,
        "lossy": bool(value.get("lossy", False)),
        "quality": [float(q) for q in quality] if quality else None,
        "rate": [float(r) for r in rate] if rate else None,
        "allowed_error": value.get("allowed_error"),
    }


def transcode_options(step: dict[str, Any]) -> Any:
    """``TranscodeOptions`` for a convert step (mirrors ``node-ctl convert``)."""
    from node.tools.convert import TranscodeOptions

    quality = step.get("quality")
    family = step.get("family")
    kwargs: dict[str, Any] = {}
    if quality:
        if family == "j2k":
            kwargs["psnr"] = tuple(quality)
        else:
            kwargs["quality"] = int(quality[0])
    if step.get("rate"):
        kwargs["rate"] = tuple(step["rate"])
    if step.get("allowed_error") is not None:
        kwargs["allowed_error"] = int(step["allowed_error"])
    return TranscodeOptions(**kwargs)
