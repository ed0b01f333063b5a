"""Where files derived from a stored instance (thumbnails, previews) are kept.

Beside each AE's store, in a folder the store never walks::

    <storage area>/.derived/<name>/<h2>/<StudyUID>/<SOPUID>.<ext>

(``<h2>/<StudyUID>/<SOPUID>`` as the instance's own path, from ``FileStore.relative_path``;
``<name>`` is the render job's ``name``, e.g. ``thumbnail``.) ``FileStore.walk()`` only
lists ``*/*/*.dcm`` and ``recover()`` only looks in ``.tmp``, so neither start-up recovery
nor ``node-ctl db check`` sees these files; the ``delete`` job removes them with their
instance.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from storage.files import FileStore

DERIVED_DIR = ".derived"


def derived_path(store: FileStore, name: str, study_uid: str, sop_uid: str, ext: str) -> Path:
    """The derived file ``name`` (e.g. ``thumbnail``) of an instance, with extension ``ext``."""
    relative = PurePosixPath(store.relative_path(study_uid, sop_uid)).with_suffix(f".{ext}")
    return store.area / DERIVED_DIR / name / relative


def derived_files(store: FileStore, study_uid: str, sop_uid: str) -> list[Path]:
    """Every derived file of an instance (all names, all extensions)."""
    relative = PurePosixPath(store.relative_path(study_uid, sop_uid))
    root = store.area / DERIVED_DIR
    if not root.is_dir():
        return []
    pattern = f"*/{relative.parent}/{relative.stem}.*"
    return sorted(p for p in root.glob(pattern) if p.is_file())


def remove_derived(store: FileStore, study_uid: str, sop_uid: str) -> int:
    """Remove an instance's derived files (and folders left empty); returns how many."""
    removed = 0
    for path in derived_files(store, study_uid, sop_uid):
        path.unlink(missing_ok=True)
        removed += 1
        for parent in (path.parent, path.parent.parent):
            try:
                parent.rmdir()
            except OSError:
                break
    return removed
