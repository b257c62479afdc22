"""The store format as docs/store-format.md specifies it: one table of element encodings,
refusal of pairs it does not know, the HDF5 types, the checksum bytes and the test vector
(read from the document, so that the document cannot drift from the files)."""

import hashlib
import re
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from basisdb import BasisStore, MissingEntryError, UnsupportedSchemaError, audit_store, build_store, dataset_checksum
from basisdb.store_format import FAMILY_ARRAYS, VERIFICATION_FIELDS, manifest, manifest_fingerprint, supported_encodings

from .helpers import REPO_ROOT

SPEC = (REPO_ROOT / "docs" / "store-format.md").read_text()
ELEMENTS = {  # path in the file -> encoding-type, as the spec's table lists them
    "/": "basisdb.store",
    "/frequencies": "basisdb.frequency-index",
    "/frequencies/euclidean": "basisdb.frequency-set",
    "/settings": "basisdb.settings-index",
    "/settings/525": "basisdb.basis-family",
    "/settings/525/column_value": "basisdb.array",
    "/settings/525/verification": "basisdb.verification-table",
}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("format") / "store.h5"
    build_store(path, radii=[2, 4], settings="1,2,168,525", workers=1, progress=False)
    return path


@pytest.fixture
def copy_of_store(store_path, tmp_path) -> Path:
    path = tmp_path / "copy.h5"
    shutil.copy(store_path, path)
    return path


def _spec_pairs() -> set[tuple[str, str]]:
    return set(re.findall(r"^\| `(basisdb\.[a-z-]+)` +\| `([0-9.]+)` +\|", SPEC, flags=re.M))


def test_the_spec_table_is_the_registry(store_path):
    pairs = _spec_pairs()
    assert pairs == {(e.type, e.version) for e in supported_encodings()}
    with h5py.File(store_path, "r") as handle:
        for path, encoding_type in ELEMENTS.items():
            attrs = handle[path].attrs
            assert (attrs["encoding-type"], attrs["encoding-version"]) in pairs
            assert attrs["encoding-type"] == encoding_type


@pytest.mark.parametrize("path", ELEMENTS)
@pytest.mark.parametrize("attribute, value", [("encoding-version", "9.9"), ("encoding-type", "basisdb.mystery")])
def test_an_unknown_pair_is_refused_naming_element_pair_and_supported(copy_of_store, path, attribute, value):
    with h5py.File(copy_of_store, "r+") as handle:
        handle[path].attrs[attribute] = value
        found = (handle[path].attrs["encoding-type"], handle[path].attrs["encoding-version"])
    expected = ELEMENTS[path]
    where = f"{copy_of_store}:{path}" if path != "/" else f"{copy_of_store}"
    message = (
        rf"^{re.escape(where)}: encoding \({re.escape(found[0])}, {re.escape(found[1])}\) is not one that basisdb "
        rf".* reads for this element \(it reads \({re.escape(expected)}, 1\.0\)\); .*`basisdb build`$"
    )
    with pytest.raises(UnsupportedSchemaError, match=message):
        with BasisStore.open(copy_of_store) as store:
            store.basis(group=227, radius=2)


def test_a_known_pair_in_the_wrong_place_is_refused(copy_of_store):
    with h5py.File(copy_of_store, "r+") as handle:
        handle["settings"].attrs["encoding-type"] = "basisdb.basis-family"
    message = r"/settings: encoding \(basisdb.basis-family, 1.0\) .* reads \(basisdb.settings-index, 1.0\)"
    with pytest.raises(UnsupportedSchemaError, match=message):
        BasisStore.open(copy_of_store)


def test_a_missing_pair_is_refused(copy_of_store):
    with h5py.File(copy_of_store, "r+") as handle:
        del handle["frequencies"].attrs["encoding-version"]
    with BasisStore.open(copy_of_store) as store:
        with pytest.raises(MissingEntryError, match="/frequencies: missing encoding-type/encoding-version"):
            store.basis(group=227, radius=2)


def test_round_trip_through_the_registry(store_path, tmp_path):
    with BasisStore.open(store_path) as store:
        assert store.hall_numbers == (1, 2, 168, 525) and store.radii == (2.0, 4.0)
        assert store.verify_checksums() == []
        record = store.family_record(hall=525)
        assert record.basis.radius == 4.0 and record.verification["radius"].tolist() == [2.0, 4.0]
    assert audit_store(store_path, progress=False).ok


def test_hdf5_types_are_those_of_the_spec(store_path):
    with h5py.File(store_path, "r") as handle:
        nodes = [handle["/"]]
        handle.visititems(lambda _, node: nodes.append(node))
        for node in nodes:
            for name in node.attrs:
                kind = node.attrs.get_id(name).get_type()
                if isinstance(kind, h5py.h5t.TypeStringID):  # str: variable-length UTF-8, null-terminated
                    assert kind.is_variable_str() and kind.get_cset() == h5py.h5t.CSET_UTF8, (node.name, name)
                    assert kind.get_strpad() == h5py.h5t.STR_NULLTERM
                elif isinstance(kind, h5py.h5t.TypeIntegerID):  # int: signed little-endian, 64 bits unless an array
                    assert kind.get_order() == h5py.h5t.ORDER_LE and kind.get_sign() == h5py.h5t.SGN_2
                    scalar = node.attrs.get_id(name).get_space().get_simple_extent_ndims() == 0
                    assert kind.get_size() == (8 if scalar else 4), (node.name, name)
        family = handle["settings/525"]
        for name, dtype in FAMILY_ARRAYS.items():
            kind = family[name].id.get_type()
            if dtype == np.complex128:  # compound {r, i} of little-endian float64 at offsets 0 and 8
                assert isinstance(kind, h5py.h5t.TypeCompoundID) and kind.get_size() == 16
                members = [
                    (kind.get_member_name(i), kind.get_member_offset(i), kind.get_member_type(i)) for i in range(2)
                ]
                assert [(m, o) for m, o, _ in members] == [(b"r", 0), (b"i", 8)]
                assert all(t.get_size() == 8 and t.get_order() == h5py.h5t.ORDER_LE for _, _, t in members)
                assert all(isinstance(t, h5py.h5t.TypeFloatID) for _, _, t in members)
            else:
                assert kind.get_size() == np.dtype(dtype).itemsize and kind.get_order() == h5py.h5t.ORDER_LE
        table = family["verification"].id.get_type()
        assert table.get_size() == 64
        fields = [(table.get_member_name(i).decode(), table.get_member_offset(i)) for i in range(table.get_nmembers())]
        assert fields == [(name, 8 * i) for i, (name, _) in enumerate(VERIFICATION_FIELDS)]


def _documented_bytes(array: np.ndarray) -> bytes:
    """The checksum bytes as the spec words them, built without NumPy's own byte layout."""
    out = bytearray()
    for element in array.reshape(-1):
        if array.dtype.names:
            fields = (element[name] for name in array.dtype.names)
            out += b"".join(value.astype(value.dtype.newbyteorder("<")).tobytes() for value in fields)
        elif np.iscomplexobj(array):
            out += np.float64(element.real).astype("<f8").tobytes() + np.float64(element.imag).astype("<f8").tobytes()
        else:
            out += element.astype(element.dtype.newbyteorder("<")).tobytes()
    return bytes(out)


def test_checksums_are_over_the_documented_bytes(store_path):
    example = re.search(r"`column_value = \[1\+0j\]` has the checksum of the 16 bytes\s+`([0-9a-f ]+)`", SPEC)
    assert example, "the checksum example is missing from the spec"
    assert dataset_checksum(np.array([1 + 0j])) == hashlib.sha256(bytes.fromhex(example.group(1))).hexdigest()
    with h5py.File(store_path, "r") as handle:
        for name in (*FAMILY_ARRAYS, "verification"):
            dataset = handle[f"settings/525/{name}"]
            assert hashlib.sha256(_documented_bytes(dataset[()])).hexdigest() == dataset.attrs["sha256"], name
        recorded = manifest(handle)
        assert all(path.startswith("/") and not path.endswith("/") for path in recorded)
        assert "/settings/525/column_row" in recorded
        text = "".join(f"{path} {recorded[path]}\n" for path in sorted(recorded)).encode("utf-8")
        assert hashlib.sha256(text).hexdigest() == manifest_fingerprint(recorded) == handle.attrs["fingerprint"]


def test_the_documented_test_vector(store_path):
    found = re.search(
        r"hall (\d+), radius ([\d.]+), x = \(([^)]*)\), row (\d+):\s*\n"
        r"\s*e\(x\)\s*=\s*(\S+) ([+-]) (\S+)i\s*\n"
        r"\s*real e\(x\)\s*=\s*(\S+)",
        SPEC,
    )
    assert found, "the test vector is missing from the spec"
    hall, radius, row = int(found[1]), float(found[2]), int(found[4])
    x = np.array([float(v) for v in found[3].split(",")])
    expected = complex(float(found[5]), float(found[7]) * (1 if found[6] == "+" else -1))
    expected_real = float(found[8])
    # As a reader in another language would: from the datasets, by the spec's formula.
    with h5py.File(store_path, "r") as handle:
        family = handle[f"settings/{hall:03d}"]
        q_max = int(np.floor(radius**2 + 1e-9))
        frequencies = handle[f"frequencies/{family.attrs['metric']}"][()].astype(np.int64)
        n_columns = int(((frequencies**2).sum(axis=1) <= q_max).sum())  # euclidean metric
        column_row = family["column_row"][:n_columns]
        column_value = family["column_value"][:n_columns]
        partner, factor = family["real_partner"][row], family["real_factor"][row]

        def e(i):
            k = column_row == i
            return (column_value[k] * np.exp(2j * np.pi * (frequencies[:n_columns][k] @ x))).sum()

        from_arrays = e(row)
        from_arrays_real = (factor * e(min(row, partner))).real
    with BasisStore.open(store_path) as store:
        basis = store.basis(hall=hall, radius=radius)
        from_store = basis.encode(x[None])[0, row]
        from_store_real = basis.encode(x[None], real=True)[0, row]
    digits = 1e-15  # 15 significant digits, the last within one unit
    for value in (from_arrays, from_store):
        assert abs(value.real - expected.real) <= digits and abs(value.imag - expected.imag) <= digits
    for value in (from_arrays_real, from_store_real):
        assert abs(value - expected_real) <= digits
