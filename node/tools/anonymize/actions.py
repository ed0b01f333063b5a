"""The de-identifier: Table E.1-1 applied to a ``pydicom.Dataset``, recursing into sequences.

Why one walker with three modes: the table applies at every nesting level (a Referenced
SOP Instance UID deep in a sequence is replaced like a top-level one), and three of its
actions on sequences change how the *other* text inside them is treated:

- NORMAL: attributes outside the table are kept;
- CLEAN (C on a sequence, e.g. Content Sequence with Clean Structured Content): free text
  outside the table is cleaned (``clean.clean_text``);
- DUMMY (D on a sequence, e.g. Content Sequence in the basic profile, Graphic Annotation
  Sequence): free text outside the table is replaced by a dummy, codes are kept, so an SR
  or a presentation state keeps its structure and loses its text.

Untouched elements are never decoded (they stay raw and are written back byte for byte).
Every top-level attribute that is about to change is first copied: those copies are the
item of the Modified Attributes Sequence that ``encrypted`` protects for re-identification.
"""

from __future__ import annotations

import copy
import enum
import hashlib
import hmac
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import BaseTag, Tag

from node.tools.anonymize._dicom import (
    ADDED_TAGS,
    BURNED_IN_ANNOTATION,
    ENCRYPTED_ATTRIBUTES,
    ISSUER_OF_PATIENT_ID,
    MEDIA_STORAGE_SOP_INSTANCE_UID,
    PATIENT_ID,
    PATIENT_NAME,
    SOP_CLASS_UID,
    SOP_INSTANCE_UID,
    charset_of,
)
from node.tools.anonymize._dicom import vr_of as _vr
from node.tools.anonymize.clean import IDENTIFYING_KEYWORDS, Identifiers, clean_text
from node.tools.anonymize.dates import patient_key, shift_da, shift_days, shift_dt
from node.tools.anonymize.encrypted import check_cipher, check_recipient, protect
from node.tools.anonymize.errors import BurnedInAnnotationError
from node.tools.anonymize.iod import IodTypes, load_iod_types
from node.tools.anonymize.profile import (
    EDITION,
    Action,
    Options,
    Profile,
    load_profile,
)
from node.tools.anonymize.uids import SecretUidMap, UidMap, is_well_known

__all__ = ["Deidentified", "Deidentifier", "deidentify"]

logger = logging.getLogger(__name__)

#: File meta attributes that name the sending system: dropped from de-identified files.
IDENTIFYING_META = (0x00020016, 0x00020017, 0x00020018, 0x00020100, 0x00020102)

FREE_TEXT_VRS = frozenset({"LO", "LT", "PN", "SH", "ST", "UC", "UT"})
TEXT_VRS = FREE_TEXT_VRS | {"AE"}
STRING_VRS = TEXT_VRS | {"AS", "CS", "DA", "DT", "TM", "UI", "UR"}
BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW"})

#: Coded values inside sequences: not free text, kept in CLEAN and DUMMY modes.
_CODE_TAGS = frozenset(
    tag_for_keyword(k) or 0
    for k in (
        "CodeValue",
        "CodingSchemeDesignator",
        "CodingSchemeVersion",
        "CodeMeaning",
        "LongCodeValue",
        "URNCodeValue",
        "ContextIdentifier",
        "ContextUID",
        "MappingResource",
        "MappingResourceName",
        "MappingResourceUID",
        "ContextGroupVersion",
        "ContextGroupLocalVersion",
        "ContextGroupExtensionCreatorUID",
        "TemplateIdentifier",
        "TemplateVersion",
        "ValueType",
        "RelationshipType",
        "ContinuityOfContent",
        "GraphicType",
        "MeasurementUnitsCodeSequence",
    )
)

_DUMMY: dict[str, Any] = {
    "AE": "ANONYMIZED",
    "AS": "000Y",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UR": "http://anonymized.invalid",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "UL": 0,
    "US": 0,
    "SV": 0,
    "UV": 0,
    "AT": 0,
}


class _Mode(enum.Enum):
    NORMAL = "normal"
    CLEAN = "clean"
    DUMMY = "dummy"


@dataclass
class Deidentified:
    """What ``Deidentifier.deidentify`` returns.

    ``modified`` holds the original value of every top-level attribute that was replaced or
    removed (sequences whole), plus SOP Instance UID: the single item of the Modified
    Attributes Sequence (0400,0550) used for re-identification.
    """

    dataset: Dataset
    modified: Dataset
    notes: list[str] = field(default_factory=list)


@dataclass
class _Run:
    """State of one instance being de-identified."""

    root: Dataset
    sop_class: str
    patient_key: bytes
    shift: int
    identifiers: Identifiers
    initial: dict[int, Any] | None = None
    snapshots: dict[int, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str | bytes | list | MultiValue):
        return len(value) == 0 or (isinstance(value, str) and not value.strip("\0 "))
    return False


def _values(value: Any) -> list[Any]:
    if isinstance(value, list | MultiValue):
        return list(value)
    return [value]


class Deidentifier:
    """De-identify datasets with one profile configuration, consistently across calls.

    Parameters
    ----------
    options
        Table E.1-1 options and policies.
    secret
        Key of every derivation (UIDs unless ``uid_map`` is given, date shifts, patient
        pseudonyms).  The same secret gives the same output; None draws a random one, so
        results are consistent within this object only.
    uid_map
        Where new UIDs come from (default: ``SecretUidMap(secret, root_uid)``).
    root_uid
        Root of generated UIDs (default ``2.25.``) when ``uid_map`` is not given.
    recipients
        Certificates to encrypt the original attributes for (reversible de-identification,
        Encrypted Attributes Sequence).  Empty: irreversible.
    cipher
        ``"aes128"`` (default) or ``"aes256"``: content encryption of the CMS envelope.
    """

    def __init__(
        self,
        options: Options | None = None,
        *,
        secret: bytes | None = None,
        uid_map: UidMap | None = None,
        root_uid: str | None = None,
        recipients: Sequence[x509.Certificate] = (),
        cipher: str = "aes128",
        profile: Profile | None = None,
        iod_types: IodTypes | None = None,
    ) -> None:
        self.options = options or Options()
        self.options.validate()
        self.secret = secret if secret else os.urandom(32)
        self.uid_map: UidMap = uid_map or SecretUidMap(self.secret, root_uid)
        self.recipients = list(recipients)
        self.cipher = cipher
        if self.recipients:
            check_cipher(cipher)
            for cert in self.recipients:
                check_recipient(cert)
        self.profile = profile or load_profile()
        self.iod = iod_types or load_iod_types()
        self.selected = self.options.selected()
        self.actions = self.profile.actions(self.selected)
        self._masked = [
            (mask, value, rule.resolve(self.selected)) for mask, value, rule in self.profile.masked
        ]
        self._needs_identifiers = Action.CLEAN_TEXT in self.actions.values()
        self._safe = self.options.safe_private if self.options.retain_safe_private else frozenset()

    # -- public -------------------------------------------------------------------------

    def deidentify(
        self, ds: Dataset, *, in_place: bool = False, pixels_cleaned: bool = False
    ) -> Deidentified:
        """De-identify ``ds`` (a copy unless ``in_place``); see ``Deidentified``.

        Raises ``BurnedInAnnotationError`` when Burned In Annotation is YES and the options
        do not allow it, and ``ProtectionError`` when encryption fails.
        """
        burned = ds.get(BURNED_IN_ANNOTATION)
        if (
            burned is not None
            and str(burned.value or "").strip().upper() == "YES"
            and not self.options.allow_burned_in
        ):
            raise BurnedInAnnotationError(
                "Burned In Annotation is YES: refused (allow it explicitly once the pixel "
                "data is clean, e.g. after --fill-region)"
            )
        work = ds if in_place else copy.deepcopy(ds)
        pid = work.get(PATIENT_ID)
        issuer = work.get(ISSUER_OF_PATIENT_ID)
        key = patient_key(
            str(pid.value or "") if pid is not None else "",
            str(issuer.value or "") if issuer is not None else "",
        )
        sop_class = work.get(SOP_CLASS_UID)
        run = _Run(
            root=work,
            sop_class=str(sop_class.value or "").strip("\0 ") if sop_class is not None else "",
            patient_key=key,
            shift=shift_days(self.secret, key),
            identifiers=Identifiers(),
        )
        if self.recipients:
            # Raw elements are immutable: keeping them is free, copying is not.
            run.initial = {t: work.get_item(t) for t in work.keys()}
        if self._needs_identifiers:
            self._collect(work, run.identifiers)
        originals_added = {t: copy.deepcopy(work[t]) for t in ADDED_TAGS if t in work}
        sop_instance = copy.deepcopy(work[SOP_INSTANCE_UID]) if SOP_INSTANCE_UID in work else None

        self._remove_curves_overlays(work, run)
        self._walk(work, (), run, _Mode.NORMAL)
        self._add_method(work, pixels_cleaned)

        charset = charset_of(work)
        elements: dict[BaseTag, Any] = {
            Tag(t): _explicit_le(e, charset) if isinstance(e, RawDataElement) else e
            for t, e in run.snapshots.items()
            if e is not None
        }
        elements.update((Tag(t), e) for t, e in originals_added.items())
        if sop_instance is not None and SOP_INSTANCE_UID not in elements:
            # gdcmanon -d refuses an item without SOP Instance UID, even when it is kept.
            elements[Tag(SOP_INSTANCE_UID)] = sop_instance
        # Built from the dict directly and declared Explicit VR Little Endian, the encoding
        # of the Encrypted Content: raw elements are then written as they are.
        modified = Dataset(elements, parent_encoding=charset)
        modified.set_original_encoding(False, True, charset)
        self._fix_meta(work, run)
        if self.recipients:
            if ENCRYPTED_ATTRIBUTES in work and ENCRYPTED_ATTRIBUTES not in modified:
                # An earlier de-identification's envelope: kept inside ours (nested).
                modified[ENCRYPTED_ATTRIBUTES] = copy.deepcopy(work[ENCRYPTED_ATTRIBUTES])
            protect(work, modified, self.recipients, self.cipher)
        return Deidentified(work, modified, run.notes)

    # -- walking --------------------------------------------------------------------------

    def _walk(self, ds: Dataset, path: tuple[int, ...], run: _Run, mode: _Mode) -> None:
        self._privates(ds, path, run)
        for tag in list(ds.keys()):
            if (tag >> 16) & 1:
                continue
            if not tag & 0xFFFF:
                del ds[tag]  # group lengths: retired, and stale once anything changes
                continue
            action = self.actions.get(tag)
            if action is None and (tag >> 24) in (0x50, 0x60):
                action = self._masked_action(tag)
            if action is None:
                vr = _vr(ds, tag)
                if vr == "SQ":
                    self._recurse(ds, tag, path, run, mode)
                elif mode is not _Mode.NORMAL and vr in FREE_TEXT_VRS and tag not in _CODE_TAGS:
                    if mode is _Mode.DUMMY:
                        self._set_dummy(ds, tag, vr, path, run)
                    else:
                        self._clean(ds, tag, path, run)
                continue
            self._apply(ds, tag, action, path, run, mode)

    def _masked_action(self, tag: int) -> Action | None:
        for mask, value, action in self._masked:
            if tag & mask == value:
                return action
        return None

    def _recurse(
        self, ds: Dataset, tag: int, path: tuple[int, ...], run: _Run, mode: _Mode
    ) -> None:
        items = ds[tag].value
        if not items:
            return
        for item in items:
            self._walk(item, (*path, tag), run, mode)

    def _before_change(self, path: tuple[int, ...], tag: int, run: _Run) -> None:
        """Call before modifying ``tag`` at ``path``: snapshot its top-level attribute."""
        top = path[0] if path else tag
        if run.initial is None or top in run.snapshots:
            return
        original = run.initial.get(top)
        if isinstance(original, DataElement):
            original = _snapshot(original, charset_of(run.root))
        run.snapshots[top] = original

    def _resolve(self, action: Action, path: tuple[int, ...], run: _Run) -> Action:
        """Pick the part of a compound action the IOD needs (PS3.15 E.1.1, note on X/Z...).

        X/Z/U* (Referenced Image Sequence, Source Image Sequence) always takes U: the
        sequence stays with every UID inside replaced, which keeps the references of
        segmentations, SRs and presentation states and the conditions (1C) that depend on
        them valid, and leaves nothing identifying (the rest of each item is processed by
        the table like any other item).
        """
        if action is Action.X_Z_U:
            return Action.UID
        kind = self.iod.type_of(run.sop_class, path)
        letters = action.value.replace("*", "").split("/")
        if kind in ("1", "1C"):
            if "D" in letters:
                return Action.DUMMY
            return Action.UID if "U" in letters else Action.DUMMY
        if kind in ("2", "2C"):
            return Action.ZERO if "Z" in letters else Action.DUMMY
        return Action.REMOVE

    def _basic(self, tag: int, path: tuple[int, ...], run: _Run) -> Action:
        rule = self.profile.rule(tag)
        action = Action(rule.basic) if rule is not None else Action.REMOVE
        return self._resolve(action, (*path, tag), run) if action.is_compound else action

    def _apply(
        self,
        ds: Dataset,
        tag: int,
        action: Action,
        path: tuple[int, ...],
        run: _Run,
        mode: _Mode,
    ) -> None:
        vr = _vr(ds, tag)
        if action.is_compound:
            action = self._resolve(action, (*path, tag), run)
        if action is Action.SHIFT_DATE:
            if vr in ("DA", "DT"):
                self._shift(ds, tag, vr, path, run)
                return
            if vr == "TM":
                return  # a whole-day shift leaves times of day unchanged
            action = self._basic(tag, path, run)
        if action is Action.CLEAN_TEXT:
            if vr == "SQ":
                self._recurse(ds, tag, path, run, _Mode.CLEAN)
                return
            if vr in TEXT_VRS:
                self._clean(ds, tag, path, run)
                return
            if vr not in BINARY_VRS:
                return  # numbers and codes: nothing that can hold a name
            action = self._basic(tag, path, run)
        if action is Action.KEEP:
            if vr == "SQ":
                self._recurse(ds, tag, path, run, mode)
            return
        if action is Action.REMOVE:
            self._before_change(path, tag, run)
            del ds[tag]
            return
        if action is Action.ZERO:
            self._set_zero(ds, tag, vr, path, run)
            return
        if action is Action.UID:
            if vr == "UI":
                self._map_uids(ds, tag, path, run)
                return
            if vr == "SQ":
                self._recurse(ds, tag, path, run, mode)
                return
        if vr == "SQ":
            self._recurse(ds, tag, path, run, _Mode.DUMMY)
        elif vr == "UI":
            self._map_uids(ds, tag, path, run)
        else:
            self._set_dummy(ds, tag, vr, path, run)

    # -- the actions ----------------------------------------------------------------------

    def _pseudonym(self, tag: int, path: tuple[int, ...], value: str, run: _Run) -> str:
        """A consistent stand-in for Patient's Name / Patient ID, keyed by the patient."""
        if path:
            key = patient_key(value)
        elif tag == PATIENT_NAME and run.patient_key.startswith(b"\0"):
            key = b"name\0" + value.encode("utf-8", "surrogateescape")  # no Patient ID
        else:
            key = run.patient_key
        digest = hmac.new(self.secret, b"patient\0" + key, hashlib.sha256).hexdigest()
        token = digest[:12].upper()
        return f"ANON^{token}" if tag == PATIENT_NAME else f"ANON{token}"

    def _set_zero(self, ds: Dataset, tag: int, vr: str, path: tuple[int, ...], run: _Run) -> None:
        elem = ds[tag]
        if _empty(elem.value):
            return
        if tag in (PATIENT_NAME, PATIENT_ID) and self.options.pseudonymize_patient:
            self._before_change(path, tag, run)
            elem.value = self._pseudonym(tag, path, str(_values(elem.value)[0]), run)
            return
        self._before_change(path, tag, run)
        if vr == "SQ":
            elem.value = []
        elif vr in BINARY_VRS:
            elem.value = b""
        elif vr in STRING_VRS:
            elem.value = ""
        else:
            elem.value = None

    def _set_dummy(self, ds: Dataset, tag: int, vr: str, path: tuple[int, ...], run: _Run) -> None:
        elem = ds[tag]
        if _empty(elem.value):
            return
        if tag in (PATIENT_NAME, PATIENT_ID) and self.options.pseudonymize_patient:
            new: Any = self._pseudonym(tag, path, str(_values(elem.value)[0]), run)
        elif vr in BINARY_VRS:
            new = b"\0" * 8
        else:
            new = _DUMMY.get(vr, "ANONYMIZED")
        if elem.value == new:
            return
        self._before_change(path, tag, run)
        elem.value = new

    def _map_uids(self, ds: Dataset, tag: int, path: tuple[int, ...], run: _Run) -> None:
        elem = ds[tag]
        if _empty(elem.value):
            return
        old = [str(v).strip("\0 ") for v in _values(elem.value)]
        new = [v if not v or is_well_known(v) else self.uid_map.replace(v) for v in old]
        if new == old:
            return
        self._before_change(path, tag, run)
        elem.value = new if len(new) > 1 else new[0]

    def _shift(self, ds: Dataset, tag: int, vr: str, path: tuple[int, ...], run: _Run) -> None:
        elem = ds[tag]
        if _empty(elem.value):
            return
        shift = shift_da if vr == "DA" else shift_dt
        old = [str(v) for v in _values(elem.value)]
        new: list[str] = []
        for value in old:
            moved = shift(value, run.shift)
            if moved is None:
                run.notes.append(f"{keyword_for_tag(tag) or hex(tag)}: {vr} not a date, emptied")
                moved = ""
            new.append(moved)
        if new == old:
            return
        self._before_change(path, tag, run)
        elem.value = new if len(new) > 1 else new[0]

    def _clean(self, ds: Dataset, tag: int, path: tuple[int, ...], run: _Run) -> None:
        elem = ds[tag]
        if _empty(elem.value):
            return
        old = [str(v) for v in _values(elem.value)]
        new = [clean_text(v, run.identifiers) for v in old]
        if new == old:
            return
        self._before_change(path, tag, run)
        elem.value = new if len(new) > 1 else new[0]

    def _privates(self, ds: Dataset, path: tuple[int, ...], run: _Run) -> None:
        tags = [t for t in ds.keys() if (t >> 16) & 1]
        if not tags:
            return
        keep: set[int] = set()
        if self._safe:
            from node.tools.anonymize.profile import PrivateTag

            creators: dict[tuple[int, int], str] = {}
            for t in tags:
                if 0x10 <= t & 0xFFFF <= 0xFF:
                    creators[(t >> 16, t & 0xFFFF)] = str(ds[t].value or "").strip()
            for t in tags:
                element = t & 0xFFFF
                if element < 0x1000:
                    continue
                group, block = t >> 16, element >> 8
                creator = creators.get((group, block))
                if creator and PrivateTag(group, creator, element & 0xFF) in self._safe:
                    keep.update((t, (group << 16) | block))
        for t in tags:
            if not t & 0xFFFF:
                del ds[t]
                continue
            if t in keep:
                if (t & 0xFFFF) >= 0x1000 and _vr(ds, t) == "SQ":
                    self._recurse(ds, t, path, run, _Mode.NORMAL)
                continue
            self._before_change(path, t, run)
            del ds[t]

    def _remove_curves_overlays(self, ds: Dataset, run: _Run) -> None:
        """Curves (50xx) and overlays (60xx) go whole: removing Overlay Data alone would
        leave an Overlay Plane module without its Type 1 data."""
        overlay_action = self._masked_action(0x60003000)
        overlay_groups = {
            t >> 16
            for t in ds.keys()
            if (t >> 24) == 0x60 and (t & 0xFFFF) == 0x3000 and (t >> 16) % 2 == 0
        }
        for t in list(ds.keys()):
            group = t >> 16
            if group % 2:
                continue
            curve = (group >> 8) == 0x50 and self._masked_action(t) is Action.REMOVE
            overlay = group in overlay_groups and overlay_action is Action.REMOVE
            if curve or overlay:
                self._before_change((), t, run)
                del ds[t]

    def _collect(self, ds: Dataset, identifiers: Identifiers) -> None:
        """Gather the instance's names, IDs, addresses... before anything changes."""
        for tag in list(ds.keys()):
            if (tag >> 16) & 1:
                continue
            vr = _vr(ds, tag)
            if vr == "SQ":
                for item in ds[tag].value or []:
                    self._collect(item, identifiers)
            elif vr == "PN" or keyword_for_tag(tag) in IDENTIFYING_KEYWORDS:
                value = ds[tag].value
                if not _empty(value):
                    identifiers.update((str(v) for v in _values(value)), person_name=vr == "PN")

    def _add_method(self, ds: Dataset, pixels_cleaned: bool) -> None:
        """Patient Identity Removed, De-identification Method (+ codes), PS3.15 E.1.1 6."""
        ds.PatientIdentityRemoved = "YES"
        names = ["Basic Application Confidentiality Profile", f"PS3.15 Table E.1-1 {EDITION}"]
        codes = [("113100", "Basic Application Confidentiality Profile")]
        if pixels_cleaned:
            codes.append(("113101", "Clean Pixel Data Option"))
            names.append("Clean Pixel Data Option")
        for option in sorted(self.selected, key=lambda o: o.code):
            codes.append((option.code, option.meaning))
            names.append(option.meaning)
        ds.DeidentificationMethod = names
        items = []
        for value, meaning in codes:
            item = Dataset()
            item.CodeValue = value
            item.CodingSchemeDesignator = "DCM"
            item.CodeMeaning = meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = DicomSequence(items)
        if self.options.retain_modified_dates:
            ds.LongitudinalTemporalInformationModified = "MODIFIED"
        elif self.options.retain_full_dates:
            ds.LongitudinalTemporalInformationModified = "UNMODIFIED"
        else:
            ds.LongitudinalTemporalInformationModified = "REMOVED"

    def _fix_meta(self, ds: Dataset, run: _Run) -> None:
        """File meta: drop the sender's names, keep Media Storage SOP Instance UID in step."""
        meta = getattr(ds, "file_meta", None)
        if meta is None:
            return
        for tag in IDENTIFYING_META:
            if tag in meta:
                del meta[tag]
        if SOP_INSTANCE_UID in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        elif (
            "MediaStorageSOPInstanceUID" in meta
            and self.actions.get(SOP_INSTANCE_UID) is not Action.KEEP
        ):
            self._map_uids(meta, MEDIA_STORAGE_SOP_INSTANCE_UID, (), run)


#: VRs whose explicit encoding has a 16-bit length.
_SHORT_LENGTH_VRS = frozenset(
    "AE AS AT CS DA DS DT FL FD IS LO LT PN SH SL SS ST TM UI UL US".split()
)


def _explicit_le(elem: RawDataElement, charset: str | list[str]) -> Any:
    """``elem`` in a form pydicom writes to Explicit VR Little Endian without decoding it.

    Why: an implicit VR file's values are the same bytes in explicit VR; only the VR is
    missing.  Decoding (a RT structure set has hundreds of thousands of coordinates) and
    encoding them again would cost more than the whole rest of the de-identification.
    Sequences, big endian values and ambiguous VRs are decoded.
    """
    if elem.is_little_endian and not elem.is_implicit_VR and elem.VR:
        return elem
    if elem.is_little_endian and elem.length != 0xFFFFFFFF:
        vr = elem.VR
        if vr is None:
            try:
                vr = str(dictionary_VR(elem.tag))
            except KeyError:
                vr = "UN"
        if vr != "SQ":
            too_long = vr in _SHORT_LENGTH_VRS and len(elem.value or b"") > 0xFFFF
            if " or " in vr or too_long:
                vr = "UN"  # what gdcmanon writes too; re-identification decodes it
            return elem._replace(VR=vr, is_implicit_VR=False)
    converted = convert_raw_data_element(elem, encoding=charset)
    if converted.VR == "SQ":
        return _snapshot(converted, charset)
    if " or " in converted.VR:
        converted.VR = "OW" if "OW" in converted.VR else converted.VR.split(" or ")[0]
    return converted


def _snapshot(elem: DataElement, charset: str | list[str]) -> DataElement:
    """A copy of ``elem`` safe from the changes the walker makes, cheaper than deepcopy.

    Raw elements are immutable and shared (in their Explicit VR Little Endian form); the
    walker only ever replaces values, deletes elements or edits items, so data elements
    are copied shallowly and sequences item by item (pydicom parses sequences of
    undefined length eagerly, so they are rarely raw).
    """
    if elem.VR != "SQ":
        return copy.copy(elem)
    items = []
    for item in elem.value or []:
        members: dict[BaseTag, Any] = {}
        for tag in item.keys():
            e = item.get_item(tag)
            if isinstance(e, RawDataElement):
                members[tag] = _explicit_le(e, charset)
            else:
                members[tag] = _snapshot(e, charset)
        copied = Dataset(members, parent_encoding=charset)
        copied.set_original_encoding(False, True, charset)
        items.append(copied)
    new = DataElement(elem.tag, "SQ", DicomSequence(items))
    new.is_undefined_length = elem.is_undefined_length
    return new


def deidentify(
    ds: Dataset,
    options: Options | None = None,
    *,
    secret: bytes | None = None,
    uid_map: UidMap | None = None,
    root_uid: str | None = None,
    in_place: bool = False,
) -> Dataset:
    """One-shot form of ``Deidentifier(...).deidentify(ds).dataset`` (irreversible)."""
    engine = Deidentifier(options, secret=secret, uid_map=uid_map, root_uid=root_uid)
    return engine.deidentify(ds, in_place=in_place).dataset
