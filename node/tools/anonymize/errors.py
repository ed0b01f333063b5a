"""Errors raised by the anonymizer.

Every failure is a subclass of ``AnonymizeError`` so a caller (CLI, job runner) can catch
one type and report ``str(exc)`` as a single line::

    AnonymizeError
    +-- OptionError              options that cannot be honoured (Clean Graphics, both date options)
    +-- RefusedError             an instance the profile must not process as asked
    |   +-- BurnedInAnnotationError   BurnedInAnnotation = YES and not explicitly allowed
    |   +-- Type1AttributeError       --dumb would empty/remove a Type 1 attribute
    +-- ProtectionError          Encrypted Attributes Sequence: encrypt/decrypt failures
    |   +-- CertificateError          unreadable certificate or private key
    |   +-- ReidentifyError           nothing to re-identify, wrong key, corrupt content
    +-- PixelDataError           --fill-region: no pixel data, bad region, codec failure
    +-- NotDicomError            an input file that is not DICOM
"""

from __future__ import annotations


class AnonymizeError(Exception):
    """Base of every anonymizer error."""


class OptionError(AnonymizeError):
    """The options ask for something this implementation does not do."""


class RefusedError(AnonymizeError):
    """The instance is refused rather than de-identified unsafely."""


class BurnedInAnnotationError(RefusedError):
    """Burned In Annotation (0028,0301) is YES and burned-in text was not allowed."""


class Type1AttributeError(RefusedError):
    """A dumb-mode edit would empty or remove a Type 1 attribute of the IOD."""


class ProtectionError(AnonymizeError):
    """Building or opening the Encrypted Attributes Sequence failed."""


class CertificateError(ProtectionError):
    """A certificate or private key could not be loaded or used."""


class ReidentifyError(ProtectionError):
    """The dataset cannot be re-identified with the given key."""


class PixelDataError(AnonymizeError):
    """Pixel data could not be blanked as asked."""


class NotDicomError(AnonymizeError):
    """The input is not a DICOM file."""
