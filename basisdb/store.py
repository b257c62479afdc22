"""The HDF5 basis store: atomic writer and verifying, read-only reader.

Layout and rules: ``docs/store-format.md``.  In short, one group per Hall setting holds the
routing of its largest radius in column form (one row index and one complex128 value per
frequency, the at-most-one-nonzero-per-column structure), every smaller radius being a
prefix; every element carries ``encoding-type``/``encoding-version`` and every dataset a
``sha256`` of its bytes.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from . import __version__
from .basis import Basis
from .errors import (
    ChecksumMismatchError,
    InvalidRadiusError,
    MissingEntryError,
    RadiusNotInStoreError,
    SettingNotInStoreError,
    StoreError,
    StoreNotFoundError,
    UnsupportedSchemaError,
)
from .frequencies import METRICS, count_within, max_norm
from .settings import TRANSLATION_DENOMINATOR, Setting, _resolve_hall, get_setting

__all__ = [
    "SCHEMA_VERSION",
    "BasisStore",
    "StoreWriter",
    "FamilyRecord",
    "default_store_path",
    "dataset_checksum",
    "export_store",
]

SCHEMA_VERSION = 1
ENCODING_VERSION = "1.0"
STORE_TYPE = "basisdb.store"
FREQUENCY_SET_TYPE = "basisdb.frequency-set"
FAMILY_TYPE = "basisdb.basis-family"
ARRAY_TYPE = "basisdb.array"
TABLE_TYPE = "basisdb.verification-table"
SUPPORTED_ENCODINGS = {
    STORE_TYPE: {ENCODING_VERSION},
    FREQUENCY_SET_TYPE: {ENCODING_VERSION},
    FAMILY_TYPE: {ENCODING_VERSION},
    ARRAY_TYPE: {ENCODING_VERSION},
    TABLE_TYPE: {ENCODING_VERSION},
}

# Datasets of a family group: name -> on-disk dtype.
FAMILY_DATASETS = {
    "rotations": np.int8,
    "translations": np.int8,
    "column_row": np.int32,
    "column_phase": np.int8,
    "column_value": np.complex128,
    "orbit_sizes": np.int32,
    "real_partner": np.int32,
    "real_factor": np.complex128,
}
COMPRESSION_THRESHOLD = 4096  # elements; smaller datasets stay contiguous
COMPRESSION_LEVEL = 4
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
VERIFICATION_DTYPE = np.dtype(list(VERIFICATION_FIELDS))
ROOT_ATTRIBUTES = (
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


def default_store_path() -> Path:
    """Where :meth:`BasisStore.open` looks without a path: ``$BASISDB_STORE``, else the
    user cache directory (``~/.cache/basisdb/store-v1.h5`` on Linux)."""
    override = os.environ.get("BASISDB_STORE")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("basisdb")) / f"store-v{SCHEMA_VERSION}.h5"


def dataset_checksum(array: np.ndarray) -> str:
    """sha256 of an array's bytes in C order, little-endian (what the store records)."""
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">":
        array = array.astype(array.dtype.newbyteorder("<"))
    return hashlib.sha256(array.tobytes()).hexdigest()


@dataclass(frozen=True, eq=False)
class FamilyRecord:
    """What the builder writes for one setting: its basis at the largest radius and the
    verification figures of every radius (a structured (n_radii,) array)."""

    basis: Basis
    verification: np.ndarray = field(repr=False)

    def arrays(self) -> dict[str, np.ndarray]:
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


def _set_encoding(obj: h5py.HLObject, encoding_type: str) -> None:
    obj.attrs["encoding-type"] = encoding_type
    obj.attrs["encoding-version"] = ENCODING_VERSION


def manifest_fingerprint(checksums: Mapping[str, str]) -> str:
    text = "".join(f"{name} {checksums[name]}\n" for name in sorted(checksums))
    return hashlib.sha256(text.encode()).hexdigest()


class StoreWriter:
    """Writes a store to a temporary file beside ``path`` and renames it into place on
    :meth:`commit`; on an error (or a kill) the previous file at ``path`` is untouched.
    Leaving the ``with`` block without :meth:`commit` discards the temporary file.
    """

    def __init__(self, path: str | os.PathLike, *, radii, verification_points: int, verification_seed: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.radii = sorted(float(r) for r in radii)
        _remove_stale_partials(self.path)
        self.temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._file = h5py.File(self.temporary, "w", libver=("v110", "latest"))
        self._checksums: dict[str, str] = {}
        self._halls: list[int] = []
        self._metrics: set[str] = set()
        self._verification = (int(verification_points), int(verification_seed))
        _set_encoding(self._file.require_group("settings"), "basisdb.settings-index")
        _set_encoding(self._file.require_group("frequencies"), "basisdb.frequency-index")

    def __enter__(self) -> "StoreWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.abort()  # a no-op after commit()

    def _write(self, group: h5py.Group, name: str, data: np.ndarray, dtype, encoding_type: str = ARRAY_TYPE):
        data = np.ascontiguousarray(data, dtype=dtype)
        # Per-frequency columns are long and repetitive (few distinct phases and orbit
        # sizes): deflate with byte shuffle makes the file about 8x smaller.
        compress = data.size >= COMPRESSION_THRESHOLD
        dataset = group.create_dataset(
            name,
            data=data,
            compression="gzip" if compress else None,
            compression_opts=COMPRESSION_LEVEL if compress else None,
            shuffle=compress,
        )
        _set_encoding(dataset, encoding_type)
        checksum = dataset_checksum(data)
        dataset.attrs["sha256"] = checksum
        self._checksums[dataset.name] = checksum
        return dataset

    def add_frequency_set(self, metric: str, frequencies: np.ndarray) -> None:
        dataset = self._write(self._file["frequencies"], metric, frequencies, np.int16, FREQUENCY_SET_TYPE)
        dataset.attrs["metric"] = metric
        dataset.attrs["max_norm"] = max_norm(self.radii[-1])
        self._metrics.add(metric)

    def add_family(self, record: FamilyRecord) -> None:
        setting = record.basis.setting
        if setting.metric not in self._metrics:
            self.add_frequency_set(setting.metric, record.basis.frequencies)
        group = self._file["settings"].create_group(f"{setting.hall_number:03d}")
        _set_encoding(group, FAMILY_TYPE)
        group.attrs.update(
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
        for name, data in record.arrays().items():
            self._write(group, name, data, FAMILY_DATASETS[name])
        self._write(group, "verification", record.verification, VERIFICATION_DTYPE, TABLE_TYPE)
        self._halls.append(setting.hall_number)

    def commit(self) -> Path:
        """Write the root metadata, flush to disk and atomically replace ``path``."""
        import spglib

        attrs = self._file.attrs
        _set_encoding(self._file, STORE_TYPE)
        attrs.update(
            schema_version=SCHEMA_VERSION,
            basisdb_version=__version__,
            spglib_version=spglib.__version__,
            numpy_version=np.__version__,
            h5py_version=h5py.__version__,
            hdf5_version=h5py.version.hdf5_version,
            created_utc=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            radii=np.asarray(self.radii, dtype=np.float64),
            hall_numbers=np.asarray(sorted(self._halls), dtype=np.int32),
            verification_points=self._verification[0],
            verification_seed=self._verification[1],
            fingerprint=manifest_fingerprint(self._checksums),
        )
        self._file.close()
        self._file = None
        with open(self.temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(self.temporary, self.path)
        _fsync_directory(self.path.parent)
        return self.path

    def abort(self) -> None:
        """Discard the temporary file; ``path`` keeps its previous content."""
        if self._file:
            self._file.close()
            self._file = None
        self.temporary.unlink(missing_ok=True)


def _remove_stale_partials(path: Path) -> None:
    """Delete temporary files left beside ``path`` by builders that were killed (their
    process no longer exists); a running build's file is left alone."""
    for partial in path.parent.glob(f".{path.name}.*.partial"):
        pid = partial.name.removeprefix(f".{path.name}.").removesuffix(".partial")
        if pid.isdigit() and not _process_exists(int(pid)):
            partial.unlink(missing_ok=True)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _require(node: h5py.Group, name: str, where: str):
    if name not in node:
        raise MissingEntryError(f"{where}: required entry {name!r} is missing from the store")
    return node[name]


def _check_encoding(obj: h5py.HLObject, expected_type: str, path: Path) -> None:
    found_type = obj.attrs.get("encoding-type")
    found_version = obj.attrs.get("encoding-version")
    where = f"{path}:{obj.name}"
    if found_type is None or found_version is None:
        raise MissingEntryError(f"{where}: missing encoding-type/encoding-version attributes")
    if found_type != expected_type:
        raise UnsupportedSchemaError(
            f"{where}: encoding-type {found_type!r}, expected {expected_type!r}"
        )
    if found_version not in SUPPORTED_ENCODINGS[expected_type]:
        raise UnsupportedSchemaError(
            f"{where}: {found_type} encoding-version {found_version!r} is not supported by "
            f"basisdb {__version__} (supported: {sorted(SUPPORTED_ENCODINGS[expected_type])}); "
            "upgrade basisdb or rebuild the store"
        )


def read_verified(dataset: h5py.Dataset, path: Path, expected_type: str | None = None) -> np.ndarray:
    """A dataset's data, after checking its encoding (unless ``expected_type`` is None) and
    its sha256; raises a :class:`StoreError` naming the dataset otherwise."""
    if expected_type is not None:
        _check_encoding(dataset, expected_type, path)
    recorded = dataset.attrs.get("sha256")
    if recorded is None:
        raise MissingEntryError(f"{path}:{dataset.name}: no sha256 attribute")
    try:
        data = dataset[()]
    except OSError as exc:  # e.g. a damaged deflate stream
        raise StoreError(
            f"{path}:{dataset.name}: HDF5 cannot read this dataset ({exc}); the file is "
            "corrupt, rebuild it with build_db.py"
        ) from None
    actual = dataset_checksum(data)
    if actual != recorded:
        raise ChecksumMismatchError(
            f"{path}:{dataset.name}: sha256 mismatch (recorded {recorded[:16]}..., data "
            f"{actual[:16]}...): the file is corrupt; rebuild it with build_db.py"
        )
    return data


def _plain(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def _figures(row: np.void, orbit_sizes: np.ndarray) -> dict[str, Any]:
    figures = {name: row[name].item() for name, _ in VERIFICATION_FIELDS}
    figures["orbit_sizes"] = orbit_sizes[: figures["n_basis"]].copy()
    return figures


class BasisStore:
    """Read-only view of a basis store file.

    Safe to use from many processes at once (the file is never modified in place; writers
    replace it atomically) and picklable: a copy sent to another process reopens the file
    there.  Typical use::

        with BasisStore.open(path) as store:
            b = store.basis(group=227, radius=4)
            features = b.encode(fractional_coordinates, real=True)
    """

    _FAMILY_CACHE_SIZE = 64

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise StoreNotFoundError(
                f"no basis store at {self.path}; build one with "
                f"`python build_db.py --out {self.path}` or call BasisStore.open() without a "
                "path for the default store"
            )
        try:
            self._file = h5py.File(self.path, "r", locking=False)
        except OSError as exc:
            raise StoreError(f"{self.path} is not a readable HDF5 file: {exc}") from None
        self._lock = threading.RLock()
        self._families: OrderedDict[int, tuple[Basis, np.ndarray]] = OrderedDict()
        self._tables: dict[int, np.ndarray] = {}
        self._bases: OrderedDict[tuple[int, float], Basis] = OrderedDict()
        self._frequency_sets: dict[str, np.ndarray] = {}
        try:
            self._read_root()
        except BaseException:
            self._file.close()
            raise

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, progress: bool = True) -> "BasisStore":
        """Open the store at ``path``; without a path, the default store, built on first use
        (230 default settings, radii 2 3 4 6 8 12 16)."""
        if path is None:
            path = default_store_path()
            if not path.is_file():
                from .build import build_store

                build_store(path, progress=progress)
        return cls(path)

    def _read_root(self) -> None:
        attrs = self._file.attrs
        # The schema decides which attributes must exist, so it is checked first.
        if "schema_version" not in attrs:
            raise MissingEntryError(
                f"{self.path}: root attribute 'schema_version' is missing; this is not a basis store"
            )
        if attrs["schema_version"] != SCHEMA_VERSION:
            raise UnsupportedSchemaError(
                f"{self.path}: schema version {attrs['schema_version']} is not supported by "
                f"basisdb {__version__}, which reads schema version {SCHEMA_VERSION}; rebuild "
                "the store with this version's build_db.py"
            )
        for name in ROOT_ATTRIBUTES:
            if name not in attrs:
                raise MissingEntryError(f"{self.path}: root attribute {name!r} is missing")
        _check_encoding(self._file, STORE_TYPE, self.path)
        self._root = {name: _plain(attrs[name]) for name in ROOT_ATTRIBUTES}
        self.radii: tuple[float, ...] = tuple(float(r) for r in attrs["radii"])
        self.hall_numbers: tuple[int, ...] = tuple(int(h) for h in attrs["hall_numbers"])
        settings = _require(self._file, "settings", str(self.path))
        missing = [h for h in self.hall_numbers if f"{h:03d}" not in settings]
        if missing:
            raise MissingEntryError(
                f"{self.path}: settings {missing[:10]} are listed in hall_numbers but have no "
                "group under /settings"
            )

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
            self._families.clear()
            self._tables.clear()
            self._bases.clear()

    def __enter__(self) -> "BasisStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return (
            f"BasisStore({str(self.path)!r}, settings={len(self.hall_numbers)}, "
            f"radii={self.radii})"
        )

    # -- identity -----------------------------------------------------------------------
    @property
    def provenance(self) -> dict[str, Any]:
        """File-level provenance: versions, build time, radii, settings, fingerprint."""
        return dict(self._root)

    @property
    def fingerprint(self) -> str:
        """sha256 over the manifest of dataset checksums: the identity of the content."""
        return str(self._root["fingerprint"])

    @property
    def checksums(self) -> dict[str, str]:
        """The recorded sha256 of every dataset, by path in the file (the manifest)."""
        with self._lock:
            return {dataset.name: str(dataset.attrs.get("sha256", "")) for dataset in _all_datasets(self._file)}

    @property
    def identity(self) -> dict[str, Any]:
        """What a client records to tie its results to this store."""
        return {
            "schema_version": SCHEMA_VERSION,
            "radii": list(self.radii),
            "n_settings": len(self.hall_numbers),
            "fingerprint": self.fingerprint,
        }

    @property
    def groups(self) -> tuple[int, ...]:
        """ITA numbers whose default setting is in the store."""
        defaults = (get_setting(hall=h) for h in self.hall_numbers)
        return tuple(s.group for s in defaults if s.is_default)

    # -- lookups ------------------------------------------------------------------------
    def check_radius(self, radius: object) -> float:
        """``radius`` as the float the store holds; raises if it is not a number or not in
        the store (the message lists the radii present)."""
        if isinstance(radius, bool) or not isinstance(radius, (int, float, np.integer, np.floating)):
            raise InvalidRadiusError(
                f"radius must be a number, got {radius!r}; radii in this store: {list(self.radii)}"
            )
        value = float(radius)
        if value not in self.radii:
            raise RadiusNotInStoreError(
                f"radius {radius!r} is not in {self.path.name}; radii present: "
                f"{list(self.radii)} (build another with build_db.py --radii ...)"
            )
        return value

    def _check_hall(self, group: int | None, hall: int | None) -> int:
        hall_number = _resolve_hall(group, hall)
        if hall_number not in self.hall_numbers:
            what = f"Hall number {hall_number}" + (f" (default setting of group {group})" if hall is None else "")
            raise SettingNotInStoreError(
                f"{what} is not in {self.path.name}, which holds {len(self.hall_numbers)} "
                f"settings (Hall numbers {self.hall_numbers[0]}-{self.hall_numbers[-1]}); "
                "build with `build_db.py --settings all` for all 530"
            )
        return hall_number

    def basis(self, group: int | None = None, *, hall: int | None = None, radius: float) -> Basis:
        """The basis of ITA type ``group`` (default setting) or of Hall setting ``hall`` at a
        radius present in the store, with its stored verification figures."""
        key = (self._check_hall(group, hall), self.check_radius(radius))
        with self._lock:
            if key in self._bases:  # the same immutable object, with its matrices built
                self._bases.move_to_end(key)
                return self._bases[key]
        family, table = self._family(key[0])
        (row,) = table[table["radius"] == key[1]]
        basis = dataclasses.replace(family.truncate(key[1]), stored_verification=_figures(row, family.orbit_sizes))
        with self._lock:
            self._bases[key] = basis
            if len(self._bases) > self._FAMILY_CACHE_SIZE * 4:
                self._bases.popitem(last=False)
        return basis

    def verification(self, group: int | None = None, *, hall: int | None = None) -> list[dict[str, Any]]:
        """Stored verification figures of a setting, one dict per radius."""
        family, table = self._family(self._check_hall(group, hall))
        return [_figures(row, family.orbit_sizes) for row in table]

    def verification_table(self, group: int | None = None, *, hall: int | None = None) -> np.ndarray:
        """The same figures as a structured (n_radii,) array (fields: VERIFICATION_FIELDS)."""
        return self._table(self._check_hall(group, hall)).copy()

    def settings(self) -> Iterator[Setting]:
        """The settings in the store, by Hall number."""
        for hall in self.hall_numbers:
            yield get_setting(hall=hall)

    # -- loading ------------------------------------------------------------------------
    def _frequency_set(self, metric: str) -> np.ndarray:
        if metric not in self._frequency_sets:
            frequencies = _require(self._file, "frequencies", str(self.path))
            dataset = _require(frequencies, metric, f"{self.path}:/frequencies")
            data = read_verified(dataset, self.path, FREQUENCY_SET_TYPE).astype(np.int64)
            data.flags.writeable = False
            self._frequency_sets[metric] = data
        return self._frequency_sets[metric]

    def _family_group(self, hall: int) -> tuple[h5py.Group, str]:
        if not self._file:
            raise StoreError(f"{self.path}: the store is closed")
        group = self._file["settings"][f"{hall:03d}"]
        _check_encoding(group, FAMILY_TYPE, self.path)
        return group, f"{self.path}:{group.name}"

    def _table(self, hall: int) -> np.ndarray:
        """A setting's verification table alone (small; kept for every setting read)."""
        with self._lock:
            if hall not in self._tables:
                group, where = self._family_group(hall)
                self._tables[hall] = read_verified(_require(group, "verification", where), self.path, TABLE_TYPE)
            return self._tables[hall]

    def _family(self, hall: int) -> tuple[Basis, np.ndarray]:
        with self._lock:
            if hall in self._families:
                self._families.move_to_end(hall)
                return self._families[hall]
            group, where = self._family_group(hall)
            arrays = {
                name: read_verified(_require(group, name, where), self.path, ARRAY_TYPE) for name in FAMILY_DATASETS
            }
            table = self._table(hall)
            setting = get_setting(hall=hall)
            metric = group.attrs.get("metric")
            if metric not in METRICS or metric != setting.metric:
                raise StoreError(f"{where}: metric {metric!r} does not match the setting ({setting.metric})")
            if not (
                np.array_equal(arrays["rotations"], setting.rotations)
                and np.array_equal(arrays["translations"], setting.translations)
            ):
                raise StoreError(
                    f"{where}: stored operations differ from spglib's for Hall number {hall}; "
                    "the store was built with an incompatible spglib, rebuild it"
                )
            frequencies = self._frequency_set(metric)
            n_freq = count_within(frequencies, metric, self.radii[-1])
            family = Basis(
                setting=setting,
                radius=self.radii[-1],
                frequencies=frequencies[:n_freq],
                column_row=arrays["column_row"],
                column_phase=arrays["column_phase"],
                column_value=arrays["column_value"],
                orbit_sizes=arrays["orbit_sizes"],
                real_partner=arrays["real_partner"],
                real_factor=arrays["real_factor"],
            )
            if family.column_row.shape[0] != n_freq:
                raise StoreError(
                    f"{where}: column_row has {family.column_row.shape[0]} entries, the "
                    f"frequency set at radius {self.radii[-1]} has {n_freq}"
                )
            self._families[hall] = (family, table)
            if len(self._families) > self._FAMILY_CACHE_SIZE:
                self._families.popitem(last=False)
            return family, table

    # -- whole-file checks --------------------------------------------------------------
    def verify_checksums(self) -> list[str]:
        """Recompute the sha256 of every dataset and the root fingerprint; one line per
        problem found (empty when every byte is as recorded)."""
        failures = []
        with self._lock:
            for dataset in _all_datasets(self._file):
                try:
                    read_verified(dataset, self.path)
                except StoreError as exc:
                    failures.append(str(exc).removeprefix(f"{self.path}:"))
            if manifest_fingerprint(self.checksums) != self.fingerprint:
                failures.append("root fingerprint does not match the datasets' recorded checksums")
        return failures


def _all_datasets(node: h5py.Group) -> list[h5py.Dataset]:
    found: list[h5py.Dataset] = []
    node.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return found


def export_store(
    store: BasisStore,
    out: str | os.PathLike,
    *,
    hall_numbers: Iterable[int] | None = None,
    radii: Iterable[float] | None = None,
) -> Path:
    """Write a subset of ``store`` (settings and radii) to ``out`` in the same schema.

    Families are copied one at a time, so memory stays at one setting's arrays whatever
    the size of the export; the file is written atomically like a build.
    """
    halls = sorted({store._check_hall(None, int(h)) for h in (hall_numbers or store.hall_numbers)})
    radii = sorted({store.check_radius(r) for r in (radii or store.radii)})
    provenance = store.provenance
    with StoreWriter(
        out,
        radii=radii,
        verification_points=provenance["verification_points"],
        verification_seed=provenance["verification_seed"],
    ) as writer:
        for hall in halls:
            family, table = store._family(hall)
            writer.add_family(
                FamilyRecord(basis=family.truncate(radii[-1]), verification=table[np.isin(table["radius"], radii)])
            )
        return writer.commit()
