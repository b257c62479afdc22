"""One exception family for everything basisdb raises on purpose.

Every error derives from :class:`BasisDBError`.  Errors about a bad value also derive from
:class:`ValueError`, errors about a missing key from :class:`KeyError`, so callers that
already catch the builtin kinds keep working.  Each message names the offending value and
says what is allowed.
"""

from __future__ import annotations

__all__ = [
    "BasisDBError",
    "InvalidGroupError",
    "InvalidHallNumberError",
    "InvalidRadiusError",
    "InvalidCoordinatesError",
    "StructureError",
    "StructureTooLargeError",
    "RadiusNotInStoreError",
    "SettingNotInStoreError",
    "StoreError",
    "StoreNotFoundError",
    "UnsupportedSchemaError",
    "ChecksumMismatchError",
    "MissingEntryError",
    "BuildInterrupted",
    "ConstructionError",
    "BasisDBWarning",
    "SymmetryToleranceWarning",
    "CifSymmetryWarning",
]


class BasisDBError(Exception):
    """Base class of every error raised by basisdb."""

    def __str__(self) -> str:  # KeyError would otherwise print the message in quotes
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidGroupError(BasisDBError, ValueError):
    """A space-group (ITA) number outside 1-230, or of the wrong type."""


class InvalidHallNumberError(BasisDBError, ValueError):
    """A Hall number outside 1-530, or inconsistent with the requested group."""


class InvalidRadiusError(BasisDBError, ValueError):
    """A truncation radius that is not a positive finite number."""


class InvalidCoordinatesError(BasisDBError, ValueError):
    """Fractional coordinates that are non-finite, non-numeric or not shaped (N, 3)."""


class StructureError(BasisDBError, ValueError):
    """A structure that cannot be read, is disordered, or has no detectable space group."""


class StructureTooLargeError(StructureError):
    """A structure with more atoms than a caller's limit allows (checked before the work)."""


class RadiusNotInStoreError(BasisDBError, KeyError):
    """A radius that the store file was not built with."""


class SettingNotInStoreError(BasisDBError, KeyError):
    """A setting (Hall number) that the store file was not built with."""


class StoreError(BasisDBError):
    """A store file that cannot be trusted or read."""


class StoreNotFoundError(StoreError, FileNotFoundError):
    """The store path does not exist."""


class UnsupportedSchemaError(StoreError):
    """The file's schema or an element's encoding version is not one this version reads."""


class ChecksumMismatchError(StoreError):
    """A dataset's bytes do not match the sha256 recorded for it."""


class MissingEntryError(StoreError, KeyError):
    """A group, dataset or attribute the format requires is absent."""


class BuildInterrupted(BasisDBError):
    """A build stopped on request (SIGINT or SIGTERM); the previous store is untouched."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number


class ConstructionError(BasisDBError, RuntimeError):
    """An internal consistency check of the basis construction failed (a bug: please report)."""


class BasisDBWarning(UserWarning):
    """Base class of every warning basisdb gives."""


class SymmetryToleranceWarning(BasisDBWarning):
    """A looser symmetry tolerance finds a larger space group than the one in use: the
    structure is a slightly distorted version of a more symmetric one, or noisier than
    ``symprec`` allows."""


class CifSymmetryWarning(BasisDBWarning):
    """A CIF whose named space group and listed symmetry operations disagree: its atoms are
    expanded with the listed operations (see :func:`basisdb.cif.read_cif`)."""
