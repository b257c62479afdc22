"""The store's on-disk format in one table: every element type, its encoding versions, and
the function that writes and the functions that read it.

``docs/store-format.md`` is the specification.  Every HDF5 group and dataset of a store carries
``encoding-type`` and ``encoding-version``; :func:`write_element` writes an element and
stamps the pair this version writes for its type, and :func:`read_element` reads one by
dispatching on the pair the file holds, refusing (with :class:`UnsupportedSchemaError`) a
pair it has no reader for.  A new version of an element type adds a reader (old files keep
reading) and moves its writer; nothing else in the package names an encoding.

The registrations below are the table of pairs (``supported_encodings()`` lists them); the
specification's table is tested against it.  The reader of an HDF5 group checks it and returns
it, and its members are read one by one through their own entries; the reader of a dataset
returns its data after checking its sha256.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ._version import __version__
from .basis import Basis
from .errors import ChecksumMismatchError, MissingEntryError, StoreError, UnsupportedSchemaError
from .settings import TRANSLATION_DENOMINATOR

__all__ = [
    "SCHEMA_VERSION",
    "STORE",
    "FREQUENCY_INDEX",
    "FREQUENCY_SET",
    "SETTINGS_INDEX",
    "BASIS_FAMILY",
    "ARRAY",
    "VERIFICATION_TABLE",
    "FAMILY_ARRAYS",
    "VERIFICATION_FIELDS",
    "VERIFICATION_DTYPE",
    "Encoding",
    "FamilyRecord",
    "write_element",
    "read_element",
    "supported_encodings",
    "check_schema",
    "require",
    "checked_data",
    "dataset_checksum",
    "datasets",
    "manifest",
    "manifest_fingerprint",
    "default_store_path",
]

SCHEMA_VERSION = 1

# Element types (the encoding-type attribute).
STORE = "basisdb.store"
FREQUENCY_INDEX = "basisdb.frequency-index"
FREQUENCY_SET = "basisdb.frequency-set"
SETTINGS_INDEX = "basisdb.settings-index"
BASIS_FAMILY = "basisdb.basis-family"
ARRAY = "basisdb.array"
VERIFICATION_TABLE = "basisdb.verification-table"

# The arrays of a family: name -> on-disk dtype.
FAMILY_ARRAYS = {
    "rotations": np.int8,
    "translations": np.int8,
    "column_row": np.int32,
    "column_phase": np.int8,
    "column_value": np.complex128,
    "orbit_sizes": np.int32,
    "real_partner": np.int32,
    "real_factor": np.complex128,
}
VERIFICATION_FIELDS = (
    ("radius", np.float64),
    ("n_frequencies", np.int64),
    ("n_basis", np.int64),
    ("n_absent", np.int64),
    ("invariance_error", np.float64),
    ("orthogonality_error", np.float64),
    ("real_orthogonality_error", np.float64),
    ("real_imaginary_error", np.float64),
)
VERIFICATION_DTYPE = np.dtype(list(VERIFICATION_FIELDS))  # packed: 64 bytes, no padding
_ROOT_ATTRIBUTES = (
    "encoding-type",
    "encoding-version",
    "schema_version",
    "basisdb_version",
    "spglib_version",
    "numpy_version",
    "h5py_version",
    "hdf5_version",
    "created_utc",
    "radii",
    "hall_numbers",
    "verification_points",
    "verification_seed",
    "fingerprint",
)
_COMPRESSION_THRESHOLD = 4096  # elements; smaller datasets stay contiguous
_COMPRESSION_LEVEL = 4


def default_store_path() -> Path:
    """Where :meth:`BasisStore.open` looks without a path: ``$BASISDB_STORE``, else the
    user cache directory (``~/.cache/basisdb/store-v1.h5`` on Linux)."""
    override = os.environ.get("BASISDB_STORE")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("basisdb")) / f"store-v{SCHEMA_VERSION}.h5"


@dataclass(frozen=True, eq=False)
class FamilyRecord:
    """One ``basisdb.basis-family`` element: a setting's basis at the largest radius of the
    file and the verification figures of every radius (a structured (n_radii,) array of
    :data:`VERIFICATION_DTYPE`)."""

    basis: Basis
    verification: np.ndarray = field(repr=False)

    def arrays(self) -> dict[str, np.ndarray]:
        """The family's arrays, by their names in the file (see :data:`FAMILY_ARRAYS`)."""
        b = self.basis
        return {
            "rotations": b.setting.rotations,
            "translations": b.setting.translations,
            "column_row": b.column_row,
            "column_phase": b.column_phase,
            "column_value": b.column_value,
            "orbit_sizes": b.orbit_sizes,
            "real_partner": b.real_partner,
            "real_factor": b.real_factor,
        }

    def restricted(self, radii: list[float]) -> FamilyRecord:
        """The same family for a subset of its radii (truncated at the largest of them)."""
        return FamilyRecord(
            basis=self.basis.truncate(max(radii)),
            verification=self.verification[np.isin(self.verification["radius"], radii)],
        )


# -- the registry ------------------------------------------------------------------------
@dataclass(frozen=True)
class Encoding:
    """An element's ``(encoding-type, encoding-version)`` pair."""

    type: str
    version: str

    def __str__(self) -> str:
        return f"({self.type}, {self.version})"


_WRITERS: dict[str, tuple[Encoding, Callable[..., h5py.HLObject]]] = {}
_READERS: dict[Encoding, Callable[[Any], Any]] = {}


def _writes(encoding_type: str, version: str):
    """Register the writer of an element type: ``function(parent, name, value, **attributes)``
    creates the element ``name`` under ``parent`` and returns it.  One version is written."""

    def register(function):
        _WRITERS[encoding_type] = (Encoding(encoding_type, version), function)
        return function

    return register


def _reads(encoding_type: str, *versions: str):
    """Register a reader of an element type for the given versions: ``function(node)``."""

    def register(function):
        for version in versions:
            _READERS[Encoding(encoding_type, version)] = function
        return function

    return register


def supported_encodings(encoding_type: str | None = None) -> list[Encoding]:
    """The pairs this version reads (of one element type, or of all), sorted."""
    return sorted((e for e in _READERS if encoding_type in (None, e.type)), key=lambda e: (e.type, e.version))


def write_element(
    encoding_type: str, parent: h5py.Group, name: str, value: Any = None, **attributes: Any
) -> h5py.HLObject:
    """Write ``value`` as the element ``name`` of ``parent`` (``"/"``: ``parent`` itself, the
    root), with the encoding this version writes for ``encoding_type`` and any further
    ``attributes``; returns the element."""
    encoding, writer = _WRITERS[encoding_type]
    node = writer(parent, name, value)
    node.attrs["encoding-type"] = encoding.type
    node.attrs["encoding-version"] = encoding.version
    node.attrs.update(attributes)
    return node


def read_element(node: h5py.HLObject, encoding_type: str) -> Any:
    """Read an element that must be of ``encoding_type``, with the reader of the pair it
    carries; refuse a missing pair (:class:`MissingEntryError`), another type or a version
    without a reader (:class:`UnsupportedSchemaError`)."""
    where = _where(node)
    found_type, found_version = node.attrs.get("encoding-type"), node.attrs.get("encoding-version")
    if found_type is None or found_version is None:
        raise MissingEntryError(f"{where}: missing encoding-type/encoding-version attributes")
    found = Encoding(*(v.decode() if isinstance(v, bytes) else str(v) for v in (found_type, found_version)))
    reader = _READERS.get(found) if found.type == encoding_type else None
    if reader is None:
        supported = ", ".join(str(e) for e in supported_encodings(encoding_type))
        raise UnsupportedSchemaError(
            f"{where}: encoding {found} is not one that basisdb {__version__} reads for this "
            f"element (it reads {supported}); upgrade basisdb, or rebuild the store with `basisdb build`"
        )
    return reader(node)


def check_schema(root: h5py.File) -> None:
    """The file's ``schema_version`` must be :data:`SCHEMA_VERSION`; it decides which
    elements exist, so it is checked before any of them is read."""
    if "schema_version" not in root.attrs:
        raise MissingEntryError(
            f"{root.filename}: root attribute 'schema_version' is missing; this is not a basis store"
        )
    found = root.attrs["schema_version"]
    if found != SCHEMA_VERSION:
        raise UnsupportedSchemaError(
            f"{root.filename}: schema version {found} is not supported by basisdb {__version__}, "
            f"which reads schema version {SCHEMA_VERSION}; rebuild the store with this version's "
            "`basisdb build`"
        )


def require(node: h5py.Group, name: str) -> h5py.HLObject:
    """The member ``name`` of ``node``; :class:`MissingEntryError` naming it if absent."""
    if name not in node:
        raise MissingEntryError(f"{_where(node)}: required entry {name!r} is missing from the store")
    return node[name]


def _where(node: h5py.HLObject) -> str:
    return f"{node.file.filename}:{node.name}" if node.name != "/" else node.file.filename


# -- checksums ---------------------------------------------------------------------------
def dataset_checksum(array: np.ndarray) -> str:
    """sha256 of an array's bytes in C order, every field little-endian, no padding (what the
    store records for each dataset; docs/store-format.md, "Checksums")."""
    array = np.ascontiguousarray(array)
    little = array.dtype.newbyteorder("<")  # also turns every field of a compound dtype
    if little != array.dtype:
        array = array.astype(little)
    return hashlib.sha256(array.tobytes()).hexdigest()


def checked_data(dataset: h5py.Dataset) -> np.ndarray:
    """A dataset's data after checking its sha256; a :class:`StoreError` naming the dataset
    otherwise.  Checks the bytes only: reading an element goes through :func:`read_element`."""
    where = _where(dataset)
    recorded = dataset.attrs.get("sha256")
    if recorded is None:
        raise MissingEntryError(f"{where}: no sha256 attribute")
    try:
        data = dataset[()]
    except OSError as exc:  # e.g. a damaged deflate stream
        raise StoreError(
            f"{where}: HDF5 cannot read this dataset ({exc}); the file is corrupt, rebuild it with `basisdb build`"
        ) from None
    actual = dataset_checksum(data)
    if actual != recorded:
        raise ChecksumMismatchError(
            f"{where}: sha256 mismatch (recorded {recorded[:16]}..., data {actual[:16]}...): the "
            "file is corrupt; rebuild it with `basisdb build`"
        )
    return data


def datasets(node: h5py.Group) -> list[h5py.Dataset]:
    """Every dataset under ``node``, in HDF5's traversal order."""
    found: list[h5py.Dataset] = []
    node.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def manifest(root: h5py.File) -> dict[str, str]:
    """The recorded sha256 of every dataset, by its absolute path (``/settings/525/...``)."""
    return {dataset.name: str(dataset.attrs.get("sha256", "")) for dataset in datasets(root)}


def manifest_fingerprint(checksums: Mapping[str, str]) -> str:
    """sha256 of the manifest text: one line ``"<path> <sha256>\\n"`` per dataset, sorted by path."""
    text = "".join(f"{name} {checksums[name]}\n" for name in sorted(checksums))
    return hashlib.sha256(text.encode()).hexdigest()


# -- datasets ----------------------------------------------------------------------------
def _write_dataset(parent: h5py.Group, name: str, data: np.ndarray) -> h5py.Dataset:
    data = np.ascontiguousarray(data)
    # Per-frequency columns are long and repetitive (few distinct phases and orbit sizes):
    # deflate with byte shuffle makes the file about 8x smaller.
    compress = data.size >= _COMPRESSION_THRESHOLD
    dataset = parent.create_dataset(
        name,
        data=data,
        compression="gzip" if compress else None,
        compression_opts=_COMPRESSION_LEVEL if compress else None,
        shuffle=compress,
    )
    dataset.attrs["sha256"] = dataset_checksum(data)
    return dataset


@_writes(ARRAY, "1.0")
def _write_array(parent, name, data):
    return _write_dataset(parent, name, data)


@_reads(ARRAY, "1.0")
def _read_array(dataset):
    return checked_data(dataset)


@_writes(VERIFICATION_TABLE, "1.0")
def _write_verification_table(parent, name, table):
    return _write_dataset(parent, name, np.asarray(table, dtype=VERIFICATION_DTYPE))


@_reads(VERIFICATION_TABLE, "1.0")
def _read_verification_table(dataset):
    return checked_data(dataset)


@_writes(FREQUENCY_SET, "1.0")
def _write_frequency_set(parent, metric, frequencies):
    return _write_dataset(parent, metric, np.asarray(frequencies, dtype=np.int16))


@_reads(FREQUENCY_SET, "1.0")
def _read_frequency_set(dataset):
    data = checked_data(dataset).astype(np.int64)
    data.flags.writeable = False
    return data


# -- HDF5 groups --------------------------------------------------------------------------
@_writes(STORE, "1.0")
def _write_root(root, name, attributes: Mapping[str, Any]):
    node = root[name]
    node.attrs.update({"schema_version": SCHEMA_VERSION, "basisdb_version": __version__, **attributes})
    return node


@_reads(STORE, "1.0")
def _read_root(root) -> dict[str, Any]:
    """The root attributes as plain Python values, every required one present."""
    for name in _ROOT_ATTRIBUTES:
        if name not in root.attrs:
            raise MissingEntryError(f"{root.file.filename}: root attribute {name!r} is missing")
    return {name: _plain(root.attrs[name]) for name in _ROOT_ATTRIBUTES}


@_writes(FREQUENCY_INDEX, "1.0")
@_writes(SETTINGS_INDEX, "1.0")
def _write_index(parent, name, _):
    return parent.require_group(name)


@_reads(FREQUENCY_INDEX, "1.0")
@_reads(SETTINGS_INDEX, "1.0")
def _read_index(node):
    return node


@_writes(BASIS_FAMILY, "1.0")
def _write_family(parent, name, record: FamilyRecord):
    setting = record.basis.setting
    node = parent.create_group(name)
    node.attrs.update(
        hall_number=setting.hall_number,
        group=setting.group,
        hall_symbol=setting.hall_symbol,
        international=setting.international,
        choice=setting.choice,
        metric=setting.metric,
        n_operations=setting.n_operations,
        translation_denominator=TRANSLATION_DENOMINATOR,
        phase_denominator=TRANSLATION_DENOMINATOR,
    )
    for member, data in record.arrays().items():
        write_element(ARRAY, node, member, np.asarray(data, dtype=FAMILY_ARRAYS[member]))
    write_element(VERIFICATION_TABLE, node, "verification", record.verification)
    return node


@_reads(BASIS_FAMILY, "1.0")
def _read_family(node):
    return node


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value
