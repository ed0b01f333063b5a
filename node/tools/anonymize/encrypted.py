"""Reversible de-identification: the Encrypted Attributes Sequence (0400,0500), PS3.15 E.1.1/E.1.2.

What goes in, byte for byte as ``gdcmanon -e`` does it (GDCM ``Anonymizer``): one item with
Encrypted Content Transfer Syntax UID (0400,0510) = Explicit VR Little Endian, and
Encrypted Content (0400,0520) = a CMS EnvelopedData (RFC 5652, DER) whose content is the
Explicit VR Little Endian encoding of a single data element, the Modified Attributes
Sequence (0400,0550) holding one item with the original values of the attributes that
were replaced or removed.  Key transport is RSA (PKCS #1 v1.5) to the certificate's key.

Encryption uses ``cryptography``'s CMS builder (``PKCS7EnvelopeBuilder``), which offers
AES-128-CBC and AES-256-CBC only: so do we.  3DES is not offered (64-bit blocks, withdrawn
by NIST for encryption) and AES-192 is not offered (the builder lacks it and it buys
nothing over AES-256).  Decryption is done here on top of ``cryptography``'s primitives,
because the library's CMS decryption needs the certificate (``gdcmanon -d`` needs only the
key) and refuses the even-length padding byte DICOM adds after the DER: it reads all
four ciphers PS3.15 requires a re-identifier to read (AES-128/192/256-CBC and 3DES-CBC),
so ``gdcmanon --des3`` and ``--aes192`` output re-identifies too.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7
from pydicom.charset import convert_encodings
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement, convert_raw_data_element
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_sequence_item
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import SequenceDelimiterTag, Tag
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from node.tools.anonymize._dicom import (
    ADDED_TAGS,
    ENCRYPTED_ATTRIBUTES,
    MODIFIED_ATTRIBUTES,
    charset_of,
)
from node.tools.anonymize.errors import (
    CertificateError,
    OptionError,
    ProtectionError,
    ReidentifyError,
)

__all__ = [
    "CIPHERS",
    "check_cipher",
    "check_recipient",
    "decode_modified_attributes",
    "encode_modified_attributes",
    "load_certificate",
    "load_private_key",
    "open_envelope",
    "protect",
    "reidentify",
    "seal_envelope",
]


#: Content encryption offered for ``-e`` (see the module docstring for 3DES and AES-192).
CIPHERS = {"aes128": algorithms.AES128, "aes256": algorithms.AES256}

_OID_ENVELOPED_DATA = "1.2.840.113549.1.7.3"
_OID_RSA = "1.2.840.113549.1.1.1"
_OID_RSA_OAEP = "1.2.840.113549.1.1.7"
_CONTENT_CIPHERS = {
    "2.16.840.1.101.3.4.1.2": ("AES-128-CBC", 16),
    "2.16.840.1.101.3.4.1.22": ("AES-192-CBC", 24),
    "2.16.840.1.101.3.4.1.42": ("AES-256-CBC", 32),
    "1.2.840.113549.3.7": ("DES-EDE3-CBC", 24),
}


# -- keys and certificates --------------------------------------------------------------


def check_cipher(name: str) -> None:
    """Raise ``OptionError`` unless ``name`` is a content cipher we encrypt with."""
    if name not in CIPHERS:
        raise OptionError(
            f"cipher {name!r} not offered for encryption: use aes128 (default) or aes256 "
            "(3DES is withdrawn for encryption and AES-192 is not in the CMS library we use; "
            "both are still read when re-identifying)"
        )


def check_recipient(cert: x509.Certificate) -> None:
    """Raise ``CertificateError`` unless ``cert`` carries an RSA key (PS3.15 E.1.1 4)."""
    if not isinstance(cert.public_key(), rsa.RSAPublicKey):
        raise CertificateError("the certificate's key is not RSA (PS3.15 requires RSA)")


def load_certificate(path: Path) -> x509.Certificate:
    """An X.509 certificate from a PEM or DER file."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"certificate {path}: {exc.strerror or exc}") from None
    try:
        cert = (
            x509.load_pem_x509_certificate(data)
            if b"-----BEGIN" in data
            else x509.load_der_x509_certificate(data)
        )
    except ValueError as exc:
        raise CertificateError(f"certificate {path}: not a readable X.509 certificate") from exc
    check_recipient(cert)
    return cert


def load_private_key(path: Path, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from a PEM or DER file (PKCS #1 or PKCS #8)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CertificateError(f"private key {path}: {exc.strerror or exc}") from None
    try:
        key = (
            serialization.load_pem_private_key(data, password)
            if b"-----BEGIN" in data
            else serialization.load_der_private_key(data, password)
        )
    except TypeError as exc:
        raise CertificateError(f"private key {path}: {exc}") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CertificateError(f"private key {path}: not readable (wrong password?)") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise CertificateError(f"private key {path}: not an RSA key")
    return key


# -- the Modified Attributes Sequence as bytes -------------------------------------------


def encode_modified_attributes(item: Dataset, charset: str | list[str] = "iso8859") -> bytes:
    """The Modified Attributes Sequence with ``item``, Explicit VR Little Endian.

    Written element by element rather than through a holder data set: pydicom would decode
    every raw element of the item to check for ambiguous VRs, where raw Explicit VR Little
    Endian elements can be copied as they are.
    """
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    fp.write_tag(Tag(MODIFIED_ATTRIBUTES))
    fp.write(b"SQ\0\0")
    fp.write_UL(0xFFFFFFFF)
    write_sequence_item(fp, item, convert_encodings(charset))
    fp.write_tag(SequenceDelimiterTag)
    fp.write_UL(0)
    return fp.getvalue()


def decode_modified_attributes(
    data: bytes, transfer_syntax: str, charset: str | list[str] = "iso8859"
) -> Dataset:
    """The item of the Modified Attributes Sequence encoded in ``data``."""
    syntaxes = {
        ExplicitVRLittleEndian: (False, True),
        ImplicitVRLittleEndian: (True, True),
        ExplicitVRBigEndian: (False, False),
    }
    if transfer_syntax not in syntaxes:
        raise ReidentifyError(f"Encrypted Content Transfer Syntax {transfer_syntax} not supported")
    implicit, little = syntaxes[transfer_syntax]
    try:
        decoded = read_dataset(BytesIO(data), implicit, little, parent_encoding=charset)
        seq = decoded[MODIFIED_ATTRIBUTES].value
    except Exception as exc:  # pydicom raises many types on garbage
        raise ReidentifyError(f"decrypted content is not a DICOM data set: {exc}") from None
    if len(seq) != 1:
        raise ReidentifyError(f"Modified Attributes Sequence has {len(seq)} items, expected 1")
    item: Dataset = seq[0]
    return item


# -- CMS EnvelopedData ------------------------------------------------------------------


def seal_envelope(
    data: bytes, recipients: Sequence[x509.Certificate], cipher: str = "aes128"
) -> bytes:
    """CMS EnvelopedData (DER) of ``data`` for ``recipients``."""
    check_cipher(cipher)
    builder = pkcs7.PKCS7EnvelopeBuilder().set_data(data)
    for cert in recipients:
        builder = builder.add_recipient(cert)
    builder = builder.set_content_encryption_algorithm(CIPHERS[cipher])
    try:
        return builder.encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary])
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProtectionError(f"CMS encryption failed: {exc}") from exc


@dataclass
class _Node:
    tag: int
    constructed: bool
    value: bytes
    children: list[_Node]

    def octets(self) -> bytes:
        """Content of an OCTET STRING, joining the chunks of a constructed (BER) one."""
        if not self.constructed:
            return self.value
        return b"".join(child.octets() for child in self.children)


def _parse(data: bytes, pos: int, end: int) -> tuple[_Node, int]:
    """One BER TLV at ``pos`` (definite or indefinite length)."""
    if pos + 2 > end:
        raise ValueError("truncated")
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        while data[pos] & 0x80:
            pos += 1
        pos += 1
    first = data[pos]
    pos += 1
    constructed = bool(tag & 0x20)
    if first == 0x80:
        if not constructed:
            raise ValueError("indefinite length on a primitive")
        children: list[_Node] = []
        while data[pos : pos + 2] != b"\0\0":
            child, pos = _parse(data, pos, end)
            children.append(child)
        return _Node(tag, True, b"", children), pos + 2
    if first & 0x80:
        count = first & 0x7F
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    else:
        length = first
    stop = pos + length
    if stop > end:
        raise ValueError("length beyond the data")
    if not constructed:
        return _Node(tag, False, data[pos:stop], []), stop
    children = []
    while pos < stop:
        child, pos = _parse(data, pos, stop)
        children.append(child)
    return _Node(tag, True, b"", children), stop


def _oid(node: _Node) -> str:
    if node.tag != 0x06:
        raise ValueError("expected an OBJECT IDENTIFIER")
    raw = node.value
    parts = [raw[0] // 40, raw[0] % 40] if raw[0] < 80 else [2, raw[0] - 80]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _unpad(data: bytes, block: int) -> bytes:
    if not data or len(data) % block:
        raise ValueError("bad length")
    count = data[-1]
    if not 1 <= count <= block or data[-count:] != bytes([count]) * count:
        raise ValueError("bad padding")
    return data[:-count]


def open_envelope(der: bytes, key: rsa.RSAPrivateKey) -> bytes:
    """Decrypt a CMS EnvelopedData with an RSA private key (trailing bytes are ignored)."""
    try:
        info, _ = _parse(der, 0, len(der))
        if _oid(info.children[0]) != _OID_ENVELOPED_DATA:
            raise ReidentifyError("Encrypted Content is not a CMS EnvelopedData")
        enveloped = info.children[1].children[0]
        recipients = next(c for c in enveloped.children if c.tag == 0x31)
        content_info = next(c for c in enveloped.children if c.tag == 0x30)
        algorithm = content_info.children[1]
        cipher_oid = _oid(algorithm.children[0])
        iv = algorithm.children[1].octets()
        encrypted = content_info.children[2].octets()
    except (ValueError, IndexError, StopIteration) as exc:
        raise ReidentifyError(f"Encrypted Content is not readable CMS: {exc}") from None
    if cipher_oid not in _CONTENT_CIPHERS:
        raise ReidentifyError(f"content cipher {cipher_oid} not supported")
    name, key_size = _CONTENT_CIPHERS[cipher_oid]
    for recipient in recipients.children:
        if recipient.tag != 0x30:  # only KeyTransRecipientInfo carries an RSA key
            continue
        try:
            key_oid = _oid(recipient.children[2].children[0])
            wrapped = recipient.children[3].octets()
        except (ValueError, IndexError):
            continue
        if key_oid == _OID_RSA:
            pad: padding.AsymmetricPadding = padding.PKCS1v15()
        elif key_oid == _OID_RSA_OAEP:
            pad = padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None)
        else:
            continue
        try:
            content_key = key.decrypt(wrapped, pad)
        except ValueError:
            continue
        if len(content_key) != key_size:
            continue  # not our key (RSA implicit rejection returns random bytes)
        if name == "DES-EDE3-CBC":
            algo: algorithms.AES | TripleDES = TripleDES(content_key)
            block = 8
        else:
            algo = algorithms.AES(content_key)
            block = 16
        decryptor = Cipher(algo, modes.CBC(iv)).decryptor()
        try:
            return _unpad(decryptor.update(encrypted) + decryptor.finalize(), block)
        except ValueError:
            continue
    raise ReidentifyError("no recipient of the Encrypted Content matches this private key")


# -- dataset level ----------------------------------------------------------------------


def protect(
    ds: Dataset,
    modified: Dataset,
    recipients: Sequence[x509.Certificate],
    cipher: str = "aes128",
) -> None:
    """Set the Encrypted Attributes Sequence of ``ds`` to protect ``modified``."""
    plain = encode_modified_attributes(modified, charset_of(ds))
    item = Dataset()
    item.EncryptedContentTransferSyntaxUID = ExplicitVRLittleEndian
    item.EncryptedContent = seal_envelope(plain, recipients, cipher)
    ds.EncryptedAttributesSequence = DicomSequence([item])


def _known_vr(elem: DataElement, charset: str | list[str]) -> DataElement:
    """gdcmanon copies the attributes of an Implicit VR file into its Explicit VR item as
    UN (sequences included): decode those as the implicit values they are."""
    if elem.VR != "UN" or elem.tag.is_private or not isinstance(elem.value, bytes):
        return elem
    try:
        dictionary_VR(elem.tag)
    except KeyError:
        return elem
    raw = RawDataElement(elem.tag, None, len(elem.value), elem.value, 0, True, True)
    return convert_raw_data_element(raw, encoding=charset)


def reidentify(ds: Dataset, key: rsa.RSAPrivateKey, *, in_place: bool = False) -> Dataset:
    """Restore the original attributes protected in ``ds`` (PS3.15 E.1.2).

    Attributes of the Modified Attributes item replace those of ``ds``; the attributes a
    de-identifier adds (Patient Identity Removed, De-identification Method and its code
    sequence, Longitudinal Temporal Information Modified, the Encrypted Attributes
    Sequence) are removed unless the item restores them.
    """
    encrypted = ds.get(ENCRYPTED_ATTRIBUTES)
    if encrypted is None or not encrypted.value:
        raise ReidentifyError("no Encrypted Attributes Sequence (0400,0500): nothing to restore")
    work = ds if in_place else copy.deepcopy(ds)
    charset = charset_of(work)
    item: Dataset | None = None
    errors: list[str] = []
    for envelope in encrypted.value:
        syntax = str(envelope.get("EncryptedContentTransferSyntaxUID", "") or "").strip("\0 ")
        content = envelope.get("EncryptedContent")
        if content is None:
            errors.append("an item has no Encrypted Content")
            continue
        try:
            plain = open_envelope(bytes(content), key)
            item = decode_modified_attributes(plain, syntax or ExplicitVRLittleEndian, charset)
        except ReidentifyError as exc:
            errors.append(str(exc))
            continue
        break
    if item is None:
        raise ReidentifyError("; ".join(dict.fromkeys(errors)) or "nothing to decrypt")
    big_endian = work.original_encoding[1] is False
    explicit_le = work.original_encoding == (False, True)
    # Private elements first (reverse order): pydicom decodes a private element set while
    # its Private Creator is present, which is slow and needless here.
    for tag in sorted(item.keys(), reverse=True):
        raw = item.get_item(tag)
        if isinstance(raw, RawDataElement) and raw.VR:
            if explicit_le and raw.VR != "UN" and not raw.is_implicit_VR:
                work[tag] = raw  # same encoding: the protected bytes go back as they are
                continue
            if big_endian and raw.VR == "UN":
                # Opaque bytes of a big endian file, protected as they were: they go back
                # as they were, to be decoded (by a private dictionary) as big endian.
                work[tag] = raw._replace(is_little_endian=False)
                continue
        work[tag] = _known_vr(item[tag], charset)
    for tag in (*ADDED_TAGS, ENCRYPTED_ATTRIBUTES):
        if tag not in item and tag in work:
            del work[tag]
    meta = getattr(work, "file_meta", None)
    if meta is not None and "SOPInstanceUID" in work:
        meta.MediaStorageSOPInstanceUID = work.SOPInstanceUID
    return work
