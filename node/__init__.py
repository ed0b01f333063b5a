"""dicom-node: the daemon and everything that speaks DICOM or runs work.

Subpackages: ``services`` (DIMSE handlers), ``tools`` (pure functions on files and
datasets), ``cli`` (``node-ctl``).  ``storage`` and ``config`` sit below this layer.
"""

__version__ = "0.1.0"

#: Our Implementation Class UID root and version name, sent in every association.
IMPLEMENTATION_VERSION_NAME = "DICOM_NODE_010"
