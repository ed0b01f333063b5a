"""The Settings model's helpers: move destinations, character set options, constraints."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from config.model import AEEntry, HostEntry, Quota, Settings


def host(ae_title: str, hostname: str, port: int) -> HostEntry:
    return HostEntry(ae_title=ae_title, hostname=hostname, port=port)


def test_move_destination_looks_in_the_ae_table_peers_first() -> None:
    """As DCMTK's peerForAETitle(): AETable peer lists, then the HostTable, file order."""
    settings = Settings(
        hosts={"a": (host("VIEWER", "from-host-table", 1),), "b": (host("ONLY_HT", "h", 2),)},
        ae_table=(
            AEEntry(title="ANYONE", storage_area=Path("/a"), peers=None),
            AEEntry(
                title="STORE",
                storage_area=Path("/s"),
                peers=(host("VIEWER", "from-ae-table", 3),),
            ),
        ),
    )
    assert settings.move_destination("VIEWER") == host("VIEWER", "from-ae-table", 3)
    assert settings.move_destination("ONLY_HT") == host("ONLY_HT", "h", 2)
    assert settings.move_destination("STORE") is None  # our own AE is no destination
    assert settings.move_destination("NOBODY") is None


@pytest.mark.parametrize(
    ("values", "charset", "options"),
    [
        (None, None, {"fallback"}),  # dcmqrscp's default when the keyword is absent
        ((), None, set()),
        (("ISO_IR 192", "override", "discard", "transliterate"), "ISO_IR 192",
         {"override", "discard", "transliterate"}),
        (("ISO_IR 100", "fallback", "ISO_IR 192"), "ISO_IR 192", {"fallback"}),  # last wins
    ],
)  # fmt: skip
def test_character_set_helpers(
    values: tuple[str, ...] | None, charset: str | None, options: set[str]
) -> None:
    settings = Settings(specific_character_set=values)
    assert settings.response_character_set == charset
    assert settings.character_set_options == options


def test_ae_lookup_ignores_padding() -> None:
    settings = Settings(ae_table=(AEEntry(title="STORE", storage_area=Path("/s")),))
    assert settings.ae("STORE  ") is settings.ae_table[0]
    assert settings.ae("store") is None


@pytest.mark.parametrize(
    "build",
    [
        lambda: host("A", "h", 0),
        lambda: host("A", "h", 65536),
        lambda: host("", "h", 1),
        lambda: host("A" * 17, "h", 1),
        lambda: Quota(max_studies=0, max_bytes_per_study=1),
        lambda: AEEntry(title="X", storage_area=Path("/x"), access="rw"),  # type: ignore[arg-type]
        lambda: Settings(network_tcp_port=0),
        lambda: Settings(log_level="LOUD"),  # type: ignore[arg-type]
        lambda: Settings(max_pdu_size=100),
    ],
)
def test_model_constraints(build: object) -> None:
    with pytest.raises(ValidationError):
        build()  # type: ignore[operator]


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.network_tcp_port = 1  # type: ignore[misc]
