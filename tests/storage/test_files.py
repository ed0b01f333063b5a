"""The file store: durable atomic writes, UIDs that are not paths, sweep, integrity."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage.files import FileStore, InvalidUIDError, StoreError, path_component
from storage.uids import is_valid_uid


@pytest.mark.parametrize(
    "value, valid",
    [
        ("1.2.840.10008.1.2", True),
        ("0.1", True),
        ("1.02", False),
        ("../../x", False),
        ("1.2.3/4", False),
        ("", False),
        ("1." + "2" * 63, False),
        ("1.2 .3", False),
    ],
)
def test_uid_validation(value: str, valid: bool) -> None:
    assert is_valid_uid(value) is valid


def test_put_is_atomic_and_leaves_no_temp(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("1.2.3", "1.2.3.4")
    pending = store.put(rel, [b"abc", b"def"])
    assert pending.size == 6
    assert (store.area / rel).read_bytes() == b"abcdef"
    assert len(list(store.tmp.iterdir())) == 1  # the marker, until the index recorded it
    pending.done()
    assert list(store.tmp.iterdir()) == []
    assert list(store.walk()) == [rel]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("1.2.3", "1.2.3.4")

    def chunks():
        yield b"partial"
        raise OSError(5, "I/O error")

    with pytest.raises(StoreError):
        store.put(rel, chunks())
    assert not (store.area / rel).exists()
    assert list(store.tmp.iterdir()) == []


def test_invalid_uid_never_becomes_a_path(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("../../etc", "1.2")
    assert ".." not in rel and "etc" not in rel
    assert store.absolute(rel).is_relative_to(store.area)
    assert path_component("1.2.3") == "1.2.3"
    assert path_component("0123.4") != path_component("0123.5")
    assert path_component("0123.4").startswith("x")
    with pytest.raises(InvalidUIDError):
        store.relative_path("", "1.2")
    with pytest.raises(InvalidUIDError):
        store.absolute("../outside.dcm")


def test_unique_names_for_replacements(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    first = store.relative_path("1.2", "1.2.3")
    second = store.relative_path("1.2", "1.2.3", unique=True)
    assert first != second and second.startswith(first[: -len(".dcm")])


def test_recover_after_crash_before_index_commit_removes_the_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("1.2", "1.2.3")
    store.put(rel, [b"data"])  # crash: never indexed, never done()
    assert store.recover(is_indexed=lambda path: False) == (1, 1)
    assert list(store.walk()) == []
    assert list(store.tmp.iterdir()) == []


def test_recover_after_crash_after_index_commit_keeps_the_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("1.2", "1.2.3")
    store.put(rel, [b"data"])  # crash between the commit and done()
    assert store.recover(is_indexed=lambda path: path == rel) == (0, 1)
    assert list(store.walk()) == [rel]


def test_recover_clears_partial_temp_files(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    (store.tmp / "garbage.part").write_bytes(b"x")
    assert store.recover(is_indexed=lambda path: False) == (0, 1)
    assert list(store.tmp.iterdir()) == []


def test_abort_removes_file_and_marker(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("1.2", "1.2.3")
    store.put(rel, [b"data"]).abort()
    assert list(store.walk()) == [] and list(store.tmp.iterdir()) == []


def test_delete_removes_empty_study_folder(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    rel = store.relative_path("1.2", "1.2.3")
    store.put(rel, [b"x"]).done()
    store.delete(rel)
    assert not (store.area / rel).parent.exists()


@pytest.mark.parametrize(
    "relative", ["../x.dcm", "ab/../../x.dcm", "/etc/passwd", "ab/1.2/../../../x.dcm", "", "."]
)
def test_a_path_outside_the_area_is_refused(tmp_path: Path, relative: str) -> None:
    store = FileStore(tmp_path / "area")
    with pytest.raises(InvalidUIDError, match="escapes"):
        store.absolute(relative)


def test_a_path_inside_the_area_is_the_joined_path(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "area")
    assert store.absolute("ab/1.2/3.dcm") == (tmp_path / "area" / "ab/1.2/3.dcm").resolve()
    assert store.absolute("ab/./1.2//3.dcm") == store.absolute("ab/1.2/3.dcm")
