"""Shared fixtures: small real stores built once per session into temporary directories."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from basisdb import build_store

from .helpers import SMALL_RADII, run_basisdb


@pytest.fixture(scope="session", autouse=True)
def _isolated_default_store(tmp_path_factory):
    """Keep the user's cache out of the tests: the default store and the encoding cache live
    in temp dirs."""
    paths = {
        "BASISDB_STORE": tmp_path_factory.mktemp("default-store") / "store.h5",
        "BASISDB_ENCODINGS": tmp_path_factory.mktemp("encodings"),
    }
    old = {name: os.environ.get(name) for name in paths}
    os.environ.update({name: str(path) for name, path in paths.items()})
    yield paths["BASISDB_STORE"]
    for name, value in old.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> Path:
    """All 230 default settings at radii 2, 3, 4."""
    path = tmp_path_factory.mktemp("store") / "small.h5"
    build_store(path, radii=SMALL_RADII, progress=False, workers=2)
    return path


@pytest.fixture(scope="session")
def pretrained_encoder(small_store, tmp_path_factory) -> Path:
    """A small positional encoder pretrained for real by ``basisdb pretrain`` (radius
    3, two epochs, one group of each of four crystal systems): the one pretraining run that
    the CLI, fine-tuning and evaluation tests share.  Its stdout is kept beside it."""
    out = tmp_path_factory.mktemp("pretrained") / "encoder"
    options = (
        "--radius 3 --groups 1,2,14,194,225 --samples-per-group 64 --epochs 2 --minutes 1 --threads 1"
        " --d-model 32 --hidden 64"
    )
    result = run_basisdb("pretrain", *options.split(), "--out", str(out), "--store", str(small_store))
    assert result.returncode == 0, result.stderr
    (out / "stdout.txt").write_text(result.stdout)
    return out


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    """The matminer 0.4.2 sdist, fetched for real by ``basisdb data fetch`` (pip
    download from PyPI, sha256 checked) into a fresh directory."""
    from basisdb.model.datasets import SDIST_SHA256

    directory = tmp_path_factory.mktemp("datasets")
    result = run_basisdb("data", "fetch", "--dir", str(directory))
    assert result.returncode == 0, result.stderr
    assert SDIST_SHA256 in result.stdout
    return directory


@pytest.fixture(scope="session")
def real_crystals(dataset_dir):
    """One Materials Project crystal per space group found in the built-in datasets (about
    170 groups), as basisdb Cells labelled 'mp-id (group)', in group order.

    Taken are crystals whose group is the same at half and twice the default tolerance
    (1e-2 A): a structure distorted by about the tolerance can get different groups from
    different descriptions of it (spglib decides within its tolerance), which is reported
    through ``Standardization.looser_group`` rather than hidden (test_frames)."""
    import warnings

    import spglib

    from basisdb import Cell
    from basisdb.model.datasets import DATASETS, load_dataset

    chosen = {}
    for name, spec in DATASETS.items():
        data = load_dataset(name, next(iter(spec.targets)), dataset_dir)
        for material, structure in zip(data.ids, data.structures):
            cell = Cell.from_pymatgen(structure, label=material)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                groups = (
                    int(spglib.get_symmetry_dataset(cell.spglib_cell(), symprec=s).number) for s in (1e-2, 5e-3, 2e-2)
                )
                group = next(groups)
                if group not in chosen and all(other == group for other in groups):
                    chosen[group] = Cell(cell.lattice, cell.positions, cell.numbers, f"{material} ({group})")
    return [chosen[g] for g in sorted(chosen)]
