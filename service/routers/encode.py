import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic.json_schema import models_json_schema

from basisdb import DEFAULT_SYMPREC, INVARIANCES, BasisDBWarning, Cell, crystal_frames

from ..cancellation import Cancellation
from ..config import ServiceSettings
from ..dependencies import get_state
from ..errors import error_responses
from ..limits import Lease, LeasedStreamingResponse
from ..rendering import FORMATS, encoding_content, json_pieces, rows_of, write_npz
from ..schemas import EncodeRequest, EncodeResponse, StructureEncodingResponse, StructureRequest
from ..state import ServiceState
from ..validation import MAX_ISSUES, BodyShape, group_of, read_json, validate
from ..workers import worker_store

router = APIRouter(tags=["encode"])


def _too_large(what: str, count: int, limit: int, hint: str) -> HTTPException:
    return HTTPException(413, f"{what} is {count}, more than this service answers in one request ({limit}); {hint}")


# The routes read their bodies themselves (bounded before they are parsed), so FastAPI does not
# see the request models: their schemas are added to the OpenAPI components by app.create_app.
REQUEST_SCHEMAS: dict[str, dict] = models_json_schema(
    [(EncodeRequest, "validation"), (StructureRequest, "validation")], ref_template="#/components/schemas/{model}"
)[1]["$defs"]


def _json_body(model) -> dict:
    return {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}


@router.post(
    "/encode",
    response_model=EncodeResponse,
    summary="Invariant features of fractional positions",
    description=(
        "JSON by default, streamed in pieces. Large answers serialize much faster as binary: send "
        "`Accept: application/x-npz` to receive the same fields as an npz archive. At most "
        "`max_positions` positions, and at most `max_output_values` numbers in the answer "
        "(positions x basis functions, x 2 for complex features): more gets 413 before any work."
    ),
    responses={
        200: {"content": {FORMATS["npz"]: {}}},
        **error_responses(
            404, 413, 422, 503, meaning={413: "too many positions, or too large an answer; the message gives the limit"}
        ),
    },
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": _json_body(EncodeRequest)}}},
)
async def encode(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    body = await request.body()  # bounded by max_body_bytes before it is read
    as_npz = FORMATS["npz"] in request.headers.get("accept", "")
    lease = state.heavy.lease()
    try:
        # Parsed and validated in the slot's worker process (pydantic holds the GIL), encoded here;
        # a small body in a thread here, where the trip to a worker would cost more than its parse.
        limit = state.settings.max_positions
        if len(body) <= INLINE_PARSE_BYTES:
            job = await state.heavy.run(request, lambda cancel: read_encode_request(cancel, body, limit), lease)
        else:
            job = await state.heavy.run_in_process(request, read_encode_request, lease, body, limit)
        fields, features = await state.heavy.run(request, lambda cancel: _encode_positions(job, state, cancel), lease)
        real = not np.iscomplexobj(features)
        if as_npz:
            path = state.scratch.new_file(".npz")
            lease.on_release(lambda: path.unlink(missing_ok=True))  # once the writer and the answer are done
            await state.heavy.run(
                request, lambda cancel: write_npz(path, {**fields, **encoding_content(features, real)}), lease
            )
            return LeasedStreamingResponse(_file_pieces(path), lease, media_type=FORMATS["npz"])
        columns = (
            {"real": rows_of(features)} if real else {"real": rows_of(features.real), "imag": rows_of(features.imag)}
        )
        return await _json_answer(request, state, lease, fields, columns, features.shape)
    except BaseException:
        lease.drop()
        raise


# Answers of at most this many numbers are rendered whole, in the heavy slot, and sent as one
# body; larger ones are streamed in pieces (rendering.json_pieces).
INLINE_ANSWER_NUMBERS = 1 << 16


async def _json_answer(
    request: Request,
    state: ServiceState,
    lease: Lease,
    fields: dict,
    columns: dict,
    shape: tuple[int, int],
    within: str | None = None,
) -> Response:
    """The JSON answer under ``lease``: which it frees once the answer is sent.

    Written by :func:`~basisdb.service.rendering.json_pieces`, never through FastAPI's validation of
    the route's ``response_model``: an answer of millions of numbers is streamed a piece at a
    time.  The tests check it against the model (and the fuzz test against the OpenAPI schema).
    """
    pieces = json_pieces(fields, columns, *shape, within=within)
    if shape[0] * shape[1] * len(columns) > INLINE_ANSWER_NUMBERS:
        return LeasedStreamingResponse(pieces, lease, media_type="application/json")
    body = await state.heavy.run(request, lambda cancel: b"".join(pieces), lease)
    lease.drop()
    return Response(body, media_type="application/json")


# Numbers encoded between two checks for a deadline or a client that left.
ENCODE_BLOCK_NUMBERS = 1 << 18
# Bodies up to this size are parsed in a thread of the server: their parse holds the GIL for at
# most a few milliseconds, less than the trip to a worker process costs (about 3 ms).
INLINE_PARSE_BYTES = 64 * 1024


@dataclass(frozen=True)
class EncodeJob:
    """A valid encoding request, as a worker process sends it back: ``positions`` is (N, 3)
    float64 fractional coordinates (an array pickles in one piece; N lists would not)."""

    group: int
    radius: float
    hall: int | None
    real: bool
    positions: np.ndarray


def read_encode_request(cancel: Cancellation, body: bytes, max_positions: int) -> EncodeJob:
    """Parse and check an encoding request (in a worker process, or a thread for a small
    body), bounded before each step."""
    shape = BodyShape(
        containers=max_positions + 8,  # the positions' arrays, the body's object
        separators=3 * max_positions + 16,  # two inside each position, one between two, a few between fields
        limit=f"--max-positions {max_positions}",
        hint="split the request",
    )
    data = read_json(body, shape)
    positions = data.get("positions") if isinstance(data, dict) else None
    if isinstance(positions, list) and len(positions) > max_positions:
        raise _too_large("the number of positions", len(positions), max_positions, "split the request")
    cancel.check()
    request = validate(EncodeRequest, data)
    positions = np.asarray(request.positions, dtype=np.float64).reshape(-1, 3)
    return EncodeJob(group_of(request.group), request.radius, request.hall, request.real, positions)


def _encode_positions(job: EncodeJob, state: ServiceState, cancel: Cancellation) -> tuple[dict, np.ndarray]:
    """Encode a checked request (in a heavy thread): the answer's fields and its features,
    (positions, basis functions), bounded by the limits before any work."""
    basis = state.usable_store().basis(job.group, hall=job.hall, radius=job.radius)
    n_positions = len(job.positions)
    values = n_positions * basis.n_basis * (1 if job.real else 2)
    if values > state.settings.max_output_values:
        raise _too_large(
            f"the answer ({n_positions} positions x {basis.n_basis} basis functions{'' if job.real else ' x 2 parts'})",
            values,
            state.settings.max_output_values,
            "send fewer positions, a smaller radius, or real=true",
        )
    cancel.check()
    features = np.empty((n_positions, basis.n_basis), dtype=np.float64 if job.real else np.complex128)
    rows = max(1, ENCODE_BLOCK_NUMBERS // max(1, basis.n_basis))  # an empty basis has zero columns
    for start in range(0, n_positions, rows):
        cancel.check()
        features[start : start + rows] = basis.encode(job.positions[start : start + rows], real=job.real)
    fields = {"group": basis.group, "hall_number": basis.hall_number, "radius": basis.radius, "n_basis": basis.n_basis}
    return fields, features


def _file_pieces(path, size: int = 1 << 20):
    with open(path, "rb") as handle:
        while chunk := handle.read(size):
            yield chunk


_MULTIPART_SCHEMA = {
    "type": "object",
    "required": ["file", "radius"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "a CIF file"},
        "radius": {"type": "number", "exclusiveMinimum": 0},
        "symprec": {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "default": DEFAULT_SYMPREC},
        "invariance": {"type": "string", "enum": list(INVARIANCES), "default": "e3"},
        "real": {"type": "boolean", "default": False},
    },
}


@router.post(
    "/encode/structure",
    response_model=StructureEncodingResponse,
    summary="Standardize a structure with spglib and encode its atoms",
    description=(
        "Send JSON (`cif` text, or a `structure` of lattice, species and positions) or a multipart form "
        "with a CIF `file`. The structure is standardized into the store's setting of its space "
        "group; the response gives the standardization, the standardized cell and which input "
        "atom maps to which standardized atom. `encodings` has one row per input atom: its "
        "features averaged over all frames of the crystal (the cosets of the group in its "
        "Euclidean normalizer for this lattice, with the polar origin fixed), which makes them "
        "invariants of the crystal: any cell, origin, orientation or atom order of the same "
        "crystal gives the same rows, and with `invariance: e3` (the default) so does its mirror image. "
        "At most `max_atoms` atoms (input, standardized, or what a CIF's sites and symmetry "
        "operations can expand to) and `max_frame_work` plane-wave evaluations: more gets 413."
    ),
    responses=error_responses(
        400,
        404,
        413,
        415,
        422,
        503,
        meaning={413: "too many atoms, or too much work for one request; the message gives the limit"},
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": _json_body(StructureRequest),
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def encode_structure(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    parsed_body, label = await _read_structure_request(request)
    store = state.usable_store()
    lease = state.heavy.lease()
    try:
        # In a worker process: spglib holds the GIL for the whole symmetry search.
        fields, arrays = await state.heavy.run_in_process(
            request, _encode_structure, lease, parsed_body, label, state.settings, store.path, store.fingerprint
        )
        columns = {name: rows_of(array) for name, array in arrays.items()}
        return await _json_answer(request, state, lease, fields, columns, arrays["real"].shape, within="encodings")
    except BaseException:
        lease.drop()
        raise


async def _read_structure_request(request: Request) -> tuple[bytes | dict, str]:
    """The raw JSON body, or the fields of a multipart upload; parsed later, off the loop."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "multipart requests need a CIF 'file' part")
        text = (await upload.read()).decode("utf-8", errors="replace")
        fields = {k: v for k, v in form.items() if k in ("radius", "symprec", "invariance", "real")}
        return {"cif": text, **fields}, upload.filename or "the uploaded file"
    if content_type.startswith("application/json"):
        # bounded by max_body_bytes; parsed in the worker.  The label names the input in messages.
        return await request.body(), "the request body"
    raise HTTPException(
        415, f"send application/json or multipart/form-data, not {content_type[:100] or 'no content type'!r}"
    )


# Commas and brackets a structure request may hold beyond its atoms' own: those of free text
# such as a CIF's (a large CIF's symmetry operations hold a few hundred).
TEXT_SEPARATORS = 16_384


def read_structure_request(body: bytes | dict, max_atoms: int) -> StructureRequest:
    """Parse and check a structure request, bounded before each step: a JSON body, or the
    text fields of a multipart form."""
    if not isinstance(body, bytes):
        return validate(StructureRequest, body, strict=False)  # a form's fields are text by nature
    shape = BodyShape(
        containers=max_atoms + 64,
        separators=4 * max_atoms + TEXT_SEPARATORS,
        limit=f"--max-atoms {max_atoms}",
        hint="send a smaller cell (a CIF with much text as a multipart file upload)",
    )
    data = read_json(body, shape)
    given = data.get("structure") if isinstance(data, dict) else None
    for name in ("species", "positions"):
        items = given.get(name) if isinstance(given, dict) else None
        if isinstance(items, list) and len(items) > max_atoms:
            raise _too_large("the number of atoms", len(items), max_atoms, "send a smaller cell")
    return validate(StructureRequest, data)


def _encode_structure(
    cancel: Cancellation, body: bytes | dict, label: str, settings: ServiceSettings, store_path: Path, fingerprint: str
):
    """Standardize, frame and encode a structure (in a worker process), bounded at every step;
    the warnings of reading and standardizing it go into the answer."""
    parsed = read_structure_request(body, settings.max_atoms)
    if (parsed.cif is None) == (parsed.structure is None):
        raise HTTPException(
            422, "give exactly one of 'cif' (CIF text) and 'structure' (lattice, species and positions)"
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", BasisDBWarning)
        fields, arrays = _standardized_encoding(cancel, parsed, label, settings, store_path, fingerprint)
    said = (str(w.message)[:1000] for w in caught if issubclass(w.category, BasisDBWarning))
    fields["warnings"] = list(dict.fromkeys(said))[:MAX_ISSUES]  # each once, in the order given
    return fields, arrays


def _standardized_encoding(
    cancel: Cancellation, parsed: StructureRequest, label: str, settings: ServiceSettings, store_path, fingerprint
):
    store = worker_store(store_path, fingerprint)
    store.check_radius(parsed.radius)
    if parsed.cif is not None:
        cell = Cell.from_cif(parsed.cif, label=label, max_atoms=settings.max_atoms)
    else:
        given = parsed.structure
        if len(given.species) != len(given.positions):
            raise HTTPException(
                422, f"{len(given.species)} species for {len(given.positions)} positions: give one per position"
            )
        cell = Cell.from_species(
            given.lattice, given.species, given.positions, cartesian=given.cartesian, label=given.label or label
        )
    cancel.check()
    frames = crystal_frames(cell, symprec=parsed.symprec, invariance=parsed.invariance)
    standard = frames.standardization
    if standard.cell.n_atoms > settings.max_atoms:
        raise _too_large(
            "the number of atoms in the standardized cell",
            standard.cell.n_atoms,
            settings.max_atoms,
            "send a smaller cell",
        )
    basis = store.basis(hall=standard.setting.hall_number, radius=parsed.radius)
    work = frames.n_frames * standard.cell.n_atoms * basis.n_frequencies
    if work > settings.max_frame_work:
        raise _too_large(
            f"the work ({frames.n_frames} frames x {standard.cell.n_atoms} atoms x {basis.n_frequencies} frequencies)",
            work,
            settings.max_frame_work,
            "use a smaller radius or cell",
        )
    values = cell.n_atoms * basis.n_basis * (1 if parsed.real else 2)
    if values > settings.max_output_values:
        raise _too_large("the answer", values, settings.max_output_values, "use a smaller radius, or real=true")
    cancel.check()
    features = frames.encode(basis, real=parsed.real)[standard.input_to_standardized]
    fields = {
        "group": standard.setting.group,
        "hall_number": standard.setting.hall_number,
        "hall_symbol": standard.setting.hall_symbol,
        "international": standard.setting.international,
        "radius": basis.radius,
        "symprec": standard.symprec,
        "invariance": frames.invariance,
        "looser_group": standard.looser_group,
        "n_basis": basis.n_basis,
        "n_frames": frames.n_frames,
        "transformation_matrix": standard.transformation_matrix,
        "origin_shift": standard.origin_shift,
        "inverted": standard.inverted,
        "standardized": {
            "lattice": standard.cell.lattice,
            "positions": standard.cell.positions,
            "numbers": standard.cell.numbers,
        },
        "input_to_standardized": standard.input_to_standardized,
        "wyckoffs": list(standard.wyckoffs),
        "equivalent_atoms": standard.equivalent_atoms,
    }
    return fields, encoding_content(features, parsed.real)
