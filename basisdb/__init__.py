"""basisdb: exact symmetry-adapted Fourier bases for the 230 space groups.

>>> from basisdb import build_basis
>>> b = build_basis(group=227, radius=4)
>>> b.hall_number, b.hall_symbol, b.n_basis
(525, 'F 4d 2 3 -1d', 5)
"""

__version__ = "0.1.0"

from .basis import Basis
from .build import DEFAULT_RADII, build_store
from .construction import build_basis
from .errors import (
    BasisDBError,
    ChecksumMismatchError,
    ConstructionError,
    InvalidCoordinatesError,
    InvalidGroupError,
    InvalidHallNumberError,
    InvalidRadiusError,
    MissingEntryError,
    RadiusNotInStoreError,
    SettingNotInStoreError,
    StoreError,
    StructureError,
    StructureTooLargeError,
    StoreNotFoundError,
    SymmetryToleranceWarning,
    UnsupportedSchemaError,
)
from .settings import Setting, crystal_system, default_hall_number, get_setting, hall_numbers_of_group
from .store import SCHEMA_VERSION, BasisStore, default_store_path
from .structures import DEFAULT_SYMPREC, Cell, Standardization, standardize
from .normalizer import NormalizerCosets, enantiomorphic_partner, euclidean_normalizer
from .frames import INVARIANCES, CrystalFrames, Invariance, crystal_frames, frames_of

__all__ = [
    "__version__",
    "SCHEMA_VERSION",
    "DEFAULT_RADII",
    "Basis",
    "BasisStore",
    "Setting",
    "Cell",
    "Standardization",
    "standardize",
    "DEFAULT_SYMPREC",
    "Invariance",
    "INVARIANCES",
    "CrystalFrames",
    "crystal_frames",
    "frames_of",
    "NormalizerCosets",
    "euclidean_normalizer",
    "enantiomorphic_partner",
    "build_basis",
    "build_store",
    "get_setting",
    "default_hall_number",
    "hall_numbers_of_group",
    "crystal_system",
    "default_store_path",
    "BasisDBError",
    "InvalidGroupError",
    "InvalidHallNumberError",
    "InvalidRadiusError",
    "InvalidCoordinatesError",
    "RadiusNotInStoreError",
    "SettingNotInStoreError",
    "StoreError",
    "StructureError",
    "StructureTooLargeError",
    "StoreNotFoundError",
    "UnsupportedSchemaError",
    "ChecksumMismatchError",
    "MissingEntryError",
    "ConstructionError",
    "SymmetryToleranceWarning",
]
