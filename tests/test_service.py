"""The HTTP service through TestClient: every answer equals the Python API on the same store."""

import io
import subprocess
import sys
from fractions import Fraction

import h5py
import numpy as np
import pytest
import scipy.sparse as sp
from fastapi.testclient import TestClient
from pymatgen.core import Lattice, Structure

from basisdb import BasisStore, Cell, crystal_frames, get_setting, standardize
from basisdb.audit import audit_store
from basisdb.redescriptions import REDESCRIPTIONS, mirrored
from basisdb.service import ServiceSettings, create_app
from basisdb.service.schemas import (
    BasisResponse,
    EncodeResponse,
    ErrorResponse,
    StructureEncodingResponse,
)
from basisdb.structures import ELEMENTS

from .helpers import ALL_GROUPS, cubic_structure

MAX_POSITIONS = 500


@pytest.fixture(scope="module")
def store(small_store):
    with BasisStore.open(small_store) as opened:
        yield opened


@pytest.fixture(scope="module")
def client(small_store):
    app = create_app(ServiceSettings(store=small_store, max_positions=MAX_POSITIONS, max_body_bytes=200_000))
    with TestClient(app) as test_client:
        yield test_client


def rock_salt(primitive=False):
    structure = cubic_structure("Fm-3m", 5.64, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    return structure.get_primitive_structure() if primitive else structure


def routing_of(document):
    routing = document["routing"]
    values = np.asarray(routing["real"]) + 1j * np.asarray(routing["imag"])
    return sp.csr_matrix((values, (routing["row"], routing["col"])), shape=routing["shape"])


def test_health_identifies_the_store(client, store):
    answer = client.get("/v1/health").json()
    assert answer["status"] == "ok"
    identity = answer["store"]
    assert identity["fingerprint"] == store.fingerprint
    assert identity["schema_version"] == 1 and identity["radii"] == list(store.radii)
    assert identity["n_settings"] == 230


def test_groups_list(client, store):
    groups = client.get("/v1/groups").json()
    assert [g["number"] for g in groups] == list(ALL_GROUPS)
    for entry in groups:
        setting = get_setting(entry["number"])
        assert (entry["hall_number"], entry["hall_symbol"], entry["symbol"]) == (
            setting.hall_number,
            setting.hall_symbol,
            setting.international,
        )
        assert entry["n_operations"] == setting.n_operations
        sizes = [f["n_basis"] for f in store.verification(entry["number"])]
        assert [s["n_basis"] for s in entry["basis_sizes"]] == sizes
    assert groups[226]["crystal_system"] == "cubic" and groups[0]["crystal_system"] == "triclinic"
    for entry in (groups[0], groups[193], groups[226]):  # one summary, in the list and in the detail
        detail = client.get(f"/v1/groups/{entry['number']}").json()
        assert {key: detail[key] for key in entry} == entry


@pytest.mark.parametrize("group, hall", [(227, None), (227, 525), (14, None), (194, None)])
def test_group_detail(client, store, group, hall):
    answer = client.get(f"/v1/groups/{group}", params={"hall": hall} if hall else {}).json()
    setting = get_setting(group, hall=hall)
    assert answer["hall_number"] == setting.hall_number and answer["metric"] == setting.metric
    rotations = np.array([op["rotation"] for op in answer["operations"]])
    translations = np.array([[Fraction(t) * 24 for t in op["translation"]] for op in answer["operations"]], dtype=int)
    assert np.array_equal(rotations, setting.rotations) and np.array_equal(translations, setting.translations)
    for served, stored in zip(answer["verification"], store.verification(group, hall=hall)):
        assert served["orbit_sizes"] == stored["orbit_sizes"].tolist()
        assert all(served[k] == stored[k] for k in stored if k != "orbit_sizes")


@pytest.mark.slow  # every group over HTTP
def test_every_basis_equals_the_python_api(client, store):
    for group in ALL_GROUPS:
        answer = client.get(f"/v1/groups/{group}/basis", params={"radius": 4})
        assert answer.status_code == 200
        BasisResponse.model_validate_json(answer.content)  # served as rendered bytes, never checked by FastAPI
        document, basis = answer.json(), store.basis(group, radius=4)
        assert (document["group"], document["hall_number"], document["hall_symbol"]) == (
            group,
            basis.hall_number,
            basis.hall_symbol,
        )
        assert np.array_equal(document["frequencies"], basis.frequencies)
        assert (routing_of(document) != basis.routing).nnz == 0
        assert document["verification"]["n_basis"] == basis.n_basis == document["n_basis"]


def test_binary_formats_carry_the_same_content(client):
    document = client.get("/v1/groups/227/basis", params={"radius": 3}).json()
    npz = client.get("/v1/groups/227/basis", params={"radius": 3, "format": "npz"})
    assert npz.headers["content-type"] == "application/x-npz"
    assert "attachment" in npz.headers["content-disposition"]
    arrays = np.load(io.BytesIO(npz.content))
    assert np.array_equal(arrays["frequencies"], document["frequencies"])
    assert np.array_equal(arrays["routing_real"], document["routing"]["real"])
    h5 = client.get("/v1/groups/227/basis", params={"radius": 3, "format": "h5"})
    with h5py.File(io.BytesIO(h5.content), "r") as handle:
        assert handle.attrs["hall_number"] == 525
        assert np.array_equal(handle["routing_col"][()], document["routing"]["col"])
        assert np.array_equal(handle["orbit_sizes"][()], document["verification"]["orbit_sizes"])


@pytest.fixture(scope="module")
def cors_client(small_store):
    """A client of an app that allows one origin (an app starts its worker processes: one
    for the tests that need one)."""
    with TestClient(create_app(ServiceSettings(store=small_store, cors_origins=["https://example.org"]))) as client:
        yield client


@pytest.mark.parametrize("format", ["json", "npz", "h5"])
def test_cached_answers_served_ahead_of_the_router_are_the_same(cors_client, format):
    client, cache = cors_client, cors_client.app.state.service.answers
    query = {"radius": 3, "format": format}  # each format its own request, asked here first
    assert cache.named("/v1/groups/225/basis", f"radius=3&format={format}".encode()) is None
    routed = client.get("/v1/groups/225/basis", params=query, headers={"Origin": "https://example.org"})
    assert routed.status_code == 200 and cache.named("/v1/groups/225/basis", routed.request.url.query) is not None
    direct = client.get("/v1/groups/225/basis", params=query, headers={"Origin": "https://example.org"})
    assert direct.content == routed.content
    assert {k: v for k, v in direct.headers.items()} == {k: v for k, v in routed.headers.items()}
    assert direct.headers["access-control-allow-origin"] == "https://example.org"


def test_only_valid_short_requests_are_remembered_and_names_are_bounded(small_store):
    app = create_app(ServiceSettings(store=small_store, basis_cache_size=2))
    cache = app.state.service.answers
    with TestClient(app) as client:
        assert client.get("/v1/groups/225/basis", params={"radius": 5}).status_code == 404  # not in the store
        assert client.get("/v1/groups/999/basis", params={"radius": 3}).status_code == 404
        assert client.get("/v1/groups/225/basis", params={"radius": "x"}).status_code == 422
        assert not cache._names
        padding = "&x=" + "y" * 600
        assert client.get(f"/v1/groups/225/basis?radius=3{padding}").status_code == 200
        assert not cache._names  # too long a name
        for spelling in range(20):  # one answer, many spellings of its request
            assert client.get(f"/v1/groups/225/basis?radius=3&n={spelling}").status_code == 200
        assert len(cache._names) == 2 * 4 and len(cache._answers) == 1
        for group in (1, 2, 3):
            client.get(f"/v1/groups/{group}/basis?radius=3")
        assert len(cache._answers) == 2 and cache.named("/v1/groups/1/basis", b"radius=3") is None  # evicted


@pytest.mark.parametrize("real", [False, True])
@pytest.mark.parametrize("group, hall", [(1, None), (62, None), (194, None), (227, 525)])
def test_encode_equals_the_python_api(client, store, group, hall, real):
    x = np.random.default_rng(group).random((50, 3))
    body = {"group": group, "radius": 4, "positions": x.tolist(), "real": real}
    if hall:
        body["hall"] = hall
    answer = client.post("/v1/encode", json=body).json()
    EncodeResponse.model_validate(answer)  # streamed, never checked by FastAPI
    expected = store.basis(group, hall=hall, radius=4).encode(x, real=real)
    if real:
        assert "imag" not in answer
        assert np.array_equal(np.asarray(answer["real"]), expected)
    else:
        assert np.array_equal(np.asarray(answer["real"]) + 1j * np.asarray(answer["imag"]), expected)


CIF = rock_salt().to(fmt="cif")


def structure_body(cell, cartesian=False, **fields):
    """A /v1/encode/structure request for a basisdb Cell, in the service's own schema."""
    positions = cell.positions @ cell.lattice if cartesian else cell.positions
    species = [ELEMENTS[z - 1] for z in cell.numbers]
    structure = {
        "lattice": cell.lattice.tolist(),
        "species": species,
        "positions": positions.tolist(),
        "cartesian": cartesian,
    }
    return {"structure": structure, **fields}


@pytest.mark.parametrize("how", ["cif", "upload", "structure", "primitive", "cartesian"])
def test_structure_encoding(client, store, how):
    if how == "cif":
        answer = client.post("/v1/encode/structure", json={"cif": CIF, "radius": 3})
    elif how == "upload":
        answer = client.post("/v1/encode/structure", files={"file": ("nacl.cif", CIF)}, data={"radius": "3"})
    else:
        structure = rock_salt(primitive=how == "primitive")
        cell = Cell.from_pymatgen(structure)
        answer = client.post("/v1/encode/structure", json=structure_body(cell, radius=3, cartesian=how == "cartesian"))
    assert answer.status_code == 200, answer.text
    # streamed, never checked by FastAPI
    document = StructureEncodingResponse.model_validate_json(answer.content).model_dump()
    assert (document["group"], document["hall_number"]) == (225, 523)
    reference = standardize(rock_salt()).cell
    positions = np.asarray(document["standardized"]["positions"])

    def atoms(numbers, xyz):  # the cell as a set, whatever the atom order
        return sorted((int(n), *(np.round(np.asarray(p) % 1, 6) % 1)) for n, p in zip(numbers, xyz))

    assert atoms(document["standardized"]["numbers"], positions) == atoms(reference.numbers, reference.positions)
    basis = store.basis(hall=523, radius=3)
    features = np.asarray(document["encodings"]["real"]) + 1j * np.asarray(document["encodings"]["imag"])
    input_numbers = [site.specie.Z for site in rock_salt(primitive=how == "primitive")]
    mapping = document["input_to_standardized"]
    averaged = crystal_frames(rock_salt()).encode(basis)  # per standardized atom, over both frames
    assert features.shape == (len(input_numbers), basis.n_basis) and document["n_frames"] == 2
    assert np.allclose(features, averaged[0], atol=1e-12)  # Na and Cl swap places between the frames
    assert len(mapping) == len(input_numbers)
    assert [document["standardized"]["numbers"][j] for j in mapping] == input_numbers
    if how != "primitive":
        assert sorted(mapping) == list(range(8))  # conventional input: a bijection
    assert set(document["wyckoffs"]) == {"a", "b"}


@pytest.mark.parametrize("invariance", ["e3", "proper"])
def test_structure_encodings_are_invariants_of_the_crystal(client, real_crystals, invariance):
    """Every re-description of a real crystal (one per space group in the data, every third)
    gives the same per-atom encodings, atom for atom."""
    rng = np.random.default_rng(11)
    kinds = dict(REDESCRIPTIONS)
    if invariance == "e3":
        kinds["mirror image"] = lambda cell, _: mirrored(cell)
    worst = 0.0
    for cell in real_crystals[::3]:
        reference = client.post(
            "/v1/encode/structure", json=structure_body(cell, radius=3, real=True, invariance=invariance)
        ).json()
        features = np.asarray(reference["encodings"]["real"])
        scale = np.abs(features).max()
        for name, redescribe in kinds.items():
            other, source = redescribe(cell, rng)
            answer = client.post(
                "/v1/encode/structure", json=structure_body(other, radius=3, real=True, invariance=invariance)
            )
            assert answer.status_code == 200, (cell.label, name, answer.text)
            document = answer.json()
            assert document["group"] == reference["group"] and document["n_frames"] == reference["n_frames"], (
                cell.label,
                name,
            )
            worst = max(worst, np.abs(np.asarray(document["encodings"]["real"]) - features[source]).max() / scale)
    assert worst < 1e-9, worst


def test_export_streams_a_store_in_the_same_schema(client, store, tmp_path):
    answer = client.get("/v1/export", params={"groups": "1-3,225,227", "radii": "2,4"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/x-hdf5"
    path = tmp_path / "export.h5"
    path.write_bytes(answer.content)
    assert audit_store(path, progress=False).ok
    with BasisStore.open(path) as exported:
        assert exported.radii == (2.0, 4.0)
        assert exported.groups == (1, 2, 3, 225, 227)
        assert (exported.basis(227, radius=4).routing != store.basis(227, radius=4).routing).nnz == 0


# -- bad input: 404 for what does not exist, 422 for what cannot be read, 413 for too much --


@pytest.mark.parametrize(
    "url, params, message",
    [
        ("/v1/groups/231", {}, "outside 1-230"),
        ("/v1/groups/0/basis", {"radius": 4}, "outside 1-230"),
        ("/v1/groups/227/basis", {"radius": 5}, "radii present: [2.0, 3.0, 4.0]"),
        ("/v1/groups/227/basis", {"radius": 4, "hall": 526}, "build with `basisdb build --settings all`"),
        ("/v1/groups/227", {"hall": 523}, "Hall numbers [525, 526]"),
        ("/v1/groups/227", {"hall": 999}, "outside 1-530"),
        ("/v1/export", {"groups": "229-240"}, "outside 1-230"),
        ("/v1/export", {"groups": "1", "radii": "2,5"}, "radii present"),
    ],
)
def test_unknown_things_are_404_with_what_exists(client, url, params, message):
    answer = client.get(url, params=params)
    assert answer.status_code == 404
    assert message in ErrorResponse.model_validate_json(answer.content).detail


@pytest.mark.parametrize(
    "body",
    [
        b'{"group": 227, "radius": 4, "positions": [[NaN, 0, 0]]}',
        b'{"group": 227, "radius": 4, "positions": [[Infinity, 0, 0]]}',
        b'{"group": 227, "radius": 4, "positions": [[0.1, 0.2]]}',
        b'{"group": 227, "radius": 4, "positions": [[0.1, 0.2, 0.3, 0.4]]}',
        b'{"group": 227, "radius": 4, "positions": [["a", 0, 0]]}',
        b'{"group": 227, "radius": "four", "positions": [[0, 0, 0]]}',
        b'{"group": 227, "radius": -4, "positions": [[0, 0, 0]]}',
        b'{"group": 227, "radius": 4, "positions": [[0, 0, 0]], "extra": 1}',
        b'{"group": 227, "radius": 4, "positions": [[0, 0, 0]',
        b'{"group": 227.5, "radius": 4, "positions": [[0, 0, 0]]}',
    ],
)
def test_malformed_encode_requests_are_422(client, body):
    answer = client.post("/v1/encode", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
    problems = ErrorResponse.model_validate_json(answer.content)
    assert isinstance(problems.detail, list) and problems.error_count == len(problems.detail) >= 1


@pytest.mark.parametrize(
    "url, body, field",
    [
        ("/v1/encode", {"group": 227, "radius": "2", "positions": [[0, 0, 0]]}, "radius"),
        ("/v1/encode", {"group": 227, "radius": 2, "positions": [[0, 0, 0]], "real": "yes"}, "real"),
        ("/v1/encode", {"group": True, "radius": 2, "positions": [[0, 0, 0]]}, "group"),
        ("/v1/encode", {"group": 227, "radius": 2, "positions": [["0.5", 0, 0]]}, "positions"),
        ("/v1/encode/structure", {"cif": CIF, "radius": "2"}, "radius"),
        ("/v1/encode/structure", {"cif": CIF, "radius": 2, "real": "yes"}, "real"),
        ("/v1/encode/structure", {"cif": CIF, "radius": 2, "symprec": "0.01"}, "symprec"),
    ],
)
def test_strings_are_not_numbers_or_booleans(client, url, body, field):
    """Request models are strict: "2" is not a number and "yes" is not a boolean (422 naming
    the field), while a JSON integer is still a float."""
    answer = client.post(url, json=body)
    assert answer.status_code == 422, answer.text
    assert {issue.loc[0] for issue in ErrorResponse.model_validate_json(answer.content).detail} == {field}
    valid = {"radius": 2, "real": True, "group": 227, "positions": [[0.5, 0, 0]], "symprec": 0.01}
    fixed = {**body, field: valid[field]}
    assert client.post(url, json=fixed).status_code == 200


def test_every_route_declares_its_error_answers(client):
    """OpenAPI names each status a route answers, with its schema (the fuzz test checks that
    nothing else is answered)."""
    declared = {
        (method.upper(), path): {status for status in operation["responses"] if status != "200"}
        for path, operations in client.get("/openapi.json").json()["paths"].items()
        for method, operation in operations.items()
    }
    assert declared == {
        ("GET", "/v1/health"): {"503"},
        ("GET", "/v1/groups"): {"503"},
        ("GET", "/v1/groups/{group}"): {"404", "422", "503"},
        ("GET", "/v1/groups/{group}/basis"): {"404", "422", "503"},
        ("POST", "/v1/encode"): {"404", "413", "422", "503"},
        ("POST", "/v1/encode/structure"): {"400", "404", "413", "415", "422", "503"},
        ("GET", "/v1/export"): {"404", "413", "422", "503"},
    }


@pytest.mark.parametrize(
    "params",
    [
        {"radius": "nan"},
        {"radius": "inf"},
        {"radius": "abc"},
        {"radius": 4, "format": "xml"},
        {"radius": 4, "hall": "x"},
    ],
)
def test_malformed_queries_are_422(client, params):
    assert client.get("/v1/groups/227/basis", params=params).status_code == 422


def test_a_group_is_a_number_or_a_symbol_everywhere(client):
    """Path, query and body take a Hermann-Mauguin symbol wherever they take a group number,
    in the spellings of the Python API; an unknown symbol is a 404 naming close ones."""
    number = client.get("/v1/groups/227/basis", params={"radius": 4}).json()
    for spelling in ("Fd-3m", "F d -3 m", "F%2041%2Fd%20-3%202%2Fm"):
        assert client.get(f"/v1/groups/{spelling}/basis", params={"radius": 4}).json() == number
    assert client.get("/v1/groups/P2_1%2Fc").json()["number"] == 14  # a slash escaped in the path
    assert client.get("/v1/groups/P%201%2021%2Fc%201").json()["number"] == 14
    body = {"radius": 4, "positions": [[0.1, 0.2, 0.3]]}
    assert (
        client.post("/v1/encode", json={**body, "group": "Fd-3m"}).json()
        == client.post("/v1/encode", json={**body, "group": 227}).json()
    )
    for answer in (
        client.get("/v1/groups/Fd-3n/basis", params={"radius": 4}),
        client.post("/v1/encode", json={**body, "group": "Fd-3n"}),
        client.get("/v1/export", params={"groups": "Fd-3n", "radii": "2"}),
    ):
        detail = answer.json()["detail"]
        assert answer.status_code == 404 and "did you mean 'Fd-3'" in detail and "'Fd-3m'" in detail
    answer = client.post("/v1/encode", json={**body, "group": "227"})  # a number is a JSON number in a body
    assert answer.status_code == 404 and "number in a string" in answer.json()["detail"]
    schema = client.get("/openapi.json").json()
    assert "Hermann-Mauguin" in str(schema["components"]["schemas"]["EncodeRequest"]["properties"]["group"])
    path = schema["paths"]["/v1/groups/{group}/basis"]["get"]["parameters"][0]
    assert path["name"] == "group" and "%2F" in path["description"]


@pytest.mark.parametrize("params", [{"groups": "1-x"}, {"groups": ""}, {"groups": "1", "radii": "two"}])
def test_malformed_export_queries_are_422(client, params):
    assert client.get("/v1/export", params=params).status_code == 422


def test_too_many_positions_or_too_large_a_body_is_413(client):
    many = {"group": 1, "radius": 2, "positions": [[0.1, 0.2, 0.3]] * (MAX_POSITIONS + 1)}
    answer = client.post("/v1/encode", json=many)
    assert answer.status_code == 413 and str(MAX_POSITIONS) in answer.json()["detail"]
    huge = {"group": 1, "radius": 2, "positions": [[0.123456789, 0.2, 0.3]] * 20_000}
    assert client.post("/v1/encode", json=huge).status_code == 413
    assert client.get("/v1/health").status_code == 200  # and the server is fine


@pytest.mark.parametrize(
    "body, message",
    [
        ({"cif": "data_broken\n_cell_length_a 5\nloop_\n_atom_site_label\n", "radius": 3}, "CIF 'the request body'"),
        ({"structure": {"lattice": "nonsense", "species": ["Na"], "positions": [[0, 0, 0]]}, "radius": 3}, "lattice"),
        (
            {
                "structure": {
                    "lattice": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                    "species": ["Xx"],
                    "positions": [[0, 0, 0]],
                },
                "radius": 3,
            },
            "'Xx' is not an element",
        ),
        (
            {
                "structure": {
                    "lattice": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
                    "species": ["Na", "Cl"],
                    "positions": [[0, 0, 0]],
                },
                "radius": 3,
            },
            "2 species for 1 positions",
        ),
        (
            {"cif": CIF, "structure": structure_body(Cell.from_pymatgen(rock_salt()))["structure"], "radius": 3},
            "exactly one of",
        ),
        ({"radius": 3}, "exactly one of"),
        ({"cif": CIF, "radius": 3, "symprec": 0}, "symprec"),
    ],
)
def test_bad_structures_are_422_with_the_reason(client, body, message):
    answer = client.post("/v1/encode/structure", json=body)
    assert answer.status_code == 422, answer.text
    assert message in str(answer.json()["detail"])


def test_disordered_structure_is_named(client):
    disordered = rock_salt()
    disordered.replace_species({"Na": {"Na": 0.5, "K": 0.5}})
    answer = client.post("/v1/encode/structure", json={"cif": disordered.to(fmt="cif"), "radius": 3})
    assert answer.status_code == 422 and "disordered" in answer.json()["detail"]


def test_pymatgen_dictionaries_are_refused_without_importing_anything(client):
    """A pymatgen dictionary can name any module and class for monty to import: the strict
    schema refuses it (and its @module, @class and properties keys) before anything runs."""
    import sys

    document = rock_salt().as_dict()
    document["sites"][0]["properties"] = {"magmom": {"@module": "this", "@class": "x"}}
    answer = client.post("/v1/encode/structure", json={"structure": document, "radius": 3})
    assert answer.status_code == 422
    refused = {tuple(error["loc"][-1:]) for error in answer.json()["detail"]}
    assert {("@module",), ("@class",), ("properties",)} <= refused
    assert "this" not in sys.modules  # 'import this' would print the Zen of Python


def test_structure_upload_without_file_and_wrong_media_type(client):
    assert client.post("/v1/encode/structure", data={"radius": "3"}, files={"other": ("x", "y")}).status_code == 422
    assert (
        client.post("/v1/encode/structure", content=b"radius=3", headers={"content-type": "text/plain"}).status_code
        == 415
    )


def test_cors_is_off_by_default_and_on_when_configured(client, cors_client):
    origin = {"Origin": "https://example.org"}
    assert "access-control-allow-origin" not in client.get("/v1/health", headers=origin).headers
    assert cors_client.get("/v1/health", headers=origin).headers["access-control-allow-origin"] == "https://example.org"


def test_no_endpoint_takes_a_file_path(client):
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        for operation in operations.values():
            names = {p["name"] for p in operation.get("parameters", [])}
            assert not names & {"path", "file", "filename", "store"}, path


@pytest.mark.slow  # a fresh interpreter
def test_the_service_reads_cif_without_pymatgen(small_store):
    """The service image installs no pymatgen: CIF is read by the core's gemmi reader. Run
    in a fresh interpreter, so that what this test session has imported does not count."""
    script = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from basisdb.service import ServiceSettings, create_app\n"
        f"cif = {CIF!r}\n"
        f"with TestClient(create_app(ServiceSettings(store={str(small_store)!r}))) as client:\n"
        "    answer = client.post('/v1/encode/structure', json={'cif': cif, 'radius': 3})\n"
        "assert answer.status_code == 200, answer.text\n"
        "assert answer.json()['group'] == 225, answer.json()\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('pymatgen', 'monty', 'ase')], 'imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# -- manners: HEAD, redirects, one error schema ----------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/v1/health",
        "/v1/groups",
        "/v1/groups/227",
        "/v1/groups/227/basis?radius=2",
        "/v1/groups/227/basis?radius=2&format=h5",
        "/v1/export?groups=2&radii=2",
        "/explorer",
        "/static/explorer.js",
        "/openapi.json",
        "/docs",
    ],
)
def test_head_answers_every_get_route_with_its_headers(client, url):
    got, head = client.get(url), client.head(url)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    for header in ("content-type", "content-length", "content-disposition"):
        assert head.headers.get(header) == got.headers.get(header), header


def test_head_of_a_post_route_is_405_with_what_is_allowed(client):
    answer = client.head("/v1/encode")
    assert answer.status_code == 405 and answer.headers["allow"] == "POST"


def test_a_trailing_slash_redirects_without_echoing_the_host(client):
    answer = client.get("/v1/health/?x=1", headers={"host": "evil.example"}, follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/v1/health?x=1"
    assert client.get("/v1/health/", follow_redirects=True).status_code == 200


@pytest.mark.parametrize(
    "method, url, options, status",
    [
        ("POST", "/v1/encode", {"content": b" " * 300_000, "headers": {"content-type": "application/json"}}, 413),
        ("POST", "/v1/health", {}, 405),
        ("GET", "/v1/nothing", {}, 404),
        ("GET", "/static/nothing.js", {}, 404),
        ("GET", "/v1/groups/227/basis", {"params": {"radius": "x", "hall": "y", "format": "z"}}, 422),
        ("POST", "/v1/encode/structure", {"content": b"x", "headers": {"content-type": "text/plain"}}, 415),
    ],
)
def test_every_error_is_json_of_one_schema(client, method, url, options, status):
    answer = client.request(method, url, **options)
    assert answer.status_code == status and answer.headers["content-type"] == "application/json"
    problem = ErrorResponse.model_validate_json(answer.content)
    if isinstance(problem.detail, list):
        assert problem.error_count == len(problem.detail) == 3  # the query's three problems
    else:
        assert problem.detail and problem.error_count is None


# -- bounded 422s ------------------------------------------------------------------------------


def flood(item: bytes, count: int, field: str = "positions") -> bytes:
    return b'{"group": 1, "radius": 2, "%s": [' % field.encode() + b",".join([item] * count) + b"]}"


@pytest.mark.parametrize(
    "body, count",
    [
        (flood(b'["a", "b", "c"]', MAX_POSITIONS), 3 * MAX_POSITIONS),  # every number of every position
        (flood(b"0", MAX_POSITIONS), MAX_POSITIONS),  # a number where a position goes
        (flood(b"null", MAX_POSITIONS), MAX_POSITIONS),
        (flood(b'"x"', MAX_POSITIONS), MAX_POSITIONS),
        (flood(b"[0, 0, 0, 0]", MAX_POSITIONS // 2), MAX_POSITIONS // 2),  # one number too many (within the commas)
        (b"{" + b",".join(b'"key%d": 0' % i for i in range(1000)) + b"}", 1000 + 3),  # unknown, and 3 missing
    ],
)
def test_a_422_lists_the_first_problems_and_counts_them_all(client, body, count):
    answer = client.post("/v1/encode", content=body, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text[:300]
    problem = ErrorResponse.model_validate_json(answer.content)
    assert len(problem.detail) == 20 and problem.error_count == count
    assert len(answer.content) < 4096


def test_a_flood_of_containers_or_separators_is_413_before_parsing(client):
    for body in (flood(b"{}", MAX_POSITIONS * 2), flood(b"0", MAX_POSITIONS * 4)):
        answer = client.post("/v1/encode", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 413 and f"--max-positions {MAX_POSITIONS}" in answer.json()["detail"]


def test_a_clients_long_key_is_cut_in_the_answer(client):
    body = {"group": 1, "radius": 2, "positions": [[0, 0, 0]], "k" * 10_000: 1}
    answer = client.post("/v1/encode", json=body)
    assert answer.status_code == 422 and len(answer.content) < 600
    assert answer.json()["detail"][0]["loc"][0] == "k" * 63 + "…"


# -- empty bases -------------------------------------------------------------------------------


@pytest.mark.parametrize("group", [220, 228, 230])
def test_an_empty_basis_is_an_answer_with_zero_columns(client, store, group):
    """Groups 220, 228 and 230 have no invariant function at radius 2 (every orbit there is
    a systematic absence): every route answers it."""
    assert store.basis(group, radius=2).n_basis == 0
    positions = [[0, 0, 0], [0.1, 0.2, 0.3]]
    for real in (False, True):
        answer = client.post("/v1/encode", json={"group": group, "radius": 2, "positions": positions, "real": real})
        assert answer.status_code == 200 and answer.json()["n_basis"] == 0
        assert answer.json()["real"] == [[], []]
    npz = client.post(
        "/v1/encode",
        json={"group": group, "radius": 2, "positions": positions},
        headers={"accept": "application/x-npz"},
    )
    assert npz.status_code == 200 and np.load(io.BytesIO(npz.content))["real"].shape == (2, 0)
    basis = client.get(f"/v1/groups/{group}/basis", params={"radius": 2})
    assert basis.status_code == 200 and BasisResponse.model_validate_json(basis.content).routing.shape[0] == 0
    assert client.get("/v1/export", params={"groups": str(group), "radii": "2"}).status_code == 200


def test_a_structure_with_an_empty_basis_is_encoded_with_zero_columns(client):
    sites = [[0.125, 0, 0.25], [0, 0, 0], [0.375, 0, 0.25], [-0.0306, 0.0512, 0.15]]  # Y3Al5O12
    garnet = Structure.from_spacegroup("Ia-3d", Lattice.cubic(12.0), ["Y", "Al", "Al", "O"], sites)
    answer = client.post("/v1/encode/structure", json={"cif": garnet.to(fmt="cif"), "radius": 2})
    assert answer.status_code == 200, answer.text
    document = StructureEncodingResponse.model_validate_json(answer.content)
    assert document.group == 230 and document.n_basis == 0
    assert np.asarray(document.encodings["real"]).shape == (len(garnet), 0)


# -- CIF consistency ---------------------------------------------------------------------------


def test_a_cif_whose_operations_are_not_its_named_group_is_read_by_them_with_a_warning(client):
    text = CIF_WITH_ONLY_THE_IDENTITY
    answer = client.post("/v1/encode/structure", json={"cif": text, "radius": 2})
    assert answer.status_code == 200, answer.text
    document = StructureEncodingResponse.model_validate_json(answer.content)
    assert document.group == 221  # Na at 0 and Cl at the centre: the CsCl structure, Pm-3m
    assert any("'F m -3 m'" in said and "No. 1, P1" in said for said in document.warnings), document.warnings
    consistent = client.post("/v1/encode/structure", json={"cif": rock_salt().to(fmt="cif"), "radius": 2})
    assert consistent.json()["group"] == 225 and consistent.json()["warnings"] == []


def test_cif_coordinates_are_bounded_as_json_ones_are(client):
    far = CIF_WITH_ONLY_THE_IDENTITY.replace("Na Na 0 0 0", "Na Na 1e308 0 0")
    answer = client.post("/v1/encode/structure", json={"cif": far, "radius": 2})
    assert answer.status_code == 422 and "more than 1e+06 cells from the origin" in answer.json()["detail"]


# Rock salt's two sites, under the name Fm-3m but with the identity as its only operation.
CIF_WITH_ONLY_THE_IDENTITY = (
    "data_NaCl _cell_length_a 5.64 _cell_length_b 5.64 _cell_length_c 5.64 _cell_angle_alpha 90 "
    "_cell_angle_beta 90 _cell_angle_gamma 90 _symmetry_space_group_name_H-M 'F m -3 m' "
    "loop_ _symmetry_equiv_pos_as_xyz 'x, y, z' "
    "loop_ _atom_site_label _atom_site_type_symbol _atom_site_fract_x _atom_site_fract_y _atom_site_fract_z "
    "Na Na 0 0 0 Cl Cl 0.5 0.5 0.5"
)
