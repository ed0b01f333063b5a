"""The clients every system is measured with: DCMTK ``storescu``/``findscu``/``movescu``.

Why DCMTK for everyone: the sender must be the same program for us and for the peers, and a
C++ client costs the receiver nothing it would not cost with a modality.  The one exception
is ``FindSession``, a pynetdicom SCU that keeps one association open to time C-FIND
round trips without the process start and association set-up of ``findscu`` (the index
targets are about the query, not about starting a process).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset

from bench.peers import CLIENT_AET, MOVE_DEST_AET, peer_env

HOST = "127.0.0.1"

#: storescu's option to propose each transfer syntax (as tests/interop/test_dcmtk.py).
STORESCU_FLAG = {
    "1.2.840.10008.1.2": "-xi",
    "1.2.840.10008.1.2.1": "-xe",
    "1.2.840.10008.1.2.2": "-xb",
    "1.2.840.10008.1.2.4.50": "-xy",
    "1.2.840.10008.1.2.4.51": "-xx",
    "1.2.840.10008.1.2.4.70": "-xs",
    "1.2.840.10008.1.2.4.80": "-xt",
    "1.2.840.10008.1.2.4.81": "-xu",
    "1.2.840.10008.1.2.4.90": "-xv",
    "1.2.840.10008.1.2.4.91": "-xw",
    "1.2.840.10008.1.2.5": "-xr",
    "1.2.840.10008.1.2.1.99": "-xd",
}


class ClientError(RuntimeError):
    """A DCMTK client failed (its stderr is in the message)."""


def binary(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise ClientError(f"{name} not installed (apt-get install dcmtk)")
    return path


@dataclass
class StoreResult:
    elapsed: float
    sent: int
    failed_files: list[str]


def _failed_files(stderr: str, files: Sequence[str]) -> list[str]:
    # storescu names the files it could not send ("Store Failed, file: ...", "unknown
    # storage SOP class in file: ...", "missing SOP class (or instance) in file: ...")
    complaints = [line for line in stderr.splitlines() if "file: " in line]
    return [f for f in files if any(f"file: {f}" in c for c in complaints)]


def storescu_dirs(
    aet: str, port: int, groups: Sequence[Sequence[Path]], timeout: float = 1800
) -> float:
    """Send every file under the folders of each group, one ``storescu`` (one association)
    per group, all at once; returns the wall-clock time until the last one exits."""
    args = [binary("storescu"), "-aet", CLIENT_AET, "-aec", aet, "+sd", "+r", HOST, str(port)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            [*args, *(str(folder) for folder in group)],
            env=peer_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for group in groups
    ]
    errors = []
    for proc in procs:
        try:
            _, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
        if proc.returncode != 0:
            errors.append(stderr.decode(errors="replace").strip()[-400:])
    elapsed = time.perf_counter() - start
    if errors:
        raise ClientError(f"storescu failed: {' | '.join(errors)}")
    return elapsed


def storescu_files(
    aet: str, port: int, files: Sequence[str], flags: Sequence[str], timeout: float = 1800
) -> StoreResult:
    """One ``storescu -R -nh`` association for ``files`` (the corpus: it must not halt on a
    file the receiver refuses)."""
    args = [binary("storescu"), "-aet", CLIENT_AET, "-aec", aet, "-R", "-nh", *flags]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, HOST, str(port), *files],
        env=peer_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    failed = _failed_files(proc.stderr, files)
    return StoreResult(elapsed=elapsed, sent=len(files) - len(failed), failed_files=failed)


def _key_args(keys: dict[str, str]) -> list[str]:
    out = []
    for keyword, value in keys.items():
        out += ["-k", f"{keyword}={value}" if value else keyword]
    return out


def findscu(aet: str, port: int, keys: dict[str, str], timeout: float = 120) -> float:
    """One ``findscu`` (study root) run: process, association, query, release."""
    args = [binary("findscu"), "-aet", CLIENT_AET, "-aec", aet, "-S", *_key_args(keys)]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, HOST, str(port)],
        env=peer_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise ClientError(f"findscu failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return elapsed


def movescu(aet: str, port: int, keys: dict[str, str], timeout: float = 1800) -> float:
    """One ``movescu`` (study root) run moving to ``DEST``; returns the wall-clock time."""
    args = [
        binary("movescu"),
        "-aet",
        CLIENT_AET,
        "-aec",
        aet,
        "-aem",
        MOVE_DEST_AET,
        "-S",
        *_key_args(keys),
    ]
    start = time.perf_counter()
    proc = subprocess.run(
        [*args, HOST, str(port)],
        env=peer_env(),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise ClientError(f"movescu failed ({proc.returncode}): {proc.stderr.strip()[-400:]}")
    return elapsed


def identifier(keys: dict[str, str]) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


class FindSession:
    """One open association (Study Root C-FIND) from a pynetdicom SCU, with TCP_NODELAY."""

    def __init__(self, aet: str, port: int) -> None:
        from pynetdicom import AE, _config
        from pynetdicom.sop_class import StudyRootQueryRetrieveInformationModelFind

        from node.net import enable_tcp_nodelay

        enable_tcp_nodelay()
        _config.LOG_HANDLER_LEVEL = "none"
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        self._model = StudyRootQueryRetrieveInformationModelFind
        ae = AE(ae_title=CLIENT_AET)
        ae.add_requested_context(self._model)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 120
        self.assoc = ae.associate(HOST, port, ae_title=aet)
        if not self.assoc.is_established:
            raise ClientError(f"association to {aet} on port {port} was not established")

    def find(self, keys: dict[str, str]) -> tuple[float, int]:
        """Time one C-FIND until its final response; returns (seconds, matches)."""
        query = identifier(keys)
        start = time.perf_counter()
        matches = 0
        final = None
        for status, _ in self.assoc.send_c_find(query, self._model):
            if status is None:
                raise ClientError("C-FIND: no response (association aborted or timed out)")
            if status.Status in (0xFF00, 0xFF01):
                matches += 1
            else:
                final = status.Status
        elapsed = time.perf_counter() - start
        if final != 0x0000:
            raise ClientError(f"C-FIND ended with status 0x{final or 0:04X}")
        return elapsed, matches

    def close(self) -> None:
        if self.assoc.is_established:
            self.assoc.release()
