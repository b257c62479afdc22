"""basisdb: exact symmetry-adapted Fourier bases for the 230 space groups.

>>> from basisdb import build_basis
>>> b = build_basis(group=227, radius=4)
>>> b.hall_number, b.hall_symbol, b.n_basis
(525, 'F 4d 2 3 -1d', 5)

Everything a client (the service, the model, the benchmarks) may use is named in
``__all__`` and imported from here; the submodules are the implementation.
"""

from ._version import __version__
from .audit import AuditReport, audit_store
from .basis import Basis
from .build import DEFAULT_RADII, BuildReport, StopRequest, build_store
from .cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, command_parser, output_path, run_command
from .construction import build_basis
from .errors import (
    BasisDBError,
    BasisDBWarning,
    BuildInterrupted,
    ChecksumMismatchError,
    CifSymmetryWarning,
    ConstructionError,
    InvalidCoordinatesError,
    InvalidGroupError,
    InvalidHallNumberError,
    InvalidRadiusError,
    MissingEntryError,
    RadiusNotInStoreError,
    SettingNotInStoreError,
    StoreError,
    StoreNotFoundError,
    StructureError,
    StructureTooLargeError,
    SymmetryToleranceWarning,
    UnsupportedSchemaError,
)
from .frames import (
    INVARIANCES,
    MAX_ANCHORS,
    NEGLIGIBLE_WEIGHT,
    CrystalFrames,
    Invariance,
    crystal_frames,
    frames_of,
)
from .frequencies import METRICS, frequency_set
from .normalizer import NormalizerCosets, enantiomorphic_partner, euclidean_normalizer
from .ranges import parse_number_ranges
from .redescriptions import REDESCRIPTIONS, cell_change, mirrored, noisy, random_crystal, rotated
from .settings import (
    N_GROUPS,
    N_HALL_NUMBERS,
    TRANSLATION_DENOMINATOR,
    Setting,
    crystal_system,
    default_hall_number,
    get_setting,
    group_number,
    hall_numbers_of_group,
    quiet_spglib,
)
from .store import BasisStore, export_store
from .store_format import SCHEMA_VERSION, dataset_checksum, default_store_path
from .structures import DEFAULT_SYMPREC, Cell, Standardization, is_cif_text, read_structure_file, standardize

__all__ = [
    "__version__",
    # settings and their operations
    "N_GROUPS",
    "N_HALL_NUMBERS",
    "TRANSLATION_DENOMINATOR",
    "Setting",
    "get_setting",
    "group_number",
    "default_hall_number",
    "hall_numbers_of_group",
    "crystal_system",
    "quiet_spglib",
    # bases
    "METRICS",
    "frequency_set",
    "Basis",
    "build_basis",
    # the store
    "SCHEMA_VERSION",
    "DEFAULT_RADII",
    "BasisStore",
    "default_store_path",
    "dataset_checksum",
    "build_store",
    "BuildReport",
    "StopRequest",
    "export_store",
    "audit_store",
    "AuditReport",
    "parse_number_ranges",
    # structures and their frames
    "DEFAULT_SYMPREC",
    "Cell",
    "Standardization",
    "standardize",
    "is_cif_text",
    "read_structure_file",
    "Invariance",
    "INVARIANCES",
    "MAX_ANCHORS",
    "NEGLIGIBLE_WEIGHT",
    "CrystalFrames",
    "crystal_frames",
    "frames_of",
    "NormalizerCosets",
    "euclidean_normalizer",
    "enantiomorphic_partner",
    # the same crystal, described differently (invariance tests; more in basisdb.redescriptions)
    "REDESCRIPTIONS",
    "cell_change",
    "rotated",
    "mirrored",
    "noisy",
    "random_crystal",
    # command lines: one parser style, one runner, one set of exit codes
    "command_parser",
    "output_path",
    "run_command",
    "EXIT_OK",
    "EXIT_FAILED",
    "EXIT_USAGE",
    # errors
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
    "BuildInterrupted",
    "ConstructionError",
    "SymmetryToleranceWarning",
    "BasisDBWarning",
    "CifSymmetryWarning",
]
