"""The HDF5 basis store: a verifying, read-only reader, and export of a subset.

Layout and rules: ``docs/store-format.md``; every element is read through
:mod:`basisdb.store_format`.  In short, one HDF5 group per Hall setting holds the routing of
its largest radius in column form (one row index and one complex128 value per frequency, the
at-most-one-nonzero-per-column structure), every smaller radius being a prefix; every
element carries ``encoding-type``/``encoding-version`` and every dataset a ``sha256`` of its
bytes.  Files are written by :mod:`basisdb.writer` (for :func:`basisdb.build_store`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import subprocess
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from .basis import Basis
from .errors import (
    BasisDBError,
    InvalidRadiusError,
    MissingEntryError,
    RadiusNotInStoreError,
    SettingNotInStoreError,
    StoreError,
    StoreNotFoundError,
)
from .frequencies import METRICS, count_within
from .settings import Setting, _resolve_hall, get_setting
from .store_format import (
    ARRAY,
    BASIS_FAMILY,
    FAMILY_ARRAYS,
    FREQUENCY_INDEX,
    FREQUENCY_SET,
    SCHEMA_VERSION,
    SETTINGS_INDEX,
    STORE,
    VERIFICATION_FIELDS,
    VERIFICATION_TABLE,
    FamilyRecord,
    check_schema,
    checked_data,
    datasets,
    default_store_path,
    manifest,
    manifest_fingerprint,
    read_element,
    require,
)
from .writer import StoreWriter

__all__ = ["BasisStore", "export_store"]


# HDF5 shares one open file among all handles of a process and refuses a second handle whose
# file-locking flags differ from the first ("file locking flag values don't match").  The store
# opens like a plain ``h5py.File(path, "r")`` (the library's default), so that a caller's own
# handle opened either before or after it works, and falls back to the other flags to match a
# handle that is already open.
_LOCKING_MODES: tuple[bool | str | None, ...] = (None, False, True, "best-effort")


def _open_read_only(path: Path) -> h5py.File:
    """``path`` opened read-only, whatever file-locking flags another handle of this process
    holds it with; a clear :class:`StoreError` when another handle or process writes it."""
    for locking in _LOCKING_MODES:
        try:
            handle = h5py.File(path, "r", locking=locking)
        except OSError as exc:
            message = str(exc)
            if "flag values don't match" in message:
                continue  # open in this process with other flags: try those
            if "unable to lock file" in message and exc.errno != errno.EAGAIN and locking is None:
                continue  # a file system without locks (older HDF5 refuses it): the next try opens unlocked
            if "unable to lock file" in message or "already open for write" in message:
                raise StoreError(
                    f"{path} is open for writing in another process, or was left so by a writer that stopped "
                    f"(HDF5: {message}); a store is read only once complete: wait for that process, or rebuild "
                    "with `basisdb build`, which writes a new file and replaces the store atomically"
                ) from None
            raise StoreError(f"{path} is not a readable HDF5 file: {exc}") from None
        if handle.mode != "r":  # shares a handle of this process opened with "r+", "a" or "w"
            handle.close()
            raise StoreError(
                f"{path} is open for writing elsewhere in this process (an h5py.File opened with mode "
                "'r+', 'a' or 'w'); close that handle first: a store is read only while nobody writes it"
            )
        return handle
    raise StoreError(  # pragma: no cover - one of the modes matches any handle h5py opens
        f"{path} is already open in this process with file-locking flags the store cannot match (set by "
        "HDF5_USE_FILE_LOCKING?); close that handle before opening the store"
    )


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
            what = "is a folder, not a store file" if self.path.is_dir() else "does not exist"
            raise StoreNotFoundError(
                f"no basis store at {self.path}: it {what}; build one with "
                f"`basisdb build --out {self.path}` or call BasisStore.open() without a "
                "path for the default store"
            )
        self._file = _open_read_only(self.path)
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
    def open(cls, path: str | os.PathLike | None = None, *, progress: bool = True) -> BasisStore:
        """Open the store at ``path``; without a path, the default store, built on first use
        (230 default settings, radii 2 3 4 6 8 12 16)."""
        if path is None:
            path = default_store_path()
            if not path.is_file():
                build_default_store(path, progress=progress)
        return cls(path)

    def _read_root(self) -> None:
        check_schema(self._file)
        self._root = read_element(self._file, STORE)
        self.radii: tuple[float, ...] = tuple(float(r) for r in self._root["radii"])
        self.hall_numbers: tuple[int, ...] = tuple(int(h) for h in self._root["hall_numbers"])
        self._settings = read_element(require(self._file, "settings"), SETTINGS_INDEX)
        missing = [h for h in self.hall_numbers if f"{h:03d}" not in self._settings]
        if missing:
            raise MissingEntryError(
                f"{self.path}: settings {missing[:10]} are listed in hall_numbers but have no "
                "HDF5 group under /settings"
            )

    def close(self) -> None:
        with self._lock:
            if self._file:
                self._file.close()
            self._families.clear()
            self._tables.clear()
            self._bases.clear()

    def __enter__(self) -> BasisStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])

    def __repr__(self) -> str:
        return f"BasisStore({str(self.path)!r}, settings={len(self.hall_numbers)}, radii={self.radii})"

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
            return manifest(self._file)

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
                f"{list(self.radii)} (build another with `basisdb build --radii ...`)"
            )
        return value

    def check_hall(self, group: int | str | None = None, *, hall: int | None = None) -> int:
        """The Hall number of ITA type ``group``'s default setting, or ``hall`` itself;
        raises if either is invalid or the setting is not in the store (the message says
        which settings are)."""
        hall_number = _resolve_hall(group, hall)
        if hall_number not in self.hall_numbers:
            what = f"Hall number {hall_number}" + (f" (default setting of group {group})" if hall is None else "")
            raise SettingNotInStoreError(
                f"{what} is not in {self.path.name}, which holds {len(self.hall_numbers)} "
                f"settings (Hall numbers {self.hall_numbers[0]}-{self.hall_numbers[-1]}); "
                "build with `basisdb build --settings all` for all 530"
            )
        return hall_number

    def basis(self, group: int | str | None = None, *, hall: int | None = None, radius: float) -> Basis:
        """The basis of ITA type ``group`` (default setting) or of Hall setting ``hall`` at a
        radius present in the store, with its stored verification figures."""
        key = (self.check_hall(group, hall=hall), self.check_radius(radius))
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

    def verification(self, group: int | str | None = None, *, hall: int | None = None) -> list[dict[str, Any]]:
        """Stored verification figures of a setting, one dict per radius."""
        family, table = self._family(self.check_hall(group, hall=hall))
        return [_figures(row, family.orbit_sizes) for row in table]

    def verification_table(self, group: int | str | None = None, *, hall: int | None = None) -> np.ndarray:
        """The same figures as a structured (n_radii,) array (fields: VERIFICATION_FIELDS)."""
        return self._table(self.check_hall(group, hall=hall)).copy()

    def family_record(self, group: int | str | None = None, *, hall: int | None = None) -> FamilyRecord:
        """A setting as the builder wrote it: its basis at the store's largest radius and
        its verification table (every radius)."""
        family, table = self._family(self.check_hall(group, hall=hall))
        return FamilyRecord(basis=family, verification=table.copy())

    def settings(self) -> Iterator[Setting]:
        """The settings in the store, by Hall number."""
        for hall in self.hall_numbers:
            yield get_setting(hall=hall)

    # -- loading ------------------------------------------------------------------------
    def _frequency_set(self, metric: str) -> np.ndarray:
        if metric not in self._frequency_sets:
            index = read_element(require(self._file, "frequencies"), FREQUENCY_INDEX)
            self._frequency_sets[metric] = read_element(require(index, metric), FREQUENCY_SET)
        return self._frequency_sets[metric]

    def _family_node(self, hall: int) -> h5py.Group:
        if not self._file:
            raise StoreError(f"{self.path}: the store is closed")
        return read_element(self._settings[f"{hall:03d}"], BASIS_FAMILY)

    def _table(self, hall: int) -> np.ndarray:
        """A setting's verification table alone (small; kept for every setting read)."""
        with self._lock:
            if hall not in self._tables:
                node = self._family_node(hall)
                self._tables[hall] = read_element(require(node, "verification"), VERIFICATION_TABLE)
            return self._tables[hall]

    def _family(self, hall: int) -> tuple[Basis, np.ndarray]:
        with self._lock:
            if hall in self._families:
                self._families.move_to_end(hall)
                return self._families[hall]
            node = self._family_node(hall)
            where = f"{self.path}:{node.name}"
            arrays = {name: read_element(require(node, name), ARRAY) for name in FAMILY_ARRAYS}
            table = self._table(hall)
            setting = get_setting(hall=hall)
            metric = node.attrs.get("metric")
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
            for dataset in datasets(self._file):
                try:
                    checked_data(dataset)
                except StoreError as exc:
                    failures.append(str(exc).removeprefix(f"{self.path}:"))
            if manifest_fingerprint(self.checksums) != self.fingerprint:
                failures.append("root fingerprint does not match the datasets' recorded checksums")
        return failures


def export_store(
    store: BasisStore,
    out: str | os.PathLike,
    *,
    hall_numbers: Iterable[int] | None = None,
    radii: Iterable[float] | None = None,
    check: Callable[[], None] | None = None,
) -> Path:
    """Write a subset of ``store`` (settings and radii) to ``out`` in the same schema.

    Families are copied one at a time, so memory stays at one setting's arrays whatever
    the size of the export; the file is written atomically like a build.  ``check`` is called
    before each setting: an exception it raises stops the export, and no file is left behind.
    """
    halls = sorted({store.check_hall(hall=int(h)) for h in (hall_numbers or store.hall_numbers)})
    radii = sorted({store.check_radius(r) for r in (radii or store.radii)})
    provenance = store.provenance
    with StoreWriter(
        out,
        radii=radii,
        verification_points=provenance["verification_points"],
        verification_seed=provenance["verification_seed"],
    ) as writer:
        for hall in halls:
            if check is not None:
                check()
            writer.add_family(store.family_record(hall=hall).restricted(radii))
        return writer.commit()


def build_default_store(path: Path, *, progress: bool = True) -> None:
    """Build the default store at ``path`` on first use, once however many processes ask.

    The build runs as ``python -m basisdb build`` in a process of its own, whose worker
    processes are spawned from basisdb's guarded main: spawned from the caller's process they
    would re-import its main module, and a script without a ``__main__`` guard (most scripts,
    as the quick start is written) would start building again in each of them.  Processes
    that need the store at once (test workers, DDP ranks, scripts started together) take
    turns on a lock file beside it: the first builds, the others find it built."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_name(path.name + ".lock")):
        if path.is_file():  # built while this process waited
            return
        command = [sys.executable, "-m", "basisdb", "build", "--out", str(path), *([] if progress else ["--quiet"])]
        # its summary would land in the caller's output: only the progress bar (stderr) is shown
        finished = subprocess.run(command, stdout=subprocess.DEVNULL, check=False)
    if finished.returncode != 0 or not path.is_file():
        raise BasisDBError(
            f"building the default store at {path} failed (exit status {finished.returncode}); "
            f"run `{sys.executable} -m basisdb build --out {path}` to see why"
        )


@contextlib.contextmanager
def _exclusive(lock: Path) -> Iterator[None]:
    """Hold an exclusive lock on the file ``lock`` (POSIX).  Where there is no ``fcntl``, each
    process builds on its own, and the writer's atomic rename keeps the store whole."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
