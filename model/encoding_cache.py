"""Encoded structures on disk: a dataset is standardized and encoded once per configuration,
and never again, across folds, seeds, methods and runs.

A configuration is everything an encoding depends on: the store's fingerprint, the radius,
``symprec``, the invariance, ``max_anchors``, the routing, the slot width and the source code
of the encoding path (so that a change of the code never serves a stale encoding).  Each has
one HDF5 file under ``$BASISDB_ENCODINGS`` or the user cache directory
(``~/.cache/basisdb/encodings/`` on Linux), holding every structure encoded so far, keyed by a
sha256 of its cell as given (lattice, fractional positions, atomic numbers).

The file is rewritten whole, atomically (a temporary file renamed over it), when structures
are added.  Its arrays carry a sha256 checked on every read; a file that fails it, or that
another configuration or format wrote, is ignored with a warning and rebuilt: the cache is
never trusted over recomputing.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from basisdb import Cell, dataset_checksum

from .encoded import EncodedStructure

if TYPE_CHECKING:
    from .data import StructureFeaturizer

__all__ = ["EncodingCache", "cell_key", "default_cache_directory", "add_cache_arguments", "cache_from_arguments"]

FORMAT = "basisdb-encodings"
# 2: distinct feature rows and each atom's row, instead of every frame's features;
# 3: one atom per centring class, and pair profiles per centring copy (n_copies)
FORMAT_VERSION = 3


def default_cache_directory() -> Path:
    override = os.environ.get("BASISDB_ENCODINGS")
    if override:
        return Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("basisdb")) / "encodings"


def cell_key(cell: Cell) -> str:
    """sha256 of a cell as given: the same input always has the same key."""
    digest = hashlib.sha256()
    for array, dtype in ((cell.lattice, "<f8"), (cell.positions, "<f8"), (cell.numbers, "<i8")):
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()


# The modules an encoding depends on: their source is part of the cache's configuration.
_ENCODING_SOURCES = (
    "basisdb.basis",
    "basisdb.encoding",
    "basisdb.frames",
    "basisdb.normalizer",
    "basisdb.settings",
    "basisdb.structures",
    "basisdb.model.data",
    "basisdb.model.encoded",
)


@lru_cache(maxsize=4)
def sources_digest(modules: tuple[str, ...]) -> str:
    """sha256 of the source of ``modules``, read from the files (found, not imported: this
    module must not import the featurizer that uses it)."""
    digest = hashlib.sha256()
    for name in modules:
        digest.update(Path(importlib.util.find_spec(name).origin).read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class EncodingCache:
    """The cache file of one featurizer's configuration (see the module docstring).

    Attributes:
        path: the HDF5 file (it may not exist yet).
        configuration: what the encodings depend on, as recorded in the file.
    """

    path: Path
    configuration: dict

    @classmethod
    def of(cls, featurizer: StructureFeaturizer, directory: str | os.PathLike | None = None) -> EncodingCache:
        configuration = {
            "store_fingerprint": featurizer.store.fingerprint,
            "radius": featurizer.radius,
            "symprec": featurizer.symprec,
            "invariance": featurizer.invariance,
            "max_anchors": featurizer.max_anchors,
            "routing": featurizer.routing,
            "n_slots": featurizer.n_slots,
            "code": sources_digest(_ENCODING_SOURCES),
        }
        name = hashlib.sha256(json.dumps(configuration, sort_keys=True).encode()).hexdigest()[:20]
        directory = Path(directory) if directory is not None else default_cache_directory()
        return cls(path=directory / f"encodings-{name}.h5", configuration=configuration)

    def load(self) -> dict[str, EncodedStructure]:
        """Every encoding in the file by cell key (labels empty); {} if there is no usable file."""
        found = read_verified(
            self.path,
            FORMAT,
            FORMAT_VERSION,
            self.configuration,
            lambda handle: ({name: handle[name][()] for name in handle}, None),
            f"the encoding cache {self.path}",
            "it will be rebuilt",
        )
        return {} if found is None else _unpack(found[0])

    def save(self, encodings: dict[str, EncodedStructure]) -> None:
        """Write ``encodings`` (by cell key) as the whole file, atomically."""
        arrays = _pack(encodings)
        with replaced_atomically(self.path, FORMAT, FORMAT_VERSION, self.configuration, arrays) as out:
            for name, array in arrays.items():
                # Slot features are mostly zeros (a group fills few of the slots): lzf is fast and shrinks them.
                out.create_dataset(name, data=array, compression="lzf" if array.size > 4096 else None)


@contextmanager
def replaced_atomically(
    path: Path, kind: str, version: int, configuration: Mapping, arrays: Mapping[str, np.ndarray]
) -> Iterator[h5py.File]:
    """A cache file written to a temporary file beside ``path`` (the block writes its data) and
    renamed over ``path`` once complete, with the header :func:`header_problem` checks and the
    checksum of ``arrays``; on an error ``path`` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".h5", dir=path.parent)
    os.close(handle)
    try:
        with h5py.File(temporary, "w") as out:
            yield out
            out.attrs.update(
                format=kind,
                format_version=version,
                configuration=json.dumps(configuration, sort_keys=True),
                checksum=arrays_checksum(arrays),
            )
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def read_verified(
    path: Path,
    kind: str,
    version: int,
    configuration: Mapping,
    read: Callable[[h5py.File], tuple[dict[str, np.ndarray], object]],
    what: str,
    remedy: str,
) -> tuple[dict[str, np.ndarray], object] | None:
    """What ``read(handle)`` returns of the cache file ``path`` (arrays, and anything else), once
    the file's header is that of ``kind``, ``version`` and ``configuration`` and the arrays match
    their checksum (:func:`replaced_atomically` wrote both).  None if there is no file, or,
    with a warning ("ignoring WHAT: why; REMEDY"), if it fails a check or cannot be read."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            # the configuration as JSON reads it back (tuples become lists)
            problem = header_problem(handle, kind, version, json.loads(json.dumps(configuration)))
            if problem is None:
                recorded = str(handle.attrs.get("checksum", ""))
                arrays, extra = read(handle)
    except (OSError, KeyError, ValueError) as exc:
        problem = f"unreadable ({exc})"
    if problem is None and arrays_checksum(arrays) != recorded:
        problem = "its checksum does not match its contents"
    if problem is not None:
        warnings.warn(f"ignoring {what}: {problem}; {remedy}", stacklevel=3)
        return None
    return arrays, extra


def header_problem(handle: h5py.File, kind: str, version: int, configuration: dict) -> str | None:
    """Why a cache file is not of ``kind`` at ``version`` for ``configuration``; None if it is."""
    if handle.attrs.get("format") != kind or int(handle.attrs.get("format_version", -1)) != version:
        return f"not a {kind} file of version {version}"
    if json.loads(handle.attrs.get("configuration", "{}")) != configuration:
        return "written for another configuration"
    return None


def arrays_checksum(arrays: dict[str, np.ndarray]) -> str:
    """sha256 over each array's name and the store's own checksum of it."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(f"{name}:{dataset_checksum(arrays[name])};".encode())
    return digest.hexdigest()


def _pack(encodings: dict[str, EncodedStructure]) -> dict[str, np.ndarray]:
    keys = sorted(encodings)
    items = [encodings[key] for key in keys]
    n_slots = items[0].rows.shape[-1] if items else 0
    n_radial = items[0].radial.shape[-1] if items else 0
    return {
        "keys": np.array(keys, dtype="S64"),
        "group": np.array([item.group for item in items], dtype=np.int64),
        "hall_number": np.array([item.hall_number for item in items], dtype=np.int64),
        "looser_group": np.array(
            [-1 if item.looser_group is None else item.looser_group for item in items], dtype=np.int64
        ),
        "n_atoms": np.array([item.n_atoms for item in items], dtype=np.int64),
        "n_copies": np.array([item.n_copies for item in items], dtype=np.int64),
        "n_frames": np.array([item.n_frames for item in items], dtype=np.int64),
        "n_rows": np.array([len(item.rows) for item in items], dtype=np.int64),
        "n_inputs": np.array([len(item.input_to_standardized) for item in items], dtype=np.int64),
        "numbers": np.concatenate([item.numbers for item in items]).astype(np.int64)
        if items
        else np.zeros(0, np.int64),
        "rows": np.concatenate([item.rows for item in items]) if items else np.zeros((0, n_slots), np.float32),
        "row_index": np.concatenate([item.row_index.ravel() for item in items]).astype(np.int32)
        if items
        else np.zeros(0, np.int32),
        "weights": np.concatenate([item.weights for item in items]) if items else np.zeros(0),
        "lattice": np.stack([item.lattice for item in items]) if items else np.zeros((0, 6), np.float32),
        "radial": np.concatenate([item.radial.reshape(-1, n_radial) for item in items])
        if items
        else np.zeros((0, 0), np.float32),
        "input_to_standardized": np.concatenate([item.input_to_standardized for item in items]).astype(np.int64)
        if items
        else np.zeros(0, np.int64),
    }


def _unpack(arrays: dict[str, np.ndarray]) -> dict[str, EncodedStructure]:
    atoms, frames, inputs = arrays["n_atoms"], arrays["n_frames"], arrays["n_inputs"]

    def starts(counts: np.ndarray) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(counts)])

    atom_at, frame_at, input_at, row_at = starts(atoms), starts(frames), starts(inputs), starts(arrays["n_rows"])
    copies = arrays["n_copies"]
    index_at, pair_at = starts(frames * atoms), starts(atoms * atoms * copies)
    n_radial = arrays["radial"].shape[-1]
    out = {}
    for i, key in enumerate(arrays["keys"]):
        m, f, c = int(atoms[i]), int(frames[i]), int(copies[i])
        looser = int(arrays["looser_group"][i])
        out[key.decode()] = EncodedStructure(
            label="",
            group=int(arrays["group"][i]),
            hall_number=int(arrays["hall_number"][i]),
            numbers=arrays["numbers"][atom_at[i] : atom_at[i + 1]],
            rows=arrays["rows"][row_at[i] : row_at[i + 1]],
            row_index=arrays["row_index"][index_at[i] : index_at[i + 1]].reshape(f, m),
            weights=arrays["weights"][frame_at[i] : frame_at[i + 1]],
            lattice=arrays["lattice"][i],
            radial=arrays["radial"][pair_at[i] : pair_at[i + 1]].reshape(m, m, c, n_radial),
            input_to_standardized=arrays["input_to_standardized"][input_at[i] : input_at[i + 1]],
            looser_group=None if looser < 0 else looser,
        )
    return out


def add_cache_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of the cache (train and evaluate share them)."""
    group = parser.add_argument_group("encoding cache")
    group.add_argument(
        "--encodings",
        type=Path,
        metavar="DIR",
        default=None,
        help="where encoded structures are cached (default: $BASISDB_ENCODINGS, else ~/.cache/basisdb/encodings)",
    )
    group.add_argument(
        "--no-encoding-cache", action="store_true", help="encode every structure again, and cache nothing"
    )


def cache_from_arguments(args: argparse.Namespace, featurizer: StructureFeaturizer) -> EncodingCache | None:
    return None if args.no_encoding_cache else EncodingCache.of(featurizer, args.encodings)
