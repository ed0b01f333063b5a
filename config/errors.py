"""The one exception ``config`` raises, and the internal one it is made from.

Exceptions::

    ConfigError      file:line: message -- any problem in a file or the environment
    InvalidValue     (ValueError; internal) a value is wrong, place not yet known
"""

from __future__ import annotations

from pathlib import Path


class ConfigError(Exception):
    """A configuration problem, located as ``file:line: message``.

    ``path`` is the file (or the environment variable's name), ``line`` is 1-based;
    either may be ``None`` when there is no such place (a missing file, a value that
    came from the environment).
    """

    def __init__(self, path: Path | str | None, line: int | None, message: str) -> None:
        super().__init__(path, line, message)
        self.path = path
        self.line = line
        self.message = message

    def __str__(self) -> str:
        if self.path is None:
            return self.message
        if self.line is None:
            return f"{self.path}: {self.message}"
        return f"{self.path}:{self.line}: {self.message}"


class InvalidValue(ValueError):
    """A value is wrong.

    It never leaves ``config``: whoever knows where the value came from (a line of a
    file, an environment variable) turns it into a ``ConfigError``.
    """
