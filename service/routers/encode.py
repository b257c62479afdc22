import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import ValidationError

from basisdb import DEFAULT_SYMPREC, INVARIANCES, Cell, crystal_frames

from ..dependencies import get_state
from ..errors import validation_detail
from ..rendering import FORMATS, encoding_content, json_bytes, npz_bytes
from ..schemas import EncodeRequest, EncodeResponse, StructureEncodingResponse, StructureRequest
from ..state import ServiceState

router = APIRouter(tags=["encode"])


def _check_count(count: int, what: str, state: ServiceState) -> None:
    if count > state.settings.max_positions:
        raise HTTPException(
            413, f"{count} {what} is more than this service accepts in one request ({state.settings.max_positions}); split the request"
        )


@router.post(
    "/encode",
    response_model=EncodeResponse,
    summary="Invariant features of fractional positions",
    description=(
        "JSON by default. Large answers serialize much faster as binary: send "
        "`Accept: application/x-npz` to receive the same fields as an npz archive."
    ),
    responses={200: {"content": {FORMATS["npz"]: {}}}},
)
def encode(request: EncodeRequest, http: Request, state: ServiceState = Depends(get_state)) -> Response:
    _check_count(len(request.positions), "positions", state)
    basis = state.store.basis(request.group, hall=request.hall, radius=request.radius)
    positions = np.asarray(request.positions, dtype=np.float64).reshape(-1, 3)
    features = basis.encode(positions, real=request.real)
    content = {
        "group": basis.group,
        "hall_number": basis.hall_number,
        "radius": basis.radius,
        "n_basis": basis.n_basis,
        **encoding_content(features, request.real),
    }
    if FORMATS["npz"] in http.headers.get("accept", ""):
        return Response(npz_bytes(content), media_type=FORMATS["npz"])
    return Response(json_bytes(content), media_type="application/json")


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
        "Send JSON (`cif` text or a pymatgen `structure` dictionary) or a multipart form with "
        "a CIF `file`. The structure is standardized into the store's setting of its space "
        "group; the response gives the standardization, the standardized cell and which input "
        "atom maps to which standardized atom. `encodings` has one row per input atom: its "
        "features averaged over all frames of the crystal (the cosets of the group in its "
        "Euclidean normalizer for this lattice, with the polar origin fixed), which makes them "
        "invariants of the crystal: any cell, origin, orientation or atom order of the same "
        "crystal gives the same rows, and with `invariance: e3` (the default) so does its mirror image."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": StructureRequest.model_json_schema(ref_template="#/components/schemas/{model}")},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def encode_structure(request: Request, state: ServiceState = Depends(get_state)) -> Response:
    parsed, label = await _read_structure_request(request)
    return await run_in_threadpool(_encode_structure, parsed, label, state)


async def _read_structure_request(request: Request) -> tuple[StructureRequest, str]:
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise HTTPException(422, "multipart requests need a CIF 'file' part")
            text = (await upload.read()).decode("utf-8", errors="replace")
            fields = {k: v for k, v in form.items() if k in ("radius", "symprec", "invariance", "real")}
            parsed = StructureRequest(cif=text, **fields)
            label = upload.filename or "upload"
        elif content_type.startswith("application/json"):
            parsed = StructureRequest.model_validate_json(await request.body())
            label = "request"
        else:
            raise HTTPException(415, f"send application/json or multipart/form-data, not {content_type or 'no content type'!r}")
    except ValidationError as exc:
        raise HTTPException(422, validation_detail(exc.errors())) from None
    if (parsed.cif is None) == (parsed.structure is None):
        raise HTTPException(422, "give exactly one of 'cif' (CIF text) and 'structure' (a pymatgen dictionary)")
    return parsed, label


def _encode_structure(parsed: StructureRequest, label: str, state: ServiceState) -> Response:
    if parsed.cif is not None:
        cell = Cell.from_cif(parsed.cif, label=label)
    else:
        cell = Cell.from_dict(parsed.structure, label=label)
    _check_count(cell.n_atoms, "atoms", state)
    frames = crystal_frames(cell, symprec=parsed.symprec, invariance=parsed.invariance)
    standard = frames.standardization
    _check_count(standard.cell.n_atoms, "atoms in the standardized cell", state)
    basis = state.store.basis(hall=standard.setting.hall_number, radius=parsed.radius)
    features = frames.encode(basis, real=parsed.real)[standard.input_to_standardized]
    content = {
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
        "encodings": encoding_content(features, parsed.real),
    }
    return Response(json_bytes(content), media_type="application/json")
