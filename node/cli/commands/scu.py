"""``node-ctl echo|store|find|move|get HOST [PORT]``: SCU operations against any DICOM node.

Flags follow what users of gdcmscu, findscu, movescu and getscu already type: ``-aet``
(calling AE, default ``NODECTL``), ``-aec`` (called AE), ``-k`` keys in every form, ``-P``
/``-S`` for the information model, ``--patient|--study|--series|--image`` for the level,
``--port-scp N -o DIR`` to receive a C-MOVE ourselves or ``-aem AE`` to send it elsewhere.
Output is a table (or ``--json``) on stdout; progress and warnings go to stderr; errors are
one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import ssl
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from node import scu
from node.cli.commands._progress import ProgressBar, add_progress_args

#: Exit codes: 0 success, 1 the operation failed (or some instances did), 2 bad usage.
EXIT_FAILED = 1
EXIT_USAGE = 2

_LEVEL_FLAGS = {"patient": "PATIENT", "study": "STUDY", "series": "SERIES", "image": "IMAGE"}
#: Keys a table of C-FIND responses never shows as columns.
_HIDDEN_KEYS = {0x00080052, 0x00080005}


class UsageError(Exception):
    """A command line that cannot be run (exit 2)."""


class _IntermixedParser(argparse.ArgumentParser):
    """Options anywhere among HOST PORT FILE..., as DCMTK and GDCM tools accept them.

    ``node.cli.main`` calls ``parse_args``; a sub-parser only sees ``parse_known_args``,
    so this routes it through ``parse_known_intermixed_args`` (which calls back into
    ``parse_known_args`` itself, hence the guard).
    """

    _busy = False

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._busy:
            return super().parse_known_args(args, namespace)
        self._busy = True
        try:
            return self.parse_known_intermixed_args(args, namespace)
        finally:
            self._busy = False


def _intermixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.__class__ = _IntermixedParser
    return parser


# --------------------------------------------------------------------------- parsers


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    _add_connection_args(common)

    p = subparsers.add_parser(
        "echo",
        parents=[common],
        help="C-ECHO a DICOM node (like echoscu / gdcmscu --echo)",
        description="Verify a DICOM node answers: C-ECHO HOST [PORT] (port 104 by default).",
    )
    _intermixed(p)
    p.add_argument("host", metavar="HOST")
    p.add_argument("port", metavar="PORT", nargs="?", type=int, default=104)
    p.set_defaults(func=run_echo)

    p = subparsers.add_parser(
        "store",
        parents=[common],
        help="C-STORE files or directories (like storescu / gdcmscu --store)",
        description="Send files over as few associations as possible. Every SOP class a "
        "file carries is proposed (private and unknown ones included), with the file's own "
        "transfer syntax plus the uncompressed ones; a file is decompressed, with a "
        "warning, when the peer accepts only uncompressed data.",
    )
    _intermixed(p)
    p.add_argument("positional", metavar="HOST [PORT] FILE", nargs="+")
    p.add_argument("-r", "--recursive", action="store_true", help="recurse into sub-directories")
    add_progress_args(p)
    p.set_defaults(func=run_store)

    query = argparse.ArgumentParser(add_help=False)
    _add_query_args(query)

    p = subparsers.add_parser(
        "find",
        parents=[common, query],
        help="C-FIND query (like findscu / gdcmscu --find)",
        description="Query HOST [PORT] [QUERYFILE...]: keys from -k and/or query files "
        "(made by hand, by dump2dcm/node-ctl undump, or by --store-query).",
    )
    _intermixed(p)
    p.add_argument("positional", metavar="HOST [PORT] [QUERYFILE]", nargs="+")
    p.set_defaults(func=run_find)

    p = subparsers.add_parser(
        "move",
        parents=[common, query],
        help="C-MOVE (like movescu / gdcmscu --move)",
        description="Ask HOST to send what matches to a destination: to ourselves with "
        "--port-scp N -o DIR (a built-in storage SCP receives), or to another node with "
        "-aem AE. The remote must know the destination AE title, host and port.",
    )
    _intermixed(p)
    p.add_argument("positional", metavar="HOST [PORT] [QUERYFILE]", nargs="+")
    p.add_argument("-aem", "--move", dest="move_dest", metavar="AE", help="move destination")
    p.add_argument("--port-scp", type=int, metavar="N", help="receive on this port (built-in SCP)")
    p.add_argument(
        "--bind-scp",
        default="",
        metavar="ADDR",
        help="address the built-in SCP listens on (default: all interfaces)",
    )
    p.add_argument(
        "-o", "--output", type=Path, default=Path("."), metavar="DIR", help="where to write"
    )
    add_progress_args(p)
    p.set_defaults(func=run_move)

    p = subparsers.add_parser(
        "get",
        parents=[common, query],
        help="C-GET into a directory (like getscu / gdcmscu --get)",
        description="Retrieve what matches over the same association (SCP/SCU role "
        "selection for the storage SOP classes) and write it into -o DIR.",
    )
    _intermixed(p)
    p.add_argument("positional", metavar="HOST [PORT] [QUERYFILE]", nargs="+")
    p.add_argument(
        "-o", "--output", type=Path, default=Path("."), metavar="DIR", help="where to write"
    )
    p.add_argument(
        "--sop-class",
        action="append",
        default=[],
        metavar="UID",
        help="storage SOP class to accept (repeatable; default: the 120 common ones)",
    )
    add_progress_args(p)
    p.set_defaults(func=run_get)


def _add_connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("association")
    g.add_argument("-aet", "--aetitle", default="NODECTL", help="calling AE title (NODECTL)")
    g.add_argument("-aec", "--call", default="ANY-SCP", help="called AE title (ANY-SCP)")
    g.add_argument(
        "-to", "--timeout", type=float, default=30.0, metavar="S", help="connect timeout (30)"
    )
    g.add_argument(
        "-ta", "--acse-timeout", type=float, default=30.0, metavar="S", help="ACSE timeout (30)"
    )
    g.add_argument(
        "-td",
        "--dimse-timeout",
        type=float,
        default=None,
        metavar="S",
        help="DIMSE timeout (none: wait for ever)",
    )
    g.add_argument(
        "-pdu", "--max-pdu", type=int, default=16384, metavar="N", help="max PDU size (16384)"
    )
    t = p.add_argument_group("TLS")
    t.add_argument("--tls", action="store_true", help="use a TLS connection")
    t.add_argument("--tls-ca", metavar="FILE", help="trusted CA certificate(s), PEM")
    t.add_argument("--tls-cert", metavar="FILE", help="our certificate, PEM")
    t.add_argument("--tls-key", metavar="FILE", help="our private key, PEM")
    t.add_argument(
        "--tls-no-verify", action="store_true", help="do not verify the peer's certificate"
    )
    t.add_argument("--tls-server-name", metavar="NAME", help="name the certificate must carry")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _add_query_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("query")
    g.add_argument(
        "-k",
        "--key",
        action="append",
        default=[],
        metavar="KEY[=VALUE]",
        help="0010,0010=DOE* | 10,10=A* | PatientName=DOE* | PatientName (ask it back)",
    )
    model = g.add_mutually_exclusive_group()
    model.add_argument(
        "-P",
        "--patientroot",
        dest="model",
        action="store_const",
        const="patient",
        help="Patient Root information model",
    )
    model.add_argument(
        "-S",
        "--studyroot",
        dest="model",
        action="store_const",
        const="study",
        help="Study Root information model (default)",
    )
    level = g.add_mutually_exclusive_group()
    for name in _LEVEL_FLAGS:
        level.add_argument(
            f"--{name}",
            dest="level",
            action="store_const",
            const=_LEVEL_FLAGS[name],
            help=f"query/retrieve level {_LEVEL_FLAGS[name]}",
        )
    g.add_argument("--store-query", type=Path, metavar="FILE", help="write the query dataset")


# --------------------------------------------------------------------------- plumbing


def _quiet_libraries(args: argparse.Namespace) -> None:
    """pynetdicom logs every failure at ERROR: keep stderr to our one line unless -v."""
    if getattr(args, "verbose", 0) < 1:
        for name in ("pynetdicom", "node.scu"):
            log = logging.getLogger(name)
            log.propagate = False
            if not log.handlers:  # else logging's last-resort handler prints anyway
                log.addHandler(logging.NullHandler())


def _split_positional(values: Sequence[str]) -> tuple[str, int, list[str]]:
    host = values[0]
    rest = list(values[1:])
    port = 104
    if rest and rest[0].isdigit() and not Path(rest[0]).exists():
        port = int(rest.pop(0))
    if not 0 < port < 65536:
        raise UsageError(f"bad port {port}")
    return host, port, rest


def _ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    if not args.tls:
        if args.tls_ca or args.tls_cert or args.tls_key or args.tls_no_verify:
            raise UsageError("TLS options need --tls")
        return None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.tls_ca)
        if args.tls_no_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if args.tls_cert:
            context.load_cert_chain(args.tls_cert, args.tls_key)
        elif args.tls_key:
            raise UsageError("--tls-key needs --tls-cert")
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot set up TLS: {exc}") from exc
    return context


def _peer(args: argparse.Namespace, host: str, port: int) -> scu.Peer:
    return scu.Peer(
        host=host,
        port=port,
        called_ae=args.call,
        calling_ae=args.aetitle,
        connect_timeout=args.timeout,
        acse_timeout=args.acse_timeout,
        dimse_timeout=args.dimse_timeout,
        network_timeout=args.dimse_timeout,
        max_pdu=args.max_pdu,
        ssl_context=_ssl_context(args),
        server_hostname=args.tls_server_name,
    )


def _fail(command: str, message: str, code: int = EXIT_FAILED) -> int:
    print(f"node-ctl {command}: error: {message}", file=sys.stderr)
    return code


def _guarded(command: str, body: Any, args: argparse.Namespace) -> int:
    _quiet_libraries(args)
    try:
        return int(body(args))
    except UsageError as exc:
        return _fail(command, str(exc), EXIT_USAGE)
    except scu.ScuError as exc:
        return _fail(command, str(exc))
    except OSError as exc:
        return _fail(command, str(exc))


def _emit_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


# --------------------------------------------------------------------------- echo


def run_echo(args: argparse.Namespace) -> int:
    return _guarded("echo", _echo, args)


def _echo(args: argparse.Namespace) -> int:
    peer = _peer(args, args.host, args.port)
    result = scu.echo(peer)
    category = scu.status_category(result.status)
    if args.json:
        _emit_json({"peer": result.peer, "status": result.status, "category": category})
    else:
        print(f"C-ECHO {result.peer}: {category} (0x{result.status:04X})")
    return 0 if category == "Success" else EXIT_FAILED


# --------------------------------------------------------------------------- store


def _walk(paths: Sequence[str], recursive: bool) -> Iterator[Path]:
    for text in paths:
        path = Path(text)
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            yield from sorted(p for p in found if p.is_file())
        elif path.exists():
            yield path
        else:
            raise UsageError(f"no such file or directory: {text}")


def run_store(args: argparse.Namespace) -> int:
    return _guarded("store", _store, args)


def _store(args: argparse.Namespace) -> int:
    host, port, names = _split_positional(args.positional)
    if not names:
        raise UsageError("nothing to send: give files or directories after HOST [PORT]")
    files = list(_walk(names, args.recursive))
    peer = _peer(args, host, port)
    bar = ProgressBar("instances", enabled=ProgressBar.wanted(args.progress) and len(files) > 1)

    def _progress(done: int, total: int, outcome: scu.StoreOutcome) -> None:
        bar.update(done, total)

    try:
        report = scu.store(peer, files, on_progress=_progress)
    except scu.AssociationAborted as exc:
        bar.close()
        if exc.report is not None:
            print(f"{exc.report.sent} instance(s) sent before the association was lost")
        raise
    bar.close()
    for o in report.outcomes:
        if o.converted_from:
            print(
                f"warning: {o.source}: peer accepts only uncompressed data for this class: "
                f"decompressed from {_ts_name(o.converted_from)}",
                file=sys.stderr,
            )
        if o.warning:
            print(f"warning: {o.source}: C-STORE status 0x{o.status or 0:04X}", file=sys.stderr)
    if args.json:
        _emit_json(
            {
                "peer": peer.address,
                "associations": report.associations,
                "sent": report.sent,
                "warnings": report.warnings,
                "failed": report.failed,
                "skipped": report.skipped,
                "outcomes": [
                    {
                        "file": o.source,
                        "sop_class_uid": o.sop_class_uid,
                        "sop_instance_uid": o.sop_instance_uid,
                        "status": o.status,
                        "transfer_syntax": o.transfer_syntax,
                        "converted_from": o.converted_from,
                        "skipped": o.skipped,
                        "error": o.error,
                    }
                    for o in report.outcomes
                ],
            }
        )
    else:
        for o in report.outcomes:
            if o.skipped:
                print(f"skipped: {o.source}: {o.error}", file=sys.stderr)
            elif not o.ok:
                print(f"FAILED: {o.source}: {o.error}")
        print(
            f"C-STORE {peer.address}: {report.sent} sent, {report.failed} failed, "
            f"{report.skipped} skipped, {report.warnings} warning(s), "
            f"{report.associations} association(s)"
        )
    if report.sent == 0 and report.failed == 0:
        return _fail("store", "no DICOM instance found to send")
    return EXIT_FAILED if report.failed else 0


# --------------------------------------------------------------------------- queries


def _read_query_file(path: Path) -> Dataset:
    try:
        ds = dcmread(path, force=True)
    except (OSError, InvalidDicomError, ValueError, EOFError) as exc:
        raise UsageError(f"cannot read query file {path}: {exc}") from exc
    if len(ds) == 0:
        raise UsageError(f"query file {path} holds no attributes")
    query = Dataset()
    query.update(ds)
    return query


def _queries(args: argparse.Namespace, files: Sequence[str]) -> list[tuple[Dataset, str]]:
    """Build each query (identifier, model) from query files and/or -k keys."""
    bases: list[Dataset | None] = [_read_query_file(Path(f)) for f in files] or [None]
    out: list[tuple[Dataset, str]] = []
    for base in bases:
        level = args.level
        if level is None and base is not None and "QueryRetrieveLevel" in base:
            level = str(base.QueryRetrieveLevel).strip().upper()
        level = level or "STUDY"
        if level not in scu.UNIQUE_KEYS:
            raise UsageError(f"bad query/retrieve level {level!r}")
        model = args.model
        if level == "PATIENT":
            if model == "study":
                raise UsageError("--patient cannot be used with --studyroot")
            model = "patient"
        model = model or "study"
        try:
            identifier = scu.build_identifier(level, model, base=base, keys=args.key)
        except ValueError as exc:
            raise UsageError(str(exc)) from exc
        out.append((identifier, model))
    if args.store_query is not None:
        identifier, model = out[0]
        identifier.file_meta = scu.new_query_file_meta(scu.find_model_uid(model))  # type: ignore[arg-type]
        identifier.save_as(args.store_query, enforce_file_format=True)
    return out


def _text(elem: DataElement) -> str:
    if elem.VR == "SQ":
        return f"<{len(elem.value)} item(s)>"
    value = elem.value
    if value is None or value == "":
        return ""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value)


def _table(columns: list[int], rows: list[Dataset]) -> list[str]:
    names = [keyword_for_tag(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})" for tag in columns]
    cells = [[_text(r[tag]) if tag in r else "" for tag in columns] for r in rows]
    widths = [min(64, max([len(n)] + [len(row[i]) for row in cells])) for i, n in enumerate(names)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths, strict=True)).rstrip()]
    for row in cells:
        fitted = [
            (c if len(c) <= w else c[: w - 1] + "~").ljust(w)
            for c, w in zip(row, widths, strict=True)
        ]
        lines.append("  ".join(fitted).rstrip())
    return lines


def run_find(args: argparse.Namespace) -> int:
    return _guarded("find", _find, args)


def _find(args: argparse.Namespace) -> int:
    host, port, files = _split_positional(args.positional)
    queries = _queries(args, files)
    peer = _peer(args, host, port)
    all_matches: list[Dataset] = []
    columns: list[int] = []
    for identifier, model in queries:
        for elem in identifier:
            if elem.tag not in _HIDDEN_KEYS and int(elem.tag) not in columns:
                columns.append(int(elem.tag))
        all_matches += scu.find(peer, identifier, model)  # type: ignore[arg-type]
    if args.json:
        _emit_json([m.to_json_dict() for m in all_matches])
    else:
        for line in _table(sorted(columns), all_matches):
            print(line)
        print(f"{len(all_matches)} match(es) from {peer.address}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- move / get


def _retrieve_output(
    what: str, peer: scu.Peer, result: scu.RetrieveResult, json_out: bool, directory: Path | None
) -> None:
    if json_out:
        _emit_json(
            {
                "peer": peer.address,
                "status": result.status,
                "completed": result.completed,
                "failed": result.failed,
                "warning": result.warning,
                "failed_instances": result.failed_instances,
                "received": [str(p) for p in result.received],
            }
        )
        return
    line = (
        f"{what} {peer.address}: {result.completed} completed, {result.failed} failed, "
        f"{result.warning} warning(s)"
    )
    if directory is not None:
        line += f"; {len(result.received)} file(s) written into {directory}"
    print(line)
    for uid in result.failed_instances:
        print(f"FAILED: {uid}")


def run_move(args: argparse.Namespace) -> int:
    return _guarded("move", _move, args)


def _move(args: argparse.Namespace) -> int:
    host, port, files = _split_positional(args.positional)
    if args.port_scp is None and args.move_dest is None:
        raise UsageError(
            "say where to: --port-scp N -o DIR (receive here) or -aem AE (another node)"
        )
    queries = _queries(args, files)
    peer = _peer(args, host, port)
    receiver = None
    if args.port_scp is not None:
        if args.move_dest is not None and args.move_dest != args.aetitle:
            raise UsageError(
                f"--port-scp receives as {args.aetitle!r} (-aet): -aem {args.move_dest!r} "
                "would send elsewhere"
            )
        server_tls = None
        if peer.ssl_context is not None and args.tls_cert:
            server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server_tls.load_cert_chain(args.tls_cert, args.tls_key)
        receiver = scu.Receiver(
            port=args.port_scp,
            directory=args.output,
            bind_address=args.bind_scp,
            accept_unknown_sop_classes=True,
            ssl_context=server_tls,
        )
    destination = args.move_dest or args.aetitle
    bar = ProgressBar("instances", enabled=ProgressBar.wanted(args.progress))
    total = scu.RetrieveResult()
    try:
        for identifier, model in queries:
            result = scu.move(
                peer,
                identifier,
                model=model,  # type: ignore[arg-type]
                destination=destination,
                receiver=receiver,
                on_progress=bar.update,
            )
            _accumulate(total, result)
    except scu.MoveDestinationUnknown as exc:
        bar.close()
        where = f"host and port {args.port_scp}" if args.port_scp is not None else "host and port"
        raise scu.ScuError(
            f"{exc}: the remote node must know the AE title {destination!r} with its {where} "
            "(e.g. an entry in dcmqrscp.cfg's HostTable or Orthanc's DicomModalities)"
        ) from exc
    finally:
        bar.close()
    _retrieve_output(
        "C-MOVE", peer, total, args.json, args.output if receiver is not None else None
    )
    return EXIT_FAILED if total.failed else 0


def _accumulate(total: scu.RetrieveResult, result: scu.RetrieveResult) -> None:
    total.status = result.status
    total.completed += result.completed
    total.failed += result.failed
    total.warning += result.warning
    total.failed_instances += result.failed_instances
    total.received += result.received


def run_get(args: argparse.Namespace) -> int:
    return _guarded("get", _get, args)


def _get(args: argparse.Namespace) -> int:
    host, port, files = _split_positional(args.positional)
    queries = _queries(args, files)
    peer = _peer(args, host, port)
    bar = ProgressBar("instances", enabled=ProgressBar.wanted(args.progress))
    total = scu.RetrieveResult()
    try:
        for identifier, model in queries:
            result = scu.get(
                peer,
                identifier,
                args.output,
                model=model,  # type: ignore[arg-type]
                sop_classes=args.sop_class or None,
                accept_unknown_sop_classes=True,
                on_progress=bar.update,
            )
            _accumulate(total, result)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    finally:
        bar.close()
    _retrieve_output("C-GET", peer, total, args.json, args.output)
    return EXIT_FAILED if total.failed else 0


def _ts_name(uid: str) -> str:
    return UID(uid).name or uid
