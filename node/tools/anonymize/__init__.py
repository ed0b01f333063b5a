"""De-identification (PS3.15 Annex E), reversible with a certificate, and gdcmanon's modes.

Library API, used by ``node-ctl anonymize`` and by server-side jobs::

    engine = Deidentifier(Options(retain_modified_dates=True), secret=key, recipients=[cert])
    result = engine.deidentify(ds)            # result.dataset, result.modified, result.notes
    original = reidentify(result.dataset, private_key)

Modules: ``profile`` (Table E.1-1 and its options), ``iod`` (Type 1/2 per IOD), ``actions``
(the de-identifier), ``uids`` (consistent UID maps), ``dates`` (per-patient date shift),
``clean`` (free-text cleaning), ``encrypted`` (Encrypted Attributes Sequence, CMS),
``dumb`` (gdcmanon --dumb edits), ``fill`` (blanking burned-in text), ``files`` (file and
directory driver).  Errors: see ``errors``.
"""

from node.tools.anonymize.actions import Deidentified, Deidentifier, deidentify
from node.tools.anonymize.dumb import DumbEdit, EditKind, apply_edits, parse_edit
from node.tools.anonymize.encrypted import (
    load_certificate,
    load_private_key,
    reidentify,
)
from node.tools.anonymize.errors import (
    AnonymizeError,
    BurnedInAnnotationError,
    CertificateError,
    NotDicomError,
    OptionError,
    PixelDataError,
    ProtectionError,
    RefusedError,
    ReidentifyError,
    Type1AttributeError,
)
from node.tools.anonymize.files import (
    FileOutcome,
    Summary,
    process_file,
    process_tree,
    read_dicom,
    write_dicom,
)
from node.tools.anonymize.fill import FillReport, Region, fill_regions
from node.tools.anonymize.profile import EDITION, Option, Options, PrivateTag, load_profile
from node.tools.anonymize.uids import (
    JsonUidStore,
    MemoryUidStore,
    SecretUidMap,
    StoredUidMap,
    UidMap,
    UidStore,
)

__all__ = [
    "EDITION",
    "AnonymizeError",
    "BurnedInAnnotationError",
    "CertificateError",
    "Deidentified",
    "Deidentifier",
    "DumbEdit",
    "EditKind",
    "FileOutcome",
    "FillReport",
    "JsonUidStore",
    "MemoryUidStore",
    "NotDicomError",
    "Option",
    "OptionError",
    "Options",
    "PixelDataError",
    "PrivateTag",
    "ProtectionError",
    "RefusedError",
    "Region",
    "ReidentifyError",
    "SecretUidMap",
    "StoredUidMap",
    "Summary",
    "Type1AttributeError",
    "UidMap",
    "UidStore",
    "apply_edits",
    "deidentify",
    "fill_regions",
    "load_certificate",
    "load_private_key",
    "load_profile",
    "parse_edit",
    "process_file",
    "process_tree",
    "read_dicom",
    "reidentify",
    "write_dicom",
]
