"""Shared fixtures, the test tiers and the rules of running in parallel.

The suite runs in pytest-xdist workers (``-n`` in pyproject's addopts), so:

* every process, and every command a test starts, uses one thread (set here, before torch or
  numpy's BLAS is loaded): two workers on two cores each running two threads thrash;
* a session fixture that builds something (a store, the fetched datasets, a pretrained
  encoder, the real crystals) builds it once per run whatever the number of workers: the
  first worker to need it builds it under a file lock in the run's base temporary folder,
  the others wait and reuse it (:func:`built_once`);
* a test marked ``serial`` (timing-sensitive: real servers whose latency is asserted) runs
  while the other workers wait between their tests (:class:`_Turns`);
* ``slow`` marks what the quick tier (``pytest -m "not slow"``) leaves out: every test that
  uses the fetched datasets, the real crystals or the pretrained encoder is marked here, by
  the fixtures it uses; the modules and tests that start servers, browsers, CLI runs, docker
  or pip mark themselves.
"""

from __future__ import annotations

import os

# Before anything loads torch, numpy's BLAS or OpenMP: one thread per worker, inherited by the
# commands the tests start (their --threads defaults to torch's choice, which this sets).
for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"

import contextlib  # noqa: E402
import csv  # noqa: E402
import fcntl  # noqa: E402
import pickle  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
from filelock import FileLock  # noqa: E402

from basisdb import build_store  # noqa: E402

from .helpers import REAL, SMALL_RADII, real, run_basisdb  # noqa: E402

# Fixtures that make a test slow (the network, a parse of every dataset, a pretraining run):
# a test that uses one, directly or through another fixture, is marked slow.
SLOW_FIXTURES = {"dataset_dir", "parsed_dataset", "real_crystals", "pretrained_encoder"}
# The folder of the lock files of serial tests, made by the controlling process for its workers.
_TURNS_VARIABLE = "BASISDB_TEST_TURNS"


# --- tiers, parallel runs ----------------------------------------------------------------------


def _is_worker() -> bool:
    return "PYTEST_XDIST_WORKER" in os.environ


def pytest_configure(config):
    if not _is_worker() and _TURNS_VARIABLE not in os.environ:
        # Workers start after this and inherit the environment.
        os.environ[_TURNS_VARIABLE] = tempfile.mkdtemp(prefix="basisdb-test-turns-")
        config._basisdb_turns = os.environ[_TURNS_VARIABLE]


def pytest_unconfigure(config):
    folder = getattr(config, "_basisdb_turns", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_TURNS_VARIABLE, None)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if _is_worker():
        # The order in which the workers share the tests out (--dist worksteal: each takes a
        # run of consecutive tests, so that a module's fixtures are made once, and the first
        # to finish takes over the end of the other's).  The real crystals take a worker half
        # a minute to make: the first test that needs them goes first, the others last, so
        # that no worker waits for them.  A module's serial tests go together at its end, so
        # that the other workers are held off once for them all.
        needs = ["real_crystals" in getattr(item, "fixturenames", ()) for item in items]
        first = needs.index(True) if True in needs else None
        modules = {}
        for item in items:
            modules.setdefault(item.nodeid.split("::")[0], len(modules))

        def place(i):
            item = items[i]
            serial = item.get_closest_marker("serial") is not None
            return (i != first, needs[i], modules[item.nodeid.split("::")[0]], serial)

        items[:] = [items[i] for i in sorted(range(len(items)), key=place)]


class _Turns:
    """A readers-writer lock across worker processes (flock): every test holds the room
    shared, a serial test holds it alone.  A serial test waiting for the room holds the gate,
    through which the others enter, so that they cannot keep it from ever getting in."""

    def __init__(self, folder: str):
        self.gate = open(Path(folder) / "gate", "a+")  # noqa: SIM115 (held for the session)
        self.room = open(Path(folder) / "room", "a+")  # noqa: SIM115

    @contextlib.contextmanager
    def shared(self):
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_SH)
        finally:
            fcntl.flock(self.gate, fcntl.LOCK_UN)
        try:
            yield
        finally:
            fcntl.flock(self.room, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def alone(self):
        fcntl.flock(self.gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self.room, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self.gate, fcntl.LOCK_UN)


_turns: _Turns | None = None
_alone: contextlib.ExitStack | None = None  # held from a serial test through those right after it


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Setup, call and teardown of a serial test run while no other worker runs a test."""
    global _turns, _alone
    folder = os.environ.get(_TURNS_VARIABLE)
    if not _is_worker() or folder is None:
        yield
        return
    if _turns is None:
        _turns = _Turns(folder)
    if item.get_closest_marker("serial") is None:
        if _alone is not None:  # the serial test that was to come next went to another worker
            _alone.close()
            _alone = None
        with _turns.shared():
            yield
        return
    if _alone is None:
        _alone = contextlib.ExitStack()
        _alone.enter_context(_turns.alone())
    try:
        yield
    finally:
        if nextitem is None or nextitem.get_closest_marker("serial") is None:
            _alone.close()
            _alone = None


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """torch reads OMP_NUM_THREADS when it loads; this holds where something loaded it first."""
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(1)


def built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``name``, filled by ``build(folder)`` once per test run however many
    xdist workers ask (the documented xdist recipe: a file lock in the run's base temporary
    folder, which the workers share).  A build that failed is retried by the next asker."""
    base = tmp_path_factory.getbasetemp()
    if _is_worker():
        base = base.parent
    folder = base / name
    with FileLock(f"{folder}.lock"):
        done = folder / ".built"
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            build(folder)
            done.touch()
    return folder


# --- stores, models, data ----------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _isolated_default_store(tmp_path_factory):
    """Keep the user's cache out of the tests: the default store and the encoding cache live
    in temp dirs (each worker its own), and the default data directory is empty (a test
    reads the datasets from ``dataset_dir``, and one that forgets to say so fails everywhere,
    not only where the user's cache lacks them)."""
    paths = {
        "BASISDB_STORE": tmp_path_factory.mktemp("default-store") / "store.h5",
        "BASISDB_ENCODINGS": tmp_path_factory.mktemp("encodings"),
        "BASISDB_DATA_DIR": tmp_path_factory.mktemp("no-datasets"),
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

    def build(folder):
        build_store(folder / "small.h5", radii=SMALL_RADII, progress=False, workers=2)

    return built_once(tmp_path_factory, "small-store", build) / "small.h5"


@pytest.fixture(scope="session")
def pretrained_encoder(small_store, tmp_path_factory) -> Path:
    """A small positional encoder pretrained for real by ``basisdb pretrain`` (radius
    3, two epochs, one group of each of four crystal systems): the one pretraining run that
    the CLI, fine-tuning and evaluation tests share.  Its stdout is kept beside it."""
    options = (
        "--radius 3 --groups 1,2,14,194,225 --samples-per-group 64 --epochs 2 --minutes 1 --threads 1"
        " --d-model 32 --hidden 64"
    )

    def build(folder):
        out = folder / "encoder"
        result = run_basisdb("pretrain", *options.split(), "--out", str(out), "--store", str(small_store))
        assert result.returncode == 0, result.stderr
        (out / "stdout.txt").write_text(result.stdout)

    return built_once(tmp_path_factory, "pretrained", build) / "encoder"


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory):
    """The matminer 0.4.2 sdist, fetched for real by ``basisdb data fetch`` (pip
    download from PyPI, sha256 checked) into a fresh directory."""
    from basisdb.model.datasets import SDIST_SHA256

    def build(folder):
        result = run_basisdb("data", "fetch", "--dir", str(folder))
        assert result.returncode == 0, result.stderr
        assert SDIST_SHA256 in result.stdout

    return built_once(tmp_path_factory, "datasets", build)


@pytest.fixture(scope="session")
def parsed_dataset(dataset_dir, tmp_path_factory):
    """``parsed_dataset(name, target)``: ``load_dataset(name, target, dataset_dir)``, parsed
    once per run (flla_2015 takes seconds) and shared, as a pickle, with the other workers.
    The tests share the one copy: they take samples and subsets of it and change nothing."""
    from basisdb.model.datasets import load_dataset

    parsed = {}

    def get(name: str, target: str):
        if (name, target) not in parsed:

            def build(folder):
                data = load_dataset(name, target, dataset_dir)
                (folder / "data.pickle").write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))

            folder = built_once(tmp_path_factory, f"parsed-{name}-{target}", build)
            parsed[name, target] = pickle.loads((folder / "data.pickle").read_bytes())
        return parsed[name, target]

    return get


@pytest.fixture(scope="session")
def real_crystals(parsed_dataset, tmp_path_factory):
    """One Materials Project crystal per space group found in the built-in datasets (about
    170 groups), as basisdb Cells labelled 'mp-id (group)', in group order.

    Taken are crystals whose group is the same at half and twice the default tolerance
    (1e-2 A): a structure distorted by about the tolerance can get different groups from
    different descriptions of it (spglib decides within its tolerance), which is reported
    through ``Standardization.looser_group`` rather than hidden (test_frames)."""
    import warnings

    import spglib

    from basisdb import Cell
    from basisdb.model.datasets import DATASETS

    def build(folder):
        chosen = {}
        for name, spec in DATASETS.items():
            data = parsed_dataset(name, next(iter(spec.targets)))
            for material, structure in zip(data.ids, data.structures):
                cell = Cell.from_pymatgen(structure, label=material)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    groups = (
                        int(spglib.get_symmetry_dataset(cell.spglib_cell(), symprec=s).number)
                        for s in (1e-2, 5e-3, 2e-2)
                    )
                    group = next(groups)
                    if group not in chosen and all(other == group for other in groups):
                        chosen[group] = Cell(cell.lattice, cell.positions, cell.numbers, f"{material} ({group})")
        cells = [chosen[g] for g in sorted(chosen)]
        (folder / "cells.pickle").write_bytes(pickle.dumps(cells, protocol=pickle.HIGHEST_PROTOCOL))

    return pickle.loads((built_once(tmp_path_factory, "real-crystals", build) / "cells.pickle").read_bytes())


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A CGCNN-style folder: 12 real crystals (six, twice, at other volumes) as CIF files
    with their density in id_prop.csv, and one unparseable CIF, 'bad'."""

    def build(directory):
        rows = []
        for i, name in enumerate(REAL * 2):
            structure = real(name)
            structure.perturb(0.0)
            structure.scale_lattice(structure.volume * (1 + 0.05 * i))
            structure.to(filename=str(directory / f"m{i}.cif"))
            rows.append((f"m{i}", float(structure.density)))
        (directory / "bad.cif").write_text("data_bad\n_cell_length_a 5\nloop_\n_atom_site_label\n")
        rows.append(("bad", 1.0))
        with open(directory / "id_prop.csv", "w", newline="") as handle:
            csv.writer(handle).writerows(rows)

    return built_once(tmp_path_factory, "structures", build)


@pytest.fixture(scope="session")
def trained(small_store, data_dir, pretrained_encoder, tmp_path_factory) -> Path:
    """A CFT checkpoint trained for real by ``basisdb train`` on ``data_dir`` (radius 3,
    three epochs, from the pretrained encoder); the training's stderr is kept beside it."""

    def build(folder):
        options = "--radius 3 --epochs 3 --batch-size 4 --d-model 32 --hidden 64 --target density --unit g/cm3"
        paths = ("--data", str(data_dir), "--out", str(folder / "ckpt"), "--store", str(small_store))
        result = run_basisdb("train", *options.split(), *paths, "--pretrained", str(pretrained_encoder))
        assert result.returncode == 0, result.stderr
        (folder / "stderr.txt").write_text(result.stderr)

    return built_once(tmp_path_factory, "trained", build) / "ckpt"
