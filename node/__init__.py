"""dicom-node: the daemon and everything that speaks DICOM or runs work.

Subpackages: ``services`` (DIMSE handlers), ``tools`` (pure functions on files and
datasets), ``cli`` (``node-ctl``).  ``storage`` and ``config`` sit below this layer.
"""

from config.identity import IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME

__version__ = "0.1.0"

__all__ = ["IMPLEMENTATION_CLASS_UID", "IMPLEMENTATION_VERSION_NAME", "__version__"]
