"""Settings: the dcmqrscp.cfg parser (with our extensions) and the pydantic-settings model.

The names are imported on first use (PEP 562): ``config.identity``, which every tool's
file meta needs, must not pay for pydantic at ``node-ctl`` start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from config.errors import ConfigError
    from config.model import Settings
    from config.settings import load

__all__ = ["ConfigError", "Settings", "load"]

_SOURCES = {"ConfigError": "config.errors", "Settings": "config.model", "load": "config.settings"}


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        # ``import config; config.model``: the submodules were loaded by the import before
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module 'config' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(source), name)
    globals()[name] = value
    return value
