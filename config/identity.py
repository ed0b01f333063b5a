"""What this software calls itself in every file meta and association it writes.

Here, in the lowest layer, so that storage (file meta of received instances), the tools
(converted, anonymized, media files) and the node (associations) all say the same thing.
"""

#: Implementation Class UID (PS3.7 D.3.3.2), under our UID root.
IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.10.1471.1"
#: Implementation Version Name: at most 16 characters.
IMPLEMENTATION_VERSION_NAME = "DICOM_NODE_010"
