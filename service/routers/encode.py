import functools
import os
import tempfile
from pathlib import Path

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import ValidationError
from pydantic.json_schema import models_json_schema

from basisdb import DEFAULT_SYMPREC, INVARIANCES, BasisStore, Cell, StoreError, crystal_frames

from ..config import ServiceSettings
from ..dependencies import get_state
from ..errors import error_responses, validation_detail
from ..limits import Cancellation, Lease, LeasedStreamingResponse, json_body_items
from ..rendering import FORMATS, encoding_content, json_pieces, rows_of, write_npz
from ..schemas import EncodeRequest, EncodeResponse, StructureEncodingResponse, StructureRequest
from ..state import ServiceState

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
    if json_body_items(body) > state.settings.max_positions + 8:  # counted in C, before parsing
        raise _too_large(
            "the number of positions", json_body_items(body) - 1, state.settings.max_positions, "split the request"
        )
    as_npz = FORMATS["npz"] in request.headers.get("accept", "")
    lease = state.heavy.lease()
    try:
        fields, features = await state.heavy.run(request, lambda cancel: _encode_positions(body, state, cancel), lease)
        real = not np.iscomplexobj(features)
        if as_npz:
            handle, name = tempfile.mkstemp(prefix="basisdb-", suffix=".npz")
            os.close(handle)
            path = Path(name)
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


def _encode_positions(body: bytes, state: ServiceState, cancel: Cancellation) -> tuple[dict, np.ndarray]:
    """Parse, check and encode an encoding request (in a heavy slot): the answer's fields and
    its features, (positions, basis functions), computed once and bounded by the limits."""
    try:
        request = EncodeRequest.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(422, validation_detail(exc.errors())) from None
    settings = state.settings
    if len(request.positions) > settings.max_positions:
        raise _too_large("the number of positions", len(request.positions), settings.max_positions, "split the request")
    basis = state.usable_store().basis(request.group, hall=request.hall, radius=request.radius)
    values = len(request.positions) * basis.n_basis * (1 if request.real else 2)
    if values > settings.max_output_values:
        raise _too_large(
            f"the answer ({len(request.positions)} positions x {basis.n_basis} basis functions"
            f"{'' if request.real else ' x 2 parts'})",
            values,
            settings.max_output_values,
            "send fewer positions, a smaller radius, or real=true",
        )
    cancel.check()
    positions = np.asarray(request.positions, dtype=np.float64).reshape(-1, 3)
    features = np.empty((len(positions), basis.n_basis), dtype=np.float64 if request.real else np.complex128)
    rows = max(1, ENCODE_BLOCK_NUMBERS // basis.n_basis)
    for start in range(0, len(positions), rows):
        cancel.check()
        features[start : start + rows] = basis.encode(positions[start : start + rows], real=request.real)
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
    parsed_body, label = await _read_structure_request(request, state)
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


async def _read_structure_request(request: Request, state: ServiceState) -> tuple[bytes | dict, str]:
    """The raw JSON body, or the fields of a multipart upload; parsed later, off the loop."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=8)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPException(422, "multipart requests need a CIF 'file' part")
        text = (await upload.read()).decode("utf-8", errors="replace")
        fields = {k: v for k, v in form.items() if k in ("radius", "symprec", "invariance", "real")}
        return {"cif": text, **fields}, upload.filename or "upload"
    if content_type.startswith("application/json"):
        body = await request.body()
        if json_body_items(body) > state.settings.max_atoms + 16:  # counted in C, before parsing
            raise _too_large(
                "the number of atoms", json_body_items(body) - 4, state.settings.max_atoms, "send a smaller cell"
            )
        return body, "request"
    raise HTTPException(
        415, f"send application/json or multipart/form-data, not {content_type[:100] or 'no content type'!r}"
    )


@functools.lru_cache(maxsize=1)
def _worker_store(path: Path, fingerprint: str) -> BasisStore:
    store = BasisStore.open(path, progress=False)
    if store.fingerprint != fingerprint:  # replaced on disk since the server opened it
        raise StoreError(f"the store file {path.name} was replaced on disk; restart the service to serve it")
    return store


def _encode_structure(
    cancel: Cancellation, body: bytes | dict, label: str, settings: ServiceSettings, store_path: Path, fingerprint: str
):
    """Standardize, frame and encode a structure (in a worker process), bounded at every step."""
    try:
        if isinstance(body, bytes):
            parsed = StructureRequest.model_validate_json(body)
        else:  # a multipart form, whose fields are text by nature
            parsed = StructureRequest.model_validate(body, strict=False)
    except ValidationError as exc:
        raise HTTPException(422, validation_detail(exc.errors())) from None
    if (parsed.cif is None) == (parsed.structure is None):
        raise HTTPException(
            422, "give exactly one of 'cif' (CIF text) and 'structure' (lattice, species and positions)"
        )
    store = _worker_store(store_path, fingerprint)
    store.check_radius(parsed.radius)
    if parsed.cif is not None:
        cell = Cell.from_cif(parsed.cif, label=label, max_atoms=settings.max_atoms)
    else:
        given = parsed.structure
        if len(given.species) != len(given.positions):
            raise HTTPException(
                422, f"{len(given.species)} species for {len(given.positions)} positions: give one per position"
            )
        if len(given.positions) > settings.max_atoms:
            raise _too_large("the number of atoms", len(given.positions), settings.max_atoms, "send a smaller cell")
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
