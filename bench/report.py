"""Figures, and how they are summarised: medians, ratios against the peers, targets, output.

A ``Figure`` is one line of the table: one workload, one metric, the raw values of every run
for us and for each peer.  The table shows the median of the runs (and a second statistic,
p95, where a line has one), the ratio against each peer, oriented so that a ratio above 1
always means that we do better, and whether the target of issue 9 is met.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.env import summary_line
from bench.peers import ORTHANC, STORESCP, US

#: The C++ tool a ``tools`` figure compares with (its name is in ``details["tool"]``).
CXX = "cxx-tool"
PEER_ORDER = (ORTHANC, STORESCP)
LABELS = {US: "dicom-node", ORTHANC: "Orthanc", STORESCP: "storescp", CXX: "C++ tool"}


@dataclass
class Figure:
    """One measured quantity for every system of a workload."""

    key: str
    title: str
    metric: str
    better: str  # "higher" or "lower"
    values: dict[str, list[float]] = field(default_factory=dict)
    #: A second statistic shown after the first (p95 after p50), same orientation.
    secondary: dict[str, list[float]] = field(default_factory=dict)
    secondary_name: str = ""
    target: str = ""
    #: peer -> smallest acceptable "times better" ratio against that peer
    min_ratio: dict[str, float] = field(default_factory=dict)
    #: absolute limits for our median (and our secondary median)
    limit: float | None = None
    secondary_limit: float | None = None
    #: a condition the workload evaluated itself (e.g. "no worse than 2x the 10k figure")
    extra_ok: bool | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    def add(self, system: str, value: float, secondary: float | None = None) -> None:
        self.values.setdefault(system, []).append(value)
        if secondary is not None:
            self.secondary.setdefault(system, []).append(secondary)

    def median(self, system: str, which: str = "values") -> float | None:
        runs = getattr(self, which).get(system) or []
        return statistics.median(runs) if runs else None

    def ratio(self, peer: str, which: str = "values") -> float | None:
        """How many times better we are than ``peer`` (> 1: better)."""
        ours, theirs = self.median(US, which), self.median(peer, which)
        if not ours or not theirs:
            return None
        return ours / theirs if self.better == "higher" else theirs / ours

    def met(self) -> bool | None:
        checks: list[bool] = []
        for peer, minimum in self.min_ratio.items():
            ratio = self.ratio(peer)
            if ratio is not None:
                checks.append(ratio >= minimum)
        for limit, which in ((self.limit, "values"), (self.secondary_limit, "secondary")):
            ours = self.median(US, which)
            if limit is not None and ours is not None:
                checks.append(ours <= limit if self.better == "lower" else ours >= limit)
        if self.extra_ok is not None:
            checks.append(self.extra_ok)
        if self.error:
            return False
        return all(checks) if checks else None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"median": {}, "ratio": {}}
        for system in self.values:
            out["median"][system] = self.median(system)
            if self.secondary.get(system):
                out.setdefault("secondary_median", {})[system] = self.median(system, "secondary")
        for peer in (*PEER_ORDER, CXX):
            ratio = self.ratio(peer)
            if ratio is not None:
                out["ratio"][peer] = round(ratio, 3)
        out["met"] = self.met()
        return out


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _cell(figure: Figure, system: str) -> str:
    first = figure.median(system)
    if first is None:
        return "-"
    if figure.secondary.get(system):
        return f"{_number(first)} / {_number(figure.median(system, 'secondary'))}"
    return _number(first)


def _ratio_cell(figure: Figure, peer: str) -> str:
    ratio = figure.ratio(peer)
    if ratio is None:
        return "-"
    if figure.secondary.get(peer) and figure.secondary.get(US):
        second = figure.ratio(peer, "secondary")
        return f"{ratio:.2f}x / {second:.2f}x" if second else f"{ratio:.2f}x"
    return f"{ratio:.2f}x"


def _is_tool(fig: Figure) -> bool:
    return fig.key.startswith("tools-") or CXX in fig.values


def _met_cell(fig: Figure) -> str:
    if fig.error:
        return "error"
    return {True: "yes", False: "**no**", None: "-"}[fig.met()]


def markdown(figures: list[Figure], env: dict[str, Any], runs: int) -> str:
    """The results table, then the environment, as markdown."""
    header = (
        "| Workload | Metric | dicom-node | Orthanc | storescp | vs Orthanc | vs storescp "
        "| Target | Met |"
    )
    network = [fig for fig in figures if not _is_tool(fig)]
    tools = [fig for fig in figures if _is_tool(fig)]
    lines = [header, "|" + "---|" * 9] if network or not tools else []
    for fig in network:
        metric = fig.metric + (f" ({fig.secondary_name})" if fig.secondary_name else "")
        lines.append(
            f"| {fig.title} | {metric} | {_cell(fig, US)} | {_cell(fig, ORTHANC)} "
            f"| {_cell(fig, STORESCP)} | {_ratio_cell(fig, ORTHANC)} "
            f"| {_ratio_cell(fig, STORESCP)} | {fig.target or '-'} | {_met_cell(fig)} |"
        )
    if tools:
        if lines:
            lines.append("")
        lines.append(
            "| Tool workload | Metric | dicom-node | C++ tool | Tool | vs tool | Target | Met |"
        )
        lines.append("|" + "---|" * 8)
        for fig in tools:
            lines.append(
                f"| {fig.title} | {fig.metric} | {_cell(fig, US)} | {_cell(fig, CXX)} "
                f"| {fig.details.get('tool', '-')} | {_ratio_cell(fig, CXX)} "
                f"| {fig.target or '-'} | {_met_cell(fig)} |"
            )
    lines.append("")
    lines.append(
        f"Median of {runs} run(s) per figure (C-FIND: percentiles over all repetitions); "
        "ratios: times better than the peer (> 1: dicom-node is better)."
    )
    notes = [(fig.title, note) for fig in figures for note in ([fig.error] if fig.error else [])]
    notes += [(fig.title, note) for fig in figures for note in fig.notes]
    if notes:
        lines.append("")
        for title, note in notes:
            lines.append(f"- {title}: {note}")
    lines.append("")
    lines.append(f"Environment: {summary_line(env)}.")
    return "\n".join(lines) + "\n"


def write_json(
    path: Path, figures: list[Figure], env: dict[str, Any], options: dict[str, Any]
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "environment": env,
        "options": options,
        "figures": [{**asdict(fig), "summary": fig.summary()} for fig in figures],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
