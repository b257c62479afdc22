"""The on-disk encoding cache: real structures, a real store, real HDF5 files."""

from __future__ import annotations

import os
import warnings

import h5py
import numpy as np
import pytest

from basisdb import BasisStore, Cell
from basisdb.model.data import StructureFeaturizer
from basisdb.model.encoding_cache import EncodingCache, cell_key

from .helpers import run_basisdb

FIELDS = ("numbers", "frames", "weights", "lattice", "radial", "input_to_standardized")


@pytest.fixture(scope="module")
def featurizer(small_store):
    with BasisStore.open(small_store) as store:
        yield StructureFeaturizer(store, 3.0)


@pytest.fixture(scope="module")
def crystals(real_crystals):
    """Forty real crystals of different groups, as (label, Cell) pairs."""
    chosen = real_crystals[:: max(1, len(real_crystals) // 40)][:40]
    return [(cell.label, cell) for cell in chosen]


def assert_same(first, second):
    assert [item.label for item in first] == [item.label for item in second]
    for a, b in zip(first, second):
        assert (a.group, a.hall_number, a.looser_group) == (b.group, b.hall_number, b.looser_group)
        for name in FIELDS:
            assert getattr(a, name).dtype == getattr(b, name).dtype
            assert np.array_equal(getattr(a, name), getattr(b, name)), (a.label, name)


def test_cached_encodings_equal_fresh_ones_and_are_not_recomputed(featurizer, crystals, tmp_path):
    cache = EncodingCache.of(featurizer, tmp_path)
    fresh, rejected = featurizer.encode_many(crystals, cache=cache, progress=False)
    assert not rejected and len(fresh) == len(crystals)
    assert {item.n_copies for item in fresh} >= {1, 2, 4}  # pair profiles of every shape round-trip
    written = os.stat(cache.path)
    again, _ = featurizer.encode_many(crystals, cache=cache, progress=False)
    assert_same(fresh, again)
    assert os.stat(cache.path).st_mtime_ns == written.st_mtime_ns  # nothing new: not rewritten
    assert [p.name for p in tmp_path.iterdir()] == [cache.path.name]  # no temporary file left


def test_labels_come_from_the_caller_and_new_structures_are_added(featurizer, crystals, tmp_path):
    cache = EncodingCache.of(featurizer, tmp_path)
    featurizer.encode_many(crystals[:10], cache=cache, progress=False)
    renamed = [(f"again-{i}", cell) for i, (_, cell) in enumerate(crystals[:20])]
    mixed, _ = featurizer.encode_many(renamed, cache=cache, progress=False)
    assert [item.label for item in mixed] == [label for label, _ in renamed]
    assert len(cache.load()) == 20
    assert_same(featurizer.encode_many(renamed, progress=False)[0], mixed)


def test_the_key_is_the_cell_as_given(crystals):
    cell = crystals[0][1]
    moved = Cell(cell.lattice, cell.positions + 1e-9, cell.numbers, cell.label)
    assert cell_key(cell) == cell_key(
        Cell(cell.lattice.copy(), cell.positions.copy(), cell.numbers.copy(), "another label")
    )
    assert cell_key(moved) != cell_key(cell)


def test_each_configuration_has_its_own_file(featurizer, small_store, tmp_path):
    with BasisStore.open(small_store) as store:
        others = [
            StructureFeaturizer(store, 2.0),
            StructureFeaturizer(store, 3.0, symprec=1e-3),
            StructureFeaturizer(store, 3.0, invariance="proper"),
        ]
        paths = {EncodingCache.of(other, tmp_path).path for other in others}
    assert len(paths | {EncodingCache.of(featurizer, tmp_path).path}) == 4


def test_a_damaged_or_foreign_file_is_ignored_and_rebuilt(featurizer, crystals, tmp_path):
    cache = EncodingCache.of(featurizer, tmp_path)
    fresh, _ = featurizer.encode_many(crystals[:8], cache=cache, progress=False)
    with h5py.File(cache.path, "r+") as handle:
        handle["weights"][0] += 1.0
    with pytest.warns(UserWarning, match="checksum does not match"):
        assert cache.load() == {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rebuilt, _ = featurizer.encode_many(crystals[:8], cache=cache, progress=False)
    assert_same(fresh, rebuilt)
    assert len(cache.load()) == 8  # rewritten whole, and sound again
    with h5py.File(cache.path, "r+") as handle:
        handle.attrs["configuration"] = "{}"
    with pytest.warns(UserWarning, match="another configuration"):
        assert cache.load() == {}
    cache.path.write_bytes(b"not an HDF5 file")
    with pytest.warns(UserWarning, match="unreadable"):
        assert cache.load() == {}


def test_rejected_structures_are_reported_in_order_and_not_cached(featurizer, crystals, tmp_path):
    cache = EncodingCache.of(featurizer, tmp_path)
    cell = crystals[0][1]
    doubled = Cell(
        cell.lattice,
        np.vstack([cell.positions, cell.positions[:1]]),
        np.append(cell.numbers, cell.numbers[0]),
        "doubled",
    )
    items = [crystals[1], ("doubled", doubled), crystals[2]]
    encoded, rejected = featurizer.encode_many(items, cache=cache, report=None, progress=False)
    assert [item.label for item in encoded] == [crystals[1][0], crystals[2][0]]
    assert [label for label, _ in rejected] == ["doubled"] and "apart" in rejected[0][1]
    assert len(cache.load()) == 2


def test_two_worker_processes_give_the_same_encodings(featurizer, crystals):
    serial, _ = featurizer.encode_many(crystals, progress=False)
    parallel, _ = featurizer.encode_many(crystals, workers=2, progress=False)
    assert_same(serial, parallel)


@pytest.mark.slow  # two `basisdb train` runs
def test_train_fills_the_cache_of_its_configuration(small_store, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    from pymatgen.core import Lattice, Structure

    rows = []
    for i, a in enumerate((5.4, 5.5, 5.6, 5.7)):
        Structure.from_spacegroup("Fm-3m", Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
            filename=str(data / f"s{i}.cif")
        )
        rows.append(f"s{i},{a}")
    (data / "id_prop.csv").write_text("\n".join(rows) + "\n")
    encodings = tmp_path / "encodings"
    arguments = (
        "train",
        "--data",
        str(data),
        "--out",
        str(tmp_path / "ckpt"),
        "--store",
        str(small_store),
        "--radius",
        "3",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--d-model",
        "16",
        "--hidden",
        "32",
        "--encodings",
        str(encodings),
    )
    result = run_basisdb(*arguments)
    assert result.returncode == 0, result.stderr
    (path,) = encodings.iterdir()
    with h5py.File(path, "r") as handle:
        assert len(handle["keys"]) == 4
    assert run_basisdb(*arguments[:-2], "--no-encoding-cache", "--out", str(tmp_path / "again")).returncode == 0
    assert list(encodings.iterdir()) == [path]
