"""Source fits of a transfer on disk: a neural method fitted on another property is fitted once
per configuration, and read back by every later run that would fit it again.

``basisdb evaluate --transfer-from`` fits each neural method on the source dataset before
the folds. That fit depends only on the source (its structures and values, as encoded), the
model's and the training's configuration, the seed, and the code; not on which target of the
evaluated dataset is then fitted. The log10 K and G runs of one training seed fit the same
source, epoch for epoch, so the second reads the first's weights.

A configuration is all of that: the method, a sha256 of the source's rows (material ids and
values), the encoding's configuration (:meth:`EncodingCache.of`), the model's and the training's
configuration with the seed, the validation fraction, the torch version and thread count, the
device, and the source code of the model package and of the encoding path. Each has one HDF5
file in the cache directory of the encodings, ``source-fit-<sha256>.h5``, holding the state
dict (one array per entry) and the fit's record, written atomically. Its arrays carry a sha256
checked on every read; a file that fails it, or that another configuration or format wrote, is
ignored with a warning and refitted: the cache is never trusted over recomputing.

Runs that need one configuration at the same time fit it once: :meth:`SourceFitCache.claimed`
holds a lock on the configuration's file (``source-fit-<sha256>.lock``, an OS file lock, so a
run that dies releases it) while a run looks its fit up and, if missing, fits and saves it; the
others wait for it and read its fit back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch

from .encoding_cache import default_cache_directory, read_verified, replaced_atomically, sources_digest

__all__ = ["SourceFitCache", "rows_digest"]

FORMAT = "basisdb-source-fit"
FORMAT_VERSION = 1

# The modules a fit runs through; the encoding path's own are in the encoding's configuration.
_FIT_SOURCES = (
    "basisdb.model.baselines",
    "basisdb.model.data",
    "basisdb.model.encoded",
    "basisdb.model.geometry",
    "basisdb.model.methods",
    "basisdb.model.models",
    "basisdb.model.modules",
    "basisdb.model.prepared",
    "basisdb.model.training",
    "basisdb.model.transfer",
)


def rows_digest(ids: Sequence[str], values: np.ndarray) -> str:
    """sha256 of a dataset's rows: its material ids in order and their float64 values."""
    digest = hashlib.sha256("\n".join(ids).encode())
    digest.update(np.ascontiguousarray(values, dtype="<f8").tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceFitCache:
    """The directory where source fits are kept (see the module docstring).

    Attributes:
        directory: where the ``source-fit-*.h5`` files are (created on the first save).
        context: what every fit of this cache depends on beyond its own description, as
            recorded in the files (the encoding's configuration).
        reuse: read fits back; False fits every source again and replaces its file.
    """

    directory: Path
    context: Mapping
    reuse: bool = True

    @classmethod
    def at(cls, directory: str | os.PathLike | None, encoding: Mapping, reuse: bool = True) -> SourceFitCache:
        """The cache in ``directory``, by default the encodings' (``$BASISDB_ENCODINGS`` or the
        user cache), of fits on inputs encoded with ``encoding`` (``EncodingCache.configuration``)."""
        directory = Path(directory) if directory is not None else default_cache_directory()
        return cls(directory, {"encoding": encoding}, reuse)

    def configuration(self, description: Mapping) -> dict:
        """``description`` (what one fit depends on, JSON-serializable) with what every fit
        depends on added: the context, the code, the torch version and its thread count."""
        return {
            **self.context,
            **description,
            "code": sources_digest(_FIT_SOURCES),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }

    def path(self, configuration: Mapping) -> Path:
        name = hashlib.sha256(json.dumps(configuration, sort_keys=True).encode()).hexdigest()[:24]
        return self.directory / f"source-fit-{name}.h5"

    @contextlib.contextmanager
    def claimed(self, configuration: Mapping, log=sys.stderr) -> Iterator[None]:
        """Hold the lock of ``configuration``'s fit for the block (waiting, with a line on
        ``log``, while another run holds it), so that of runs started together one fits and
        saves the source and the others read it back."""
        from filelock import FileLock, Timeout

        self.directory.mkdir(parents=True, exist_ok=True)
        lock = FileLock(self.path(configuration).with_suffix(".lock"))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            print(f"waiting for another run fitting the same source (lock {lock.lock_file}) ...", file=log, flush=True)
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def load(self, configuration: Mapping) -> tuple[dict[str, torch.Tensor], dict] | None:
        """The state dict and the fit's record of ``configuration``; None if no usable file holds them."""
        if not self.reuse:
            return None
        path = self.path(configuration)

        def read(handle: h5py.File) -> tuple[dict[str, np.ndarray], dict]:
            names = json.loads(handle.attrs["names"])
            return {name: handle["state"][name][()] for name in names}, json.loads(handle.attrs["record"])

        found = read_verified(
            path,
            FORMAT,
            FORMAT_VERSION,
            configuration,
            read,
            f"the source fit {path}",
            "the source will be fitted again",
        )
        if found is None:
            return None
        arrays, record = found
        return {name: torch.from_numpy(np.array(array)) for name, array in arrays.items()}, record

    def save(self, configuration: Mapping, state: Mapping[str, torch.Tensor], record: Mapping) -> Path:
        """Write the fit of ``configuration`` (its state dict and record) as one file, atomically."""
        arrays = {name: value.detach().cpu().numpy() for name, value in state.items()}
        path = self.path(configuration)
        with replaced_atomically(path, FORMAT, FORMAT_VERSION, configuration, arrays) as out:
            group = out.create_group("state")
            for name, array in arrays.items():
                group.create_dataset(name, data=array)
            out.attrs.update(names=json.dumps(list(arrays)), record=json.dumps(dict(record)))
        return path
