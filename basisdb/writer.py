"""Writing a store file atomically: a temporary file beside the destination, renamed into
place once complete (docs/store-format.md, "Writing").  What goes into the file, and how
each element is encoded, is :mod:`basisdb.store_format`'s business."""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path

import h5py
import numpy as np

from .frequencies import max_norm
from .store_format import (
    BASIS_FAMILY,
    FREQUENCY_INDEX,
    FREQUENCY_SET,
    SETTINGS_INDEX,
    STORE,
    FamilyRecord,
    manifest,
    manifest_fingerprint,
    write_element,
)

__all__ = ["StoreWriter"]

_LIBVER = ("v110", "latest")  # HDF5 1.10 or newer can read the file


class StoreWriter:
    """Writes a store to a temporary file beside ``path`` and renames it into place on
    :meth:`commit`; on an error (or a kill) the previous file at ``path`` is untouched.
    Leaving the ``with`` block without :meth:`commit` discards the temporary file.

    Attributes:
        fingerprint: the content fingerprint of the file, once committed (else None).
    """

    def __init__(self, path: str | os.PathLike, *, radii, verification_points: int, verification_seed: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.radii = sorted(float(r) for r in radii)
        self.fingerprint: str | None = None
        _remove_stale_partials(self.path)
        self.temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
        self._file = h5py.File(self.temporary, "w", libver=_LIBVER)
        self._halls: list[int] = []
        self._metrics: set[str] = set()
        self._verification = (int(verification_points), int(verification_seed))
        self._settings = write_element(SETTINGS_INDEX, self._file, "settings")
        self._frequencies = write_element(FREQUENCY_INDEX, self._file, "frequencies")

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.abort()  # a no-op after commit()

    def add_frequency_set(self, metric: str, frequencies: np.ndarray) -> None:
        q_max = max_norm(self.radii[-1])
        write_element(FREQUENCY_SET, self._frequencies, metric, frequencies, metric=metric, max_norm=q_max)
        self._metrics.add(metric)

    def add_family(self, record: FamilyRecord) -> None:
        setting = record.basis.setting
        if setting.metric not in self._metrics:
            self.add_frequency_set(setting.metric, record.basis.frequencies)
        write_element(BASIS_FAMILY, self._settings, f"{setting.hall_number:03d}", record)
        self._halls.append(setting.hall_number)

    def commit(self) -> Path:
        """Write the root metadata, flush to disk and atomically replace ``path``.

        The fingerprint is taken from the file as written, read back read-only: HDF5's traversal
        of a file still open for writing failed, about once in twenty builds, with "Object
        visitation failed (Read only entry modified??)"."""
        import spglib

        self._file.close()
        self._file = None
        with h5py.File(self.temporary, "r") as written:
            self.fingerprint = manifest_fingerprint(manifest(written))
        with h5py.File(self.temporary, "r+", libver=_LIBVER) as handle:
            write_element(
                STORE,
                handle,
                "/",
                {
                    "spglib_version": spglib.__version__,
                    "numpy_version": np.__version__,
                    "h5py_version": h5py.__version__,
                    "hdf5_version": h5py.version.hdf5_version,
                    "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                    "radii": np.asarray(self.radii, dtype=np.float64),
                    "hall_numbers": np.asarray(sorted(self._halls), dtype=np.int32),
                    "verification_points": self._verification[0],
                    "verification_seed": self._verification[1],
                    "fingerprint": self.fingerprint,
                },
            )
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
