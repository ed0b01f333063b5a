"""Settings: the dcmqrscp.cfg parser (with our extensions) and the pydantic-settings model."""

from config.errors import ConfigError
from config.model import Settings
from config.settings import load

__all__ = ["ConfigError", "Settings", "load"]
