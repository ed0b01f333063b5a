"""Dataset-level edits of a conversion: tag removal, lossy marking, file meta.

Why apart from the pixel work: these are the gdcmconv options that make sense
without touching pixels (``--remove-private-tags``, ``--remove-retired``,
``--remove-gl``, ``--check-meta``), plus the bookkeeping PS3.3 requires once pixel
data has been lossy compressed (C.7.6.1.1.5).
"""

from __future__ import annotations

from pydicom.datadict import dictionary_is_retired
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, generate_uid

from config.identity import IMPLEMENTATION_CLASS_UID
from node import IMPLEMENTATION_VERSION_NAME

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "build_file_meta",
    "mark_lossy",
    "new_uid",
    "remove_group_lengths",
    "remove_retired",
]

#: The node's Implementation Class UID (the same value the DICOMDIR writer uses).

_LOSSY_CODE = ("113040", "DCM", "Lossy Compression")


def new_uid(root: str | None = None) -> UID:
    """A fresh UID under `root` (pydicom's root when None)."""
    if root:
        return generate_uid(prefix=root.rstrip(".") + ".")
    return generate_uid()


def _walk(ds: Dataset) -> list[Dataset]:
    """`ds` and every dataset nested in its sequences."""
    out = [ds]
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                out.extend(_walk(item))
    return out


def remove_retired(ds: Dataset) -> int:
    """Delete every element the data dictionary marks retired; return how many."""
    removed = 0
    for item in _walk(ds):
        for tag in [elem.tag for elem in item]:
            try:
                retired = dictionary_is_retired(tag)
            except KeyError:
                continue  # private or unknown: not ours to judge
            if retired:
                del item[tag]
                removed += 1
    return removed


def remove_group_lengths(ds: Dataset) -> int:
    """Delete every (gggg,0000) group length (retired since 2008) outside the file meta."""
    removed = 0
    for item in _walk(ds):
        for tag in [elem.tag for elem in item if elem.tag.element == 0 and elem.tag.group != 2]:
            del item[tag]
            removed += 1
    return removed


def mark_lossy(
    ds: Dataset,
    *,
    method: str,
    ratio: float | None,
    root_uid: str | None,
    description: str,
) -> None:
    """Record a lossy compression (PS3.3 C.7.6.1.1.5) and give the result a new identity.

    Ratios and methods are appended to what an earlier lossy step recorded, so the
    history stays readable. The original instance is referenced in the Source Image
    Sequence, the Image Type becomes DERIVED, and the SOP Instance UID is new.
    """
    from pydicom.valuerep import format_number_as_ds

    ds.LossyImageCompression = "01"
    if ratio is not None:
        ratios = [str(v) for v in _values(ds, "LossyImageCompressionRatio")]
        ratios.append(format_number_as_ds(round(ratio, 4)) or "1")
        ds.LossyImageCompressionRatio = ratios
    if method:
        methods = [str(v) for v in _values(ds, "LossyImageCompressionMethod")]
        methods.append(method)
        ds.LossyImageCompressionMethod = methods

    image_type = _values(ds, "ImageType")
    if image_type:
        ds.ImageType = ["DERIVED", *[str(v) for v in image_type[1:]]]
    old = str(ds.get("DerivationDescription", "") or "")
    text = f"{old}; {description}" if old else description
    ds.DerivationDescription = text[:1024]
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = _LOSSY_CODE
    codes = ds.get("DerivationCodeSequence") or Sequence()
    codes.append(code)
    ds.DerivationCodeSequence = codes

    if "SOPInstanceUID" in ds and "SOPClassUID" in ds:
        ref = Dataset()
        ref.ReferencedSOPClassUID = ds.SOPClassUID
        ref.ReferencedSOPInstanceUID = ds.SOPInstanceUID
        sources = ds.get("SourceImageSequence") or Sequence()
        sources.append(ref)
        ds.SourceImageSequence = sources
    ds.SOPInstanceUID = new_uid(root_uid)


def _values(ds: Dataset, keyword: str) -> list[object]:
    value = ds.get(keyword)
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes) or not hasattr(value, "__iter__"):
        return [value]
    return list(value)


def build_file_meta(ds: Dataset, syntax: UID, *, rebuild: bool) -> FileMetaDataset:
    """File Meta Information for writing `ds` in `syntax`.

    With ``rebuild`` (gdcmconv ``--check-meta``) everything is derived again from the
    dataset; otherwise the existing group is kept (source AE title, private
    information) and only what must change is updated. Either way the writer is us.
    """
    old = getattr(ds, "file_meta", None)
    meta = FileMetaDataset()
    if old is not None and not rebuild:
        for elem in old:
            if elem.tag.element != 0:  # pydicom recomputes the group length
                meta.add(elem)
    meta.FileMetaInformationVersion = b"\x00\x01"
    sop_class = ds.get("SOPClassUID") or (old.get("MediaStorageSOPClassUID") if old else None)
    sop_instance = ds.get("SOPInstanceUID") or (
        old.get("MediaStorageSOPInstanceUID") if old else None
    )
    if sop_class:
        meta.MediaStorageSOPClassUID = sop_class
    if sop_instance:
        meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta
