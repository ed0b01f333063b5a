"""TriggerTable and RouteTable: forms, defaults, and every error with its file:line."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from config import ConfigError, load
from config.model import MatchKey

WriteCfg = Callable[..., Path]

BASE = """\
HostTable BEGIN
archive = (ARCH, archive.example, 104)
HostTable END
AETable BEGIN
NODE store RW (10, 1gb) ANY
AETable END
"""

GOOD = (
    BASE
    + """\
TriggerTable BEGIN
thumbs.Event = ingest
thumbs.Match = 0008,0060=CT         # a comment
thumbs.Match = CallingAE=MOD*
thumbs.Match = SOPClass=CTImageStorage
  thumbs.Job = render --size 128
ct-ls.Event  stable
ct-ls.Match  (0010,0010)=DOE*
ct-ls.Job    "convert --jpegls"
TriggerTable END
RouteTable BEGIN
research.Source      = NODE
research.Destination = ARCH
research.Schedule    = "0  2 * * *"
research.Trigger     = stable
research.Filter      = Modality=CT\\MR
research.Filter      = StudyDate=20200101-
research.Select      = all
research.Anonymize   = basic --retain-modified-dates
research.SecretFile  = keys/research.key
research.Convert     = --jpegls
research.MaxAttempts = 7
plain.Source = NODE
plain.Destination = ARCH
RouteTable END
StudyStableSeconds = 2.5
"""
)


def test_tables_read(write_cfg: WriteCfg, tmp_path: Path) -> None:
    settings = load(write_cfg(GOOD), environ={})
    thumbs, ct_ls = settings.triggers
    assert (thumbs.name, thumbs.event, thumbs.line) == ("thumbs", "ingest", 8)
    assert thumbs.match == (
        MatchKey(keyword="Modality", tag=0x00080060, value="CT"),
        MatchKey(keyword="CallingAE", value="MOD*"),
        MatchKey(keyword="SOPClassUID", tag=0x00080016, value="1.2.840.10008.5.1.4.1.1.2"),
    )
    assert thumbs.job == ("render", "--size", "128")
    assert ct_ls.match == (MatchKey(keyword="PatientName", tag=0x00100010, value="DOE*"),)
    assert ct_ls.job == ("convert", "--jpegls")
    research, plain = settings.routes
    assert research.schedule == "0 2 * * *" and research.trigger == "stable"
    assert [k.value for k in research.filter] == ["CT\\MR", "20200101-"]
    assert research.select == "all" and research.max_attempts == 7
    assert research.anonymize == ("--retain-modified-dates",)
    assert research.convert == ("--jpegls",)
    assert research.secret_file == tmp_path / "keys" / "research.key"
    assert (plain.select, plain.anonymize, plain.schedule, plain.trigger) == (
        "new",
        None,
        None,
        None,
    )
    assert settings.route("plain") is plain and settings.route("x") is None
    assert settings.study_stable_seconds == 2.5
    assert settings.ingest_events_wanted


def test_no_tables_no_outbox(write_cfg: WriteCfg) -> None:
    settings = load(write_cfg(BASE), environ={})
    assert settings.triggers == () and settings.routes == ()
    assert not settings.ingest_events_wanted
    assert settings.study_stable_seconds == 60.0
    scheduled_only = BASE + "RouteTable BEGIN\nr.Source NODE\nr.Destination ARCH\n"
    scheduled_only += "r.Schedule '0 2 * * *'\nRouteTable END\n"
    assert not load(write_cfg(scheduled_only), environ={}).ingest_events_wanted


def test_environment_sets_the_stable_time(write_cfg: WriteCfg) -> None:
    settings = load(write_cfg(BASE), environ={"NODE_STUDY_STABLE_SECONDS": "5"})
    assert settings.study_stable_seconds == 5.0


T = "TriggerTable BEGIN\n{}\nTriggerTable END\n"
R = "RouteTable BEGIN\nr.Source = NODE\nr.Destination = ARCH\n{}\nRouteTable END\n"

ERRORS = [
    (T.format("t.Event = ingest"), 8, "trigger t: missing Job"),
    (T.format("t.Job = render"), 8, "trigger t: missing Event"),
    (T.format("t.Event = later\nt.Job = render"), 8, "'later' is not ingest or stable"),
    (T.format("t.event = ingest"), 8, "case-sensitive: Event"),
    (T.format("t.Colour = red"), 8, "unknown attribute 'Colour'"),
    (T.format("Event = ingest"), 8, "is not name.Attribute"),
    (T.format("t/x.Event = ingest"), 8, "letters, digits"),
    (T.format("t.Match = Modality"), 8, "is not KEY=VALUE"),
    (T.format("t.Match = Modality="), 8, "needs a value"),
    (T.format("t.Match = Colour=red"), 8, "neither a tag"),
    (T.format("t.Match = 0002,0010=1.2"), 8, "not an attribute of a stored dataset"),
    (T.format("t.Match = ReferencedSeriesSequence=x"), 8, "is a sequence"),
    (T.format("t.Job = 'render"), 8, "unterminated quote"),
    (R.format("r.Schedule = 0 2 * *"), 10, "not a cron expression of 5 fields"),
    (R.format("r.Schedule = 0 25 * * *"), 10, "r: Schedule"),
    (R.format("r.Trigger = ingest"), 10, "'ingest' is not stable"),
    (R.format("r.Anonymize = basic"), 8, "Anonymize needs Secret or SecretFile"),
    (R.format("r.Anonymize = strong"), 10, "'strong' is not an option"),
    (R.format("r.Secret = a\nr.SecretFile = b"), 8, "Secret or SecretFile, not both"),
    (R.format("r.Filter = CallingAE=X"), 8, "Filter takes DICOM keys"),
    (R.format("r.MaxAttempts = 0"), 10, "out of range 1-100"),
    (R.format("r.Source = OTHER"), 8, "Source 'OTHER' is not an AE title of the AETable"),
    (R.format("r.Destination = NOWHERE"), 8, "Destination 'NOWHERE' is neither"),
    ("RouteTable BEGIN\nr.Source = NODE\n", 7, "RouteTable BEGIN without RouteTable END"),
]


@pytest.mark.parametrize(("table", "line", "message"), ERRORS)
def test_errors_name_file_and_line(
    write_cfg: WriteCfg, table: str, line: int, message: str
) -> None:
    path = write_cfg(BASE + table)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in info.value.message
