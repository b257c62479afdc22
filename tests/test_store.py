"""The HDF5 store: round trip against in-memory construction, and every way a file can be bad."""

import os
import pickle
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor

import h5py
import numpy as np
import pytest

from basisdb import (
    DEFAULT_RADII,
    BasisStore,
    ChecksumMismatchError,
    InvalidGroupError,
    InvalidHallNumberError,
    InvalidRadiusError,
    MissingEntryError,
    RadiusNotInStoreError,
    SettingNotInStoreError,
    StoreError,
    StoreNotFoundError,
    UnsupportedSchemaError,
    audit_store,
    build_basis,
    build_store,
    default_store_path,
)
from basisdb.checks import TOLERANCE

from .helpers import ALL_GROUPS, DEFAULT_HALLS, SMALL_RADII


def test_round_trip_equals_in_memory_construction(small_store):
    with BasisStore.open(small_store) as store:
        assert store.radii == tuple(float(r) for r in SMALL_RADII)
        assert store.hall_numbers == tuple(sorted(DEFAULT_HALLS))
        assert store.groups == tuple(ALL_GROUPS)
        for group in ALL_GROUPS:
            for radius in SMALL_RADII:
                stored, fresh = store.basis(group=group, radius=radius), build_basis(group=group, radius=radius)
                assert (stored.group, stored.hall_number, stored.hall_symbol) == (
                    group,
                    fresh.hall_number,
                    fresh.hall_symbol,
                )
                assert np.array_equal(stored.frequencies, fresh.frequencies)
                assert stored.routing.dtype == np.complex128
                assert (stored.routing != fresh.routing).nnz == 0
                assert np.array_equal(stored.real_factor, fresh.real_factor)
                figures = stored.verification
                assert figures["radius"] == radius and figures["n_basis"] == fresh.n_basis
                assert figures["n_absent"] == int(fresh.absent.sum())
                assert np.array_equal(figures["orbit_sizes"], fresh.orbit_sizes)
                assert max(v for k, v in figures.items() if k.endswith("_error")) <= TOLERANCE


def test_lookup_by_hall_number_and_provenance(small_store):
    with BasisStore.open(small_store) as store:
        b = store.basis(hall=525, radius=4)
        assert (b.group, b.hall_symbol) == (227, "F 4d 2 3 -1d")
        x = np.random.default_rng(0).random((10, 3))
        assert np.abs(b.encode(x) - build_basis(hall=525, radius=4).encode(x)).max() < 1e-13
        provenance = store.provenance
        for key in (
            "schema_version",
            "basisdb_version",
            "spglib_version",
            "created_utc",
            "radii",
            "hall_numbers",
            "fingerprint",
        ):
            assert key in provenance
        assert provenance["schema_version"] == 1
        assert store.identity["fingerprint"] == provenance["fingerprint"] == store.fingerprint
        with h5py.File(small_store, "r") as handle:  # a plain handle beside the store's
            datasets = []
            handle.visititems(lambda _, o: datasets.append(o) if isinstance(o, h5py.Dataset) else None)
            assert datasets and all(len(d.attrs["sha256"]) == 64 for d in datasets)
            assert all("encoding-type" in d.attrs and "encoding-version" in d.attrs for d in datasets)


def test_bad_lookups_name_what_is_allowed(small_store):
    with BasisStore.open(small_store) as store:
        with pytest.raises(RadiusNotInStoreError, match=r"radii present: \[2.0, 3.0, 4.0\]") as info:
            store.basis(group=227, radius=6)
        assert isinstance(info.value, KeyError)
        with pytest.raises(InvalidRadiusError, match="must be a number"):
            store.basis(group=227, radius="4")
        with pytest.raises(InvalidGroupError, match="outside 1-230"):
            store.basis(group=231, radius=4)
        with pytest.raises(InvalidGroupError, match="did you mean 'Fd-3m' \\(227\\)"):
            store.basis(group="Fd3-m", radius=4)
        with pytest.raises(InvalidHallNumberError, match="outside 1-530"):
            store.basis(hall=531, radius=4)
        with pytest.raises(SettingNotInStoreError, match="--settings all") as info:
            store.basis(hall=526, radius=4)
        assert isinstance(info.value, KeyError)


def _group_sizes(path, groups):
    with BasisStore.open(path) as store:
        return [store.basis(group=g, radius=4).n_basis for g in groups]


@pytest.mark.slow  # worker processes
def test_pickles_and_reads_from_many_processes(small_store):
    with BasisStore.open(small_store) as store:
        clone = pickle.loads(pickle.dumps(store))
        assert clone.basis(group=14, radius=3).n_basis == store.basis(group=14, radius=3).n_basis
        clone.close()
        expected = [store.basis(group=g, radius=4).n_basis for g in ALL_GROUPS]
    chunks = [list(ALL_GROUPS)[i::4] for i in range(4)]
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_group_sizes, [small_store] * 4, chunks))
    for chunk, sizes in zip(chunks, results):
        assert sizes == [expected[g - 1] for g in chunk]


@pytest.fixture
def copy_of_store(small_store, tmp_path):
    path = tmp_path / "copy.h5"
    shutil.copy(small_store, path)
    return path


@pytest.fixture(scope="module")
def large_store(tmp_path_factory):
    """Two settings at radius 16, where the long columns are stored compressed."""
    path = tmp_path_factory.mktemp("large") / "large.h5"
    build_store(path, radii=[2, 16], settings="1,525", progress=False)
    return path


@pytest.mark.parametrize("source", ["small_store", pytest.param("large_store", marks=pytest.mark.slow)])
def test_bit_rot_is_detected(source, request, tmp_path):
    path = tmp_path / "rotten.h5"
    shutil.copy(request.getfixturevalue(source), path)
    with h5py.File(path, "r", locking=False) as handle:
        dataset = handle["settings/525/column_value"]
        compressed = dataset.compression == "gzip"
        offset = dataset.id.get_chunk_info(0).byte_offset if dataset.chunks else dataset.id.get_offset()
    assert compressed == (source == "large_store")
    with open(path, "r+b") as raw:
        raw.seek(offset + 100)
        byte = raw.read(1)
        raw.seek(offset + 100)
        raw.write(bytes([byte[0] ^ 0x10]))
    with BasisStore.open(path) as store:
        store.basis(group=1, radius=2)  # an untouched setting still reads
        # Plain storage shows a checksum mismatch; a damaged deflate stream fails to decode.
        error = ChecksumMismatchError if not compressed else StoreError
        with pytest.raises(error, match=r"/settings/525/column_value: .*(sha256 mismatch|cannot read)"):
            store.basis(group=227, radius=2)
    report = audit_store(path, progress=False)
    assert not report.ok
    assert any("/settings/525/column_value" in line for line in report.failures)


def test_unknown_schema_version(copy_of_store):
    with h5py.File(copy_of_store, "r+") as handle:
        handle.attrs["schema_version"] = 99
    with pytest.raises(UnsupportedSchemaError, match="schema version 99 is not supported.*reads schema version 1"):
        BasisStore.open(copy_of_store)


def test_unknown_element_encoding_version(copy_of_store):
    with h5py.File(copy_of_store, "r+") as handle:
        handle["settings/525"].attrs["encoding-version"] = "7.0"
    message = r"/settings/525: encoding \(basisdb.basis-family, 7.0\) is not .* reads \(basisdb.basis-family, 1.0\)"
    with BasisStore.open(copy_of_store) as store:
        with pytest.raises(UnsupportedSchemaError, match=message):
            store.basis(group=227, radius=2)


@pytest.mark.parametrize(
    "mutate, message, on_open",
    [
        (lambda h: h.attrs.__delitem__("radii"), "root attribute 'radii' is missing", True),
        (lambda h: h.__delitem__("settings/525"), r"settings \[525\] are listed", True),
        (lambda h: h.__delitem__("settings/525/real_factor"), "'real_factor' is missing", False),
        (lambda h: h["settings/525/column_row"].attrs.__delitem__("sha256"), "no sha256", False),
        (lambda h: h.__delitem__("frequencies/euclidean"), "'euclidean' is missing", False),
    ],
)
def test_missing_entries(copy_of_store, mutate, message, on_open):
    with h5py.File(copy_of_store, "r+") as handle:
        mutate(handle)
    with pytest.raises(MissingEntryError, match=message):
        with BasisStore.open(copy_of_store) as store:
            assert not on_open
            store.basis(group=227, radius=2)


def test_not_a_store(tmp_path):
    with pytest.raises(StoreNotFoundError, match="`basisdb build --out") as info:
        BasisStore.open(tmp_path / "nothing.h5")
    assert isinstance(info.value, FileNotFoundError)
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(StoreError, match="not a readable HDF5 file"):
        BasisStore.open(text)


@pytest.mark.slow  # builds the default store
def test_default_store_is_built_on_first_use():
    path = default_store_path()  # a temporary path, set by conftest
    assert not path.exists()
    with BasisStore.open(progress=False) as store:
        assert store.path == path
        assert store.radii == tuple(float(r) for r in DEFAULT_RADII)
        assert len(store.hall_numbers) == 230
        assert store.basis(group=227, radius=16).n_basis == 130
    modified = path.stat().st_mtime_ns
    with BasisStore.open() as store:  # second use: no rebuild
        assert store.path.stat().st_mtime_ns == modified


@pytest.mark.slow  # builds the default store, in three processes started together
def test_the_quick_start_runs_as_a_plain_script_three_at_once(tmp_path):
    """A script without a ``__main__`` guard, as the quick start is written, gets the default
    store built on first use; three started together on an empty cache all get it, built once
    (the build's worker processes never re-import the script)."""
    script = tmp_path / "store.py"
    script.write_text(
        textwrap.dedent(
            """\
            from basisdb import BasisStore

            with BasisStore.open() as store:
                b = store.basis(group="Fd-3m", radius=4)
                print(b.group, b.hall_number, b.n_basis)
            """
        )
    )
    env = {name: value for name, value in os.environ.items() if name != "BASISDB_STORE"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    runs = [
        subprocess.Popen(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0, 0], [err[-2000:] for _, err in outputs]
    assert [out for out, _ in outputs] == ["227 525 5\n"] * 3
    assert sum("building settings" in err for _, err in outputs) == 1  # one built, two waited
    assert (tmp_path / "cache" / "basisdb" / "store-v1.h5").is_file()


def test_a_group_by_symbol(small_store):
    with BasisStore.open(small_store) as store:
        assert store.basis(group="Fd-3m", radius=4) is store.basis(group=227, radius=4)
        assert store.check_hall("P 21/c") == store.check_hall(14) == 81
        assert len(store.verification(group="P6_3/mmc")) == len(store.verification(group=194))


@pytest.mark.parametrize("locking", [None, True, False, "best-effort"])
def test_opens_while_h5py_holds_the_file_open_in_either_order(small_store, locking):
    # HDF5 refuses a second handle of a file with other file-locking flags than the first.
    with h5py.File(small_store, "r", locking=locking) as handle:
        with BasisStore.open(small_store) as store:
            assert store.basis(group=227, radius=2).n_basis == build_basis(group=227, radius=2).n_basis
        assert "settings" in handle  # the caller's handle outlives the store's
    with BasisStore.open(small_store) as store:
        with h5py.File(small_store, "r") as handle:  # a plain handle, after the store
            assert "settings" in handle
        assert store.basis(group=14, radius=2).n_basis > 0


def test_a_file_open_for_writing_is_refused_with_what_to_do(copy_of_store):
    with h5py.File(copy_of_store, "r+") as handle:
        with pytest.raises(StoreError, match="open for writing elsewhere in this process .* close that handle first"):
            BasisStore.open(copy_of_store)
        assert "settings" in handle
    hold = f"import h5py, sys; f = h5py.File({str(copy_of_store)!r}, 'r+'); print(1); sys.stdin.read()"
    writer = subprocess.Popen(
        [sys.executable, "-c", hold],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "1"
        with pytest.raises(StoreError, match="open for writing in another process"):
            BasisStore.open(copy_of_store)
    finally:
        writer.communicate("", timeout=60)
    with BasisStore.open(copy_of_store) as store:
        assert store.basis(group=1, radius=2).n_basis > 0
