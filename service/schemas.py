"""Request and response models; their examples appear in the OpenAPI schema.

Request models are strict: a JSON string is not a number and ``"yes"`` is not a boolean (a
JSON integer is still a float).  They are validated in pieces (:mod:`basisdb.service.validation`),
as Python objects parsed from JSON, so their arrays are lists, never tuples.  Every route
declares the error answers it can give (:func:`basisdb.service.errors.error_responses`); all of
them, whatever the status, are an :class:`ErrorResponse`."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from basisdb import DEFAULT_SYMPREC, Invariance

from .validation import GROUP_DESCRIPTION, MAX_GROUP_TEXT

__all__ = [
    "ErrorResponse",
    "ValidationIssue",
    "FiniteFloat",
    "Position",
    "EncodeRequest",
    "EncodeResponse",
    "StructureInput",
    "StructureRequest",
    "StructureEncodingResponse",
    "HealthResponse",
    "GroupSummary",
    "GroupDetail",
    "BasisResponse",
]

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Position = Annotated[list[FiniteFloat], Field(min_length=3, max_length=3)]
PositiveRadius = Annotated[
    float, Field(gt=0, allow_inf_nan=False, description="a truncation radius present in the store")
]


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="where in the request: e.g. ['radius'] or ['positions', 0, 1]")
    msg: str
    type: str


class ErrorResponse(BaseModel):
    """Every error answer, whatever its status."""

    detail: str | list[ValidationIssue] = Field(
        description="what went wrong and what is allowed or present instead; for a request that cannot be read "
        "(422), its first problems, one entry per offending field"
    )
    error_count: int | None = Field(
        None, description="with a list of problems: how many the request has in all (the list holds at most 20)"
    )


class EncodeRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"group": 227, "radius": 4, "positions": [[0, 0, 0], [0.125, 0.125, 0.125]], "real": False}]
        },
    )

    group: int | Annotated[str, Field(max_length=MAX_GROUP_TEXT)] = Field(
        description=GROUP_DESCRIPTION, examples=[227, "Fd-3m"]
    )
    radius: PositiveRadius
    positions: list[Position] = Field(description="fractional coordinates (N, 3) in the setting's conventional cell")
    real: bool = Field(False, description="return the real orthonormal basis instead of the complex one")
    hall: int | None = Field(None, description="Hall number (1-530) of another setting of the group")


class EncodeResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group": 227,
                    "hall_number": 525,
                    "radius": 4,
                    "n_basis": 5,
                    "real": [[0.35, 0.29, 0.2, 0.35, 0.41]],
                    "imag": [[0.0, 0.0, 0.0, 0.0, 0.0]],
                }
            ]
        }
    )

    group: int
    hall_number: int
    radius: float
    n_basis: int
    real: list[list[float]] = Field(description="(N, n_basis) real parts (or the real features when real=true)")
    imag: list[list[float]] | None = Field(None, description="(N, n_basis) imaginary parts; absent when real=true")


Vector = Annotated[list[FiniteFloat], Field(min_length=3, max_length=3)]


class StructureInput(BaseModel):
    """A structure as plain numbers and element symbols."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {
                    "lattice": [[5.64, 0, 0], [0, 5.64, 0], [0, 0, 5.64]],
                    "species": ["Na", "Cl"],
                    "positions": [[0, 0, 0], [0.5, 0.5, 0.5]],
                }
            ]
        },
    )

    lattice: Annotated[list[Vector], Field(min_length=3, max_length=3)] = Field(description="rows a, b, c in Angstrom")
    species: list[Annotated[str, Field(max_length=3)] | Annotated[int, Field(ge=1, le=118)]] = Field(
        description="element symbols ('Na') or atomic numbers, one per position"
    )
    positions: list[Position] = Field(
        description="(N, 3) fractional coordinates, or Cartesian in Angstrom with cartesian=true"
    )
    cartesian: bool = Field(False, description="positions are Cartesian (Angstrom), in the frame of the lattice rows")
    label: Annotated[str, Field(max_length=200)] | None = Field(None, description="a name for messages")


class StructureRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # a multipart form's fields are text: validated with strict=False
        json_schema_extra={
            "examples": [
                {
                    "cif": (
                        "data_NaCl\n_symmetry_space_group_name_H-M 'F m -3 m'\n"
                        "_cell_length_a 5.64\n_cell_length_b 5.64\n_cell_length_c 5.64\n"
                        "_cell_angle_alpha 90\n_cell_angle_beta 90\n_cell_angle_gamma 90\n"
                        "loop_\n_atom_site_label\n_atom_site_type_symbol\n"
                        "_atom_site_fract_x\n_atom_site_fract_y\n_atom_site_fract_z\n"
                        "Na Na 0 0 0\nCl Cl 0.5 0.5 0.5\n"
                    ),
                    "radius": 4,
                    "symprec": 0.01,
                    "invariance": "e3",
                }
            ]
        },
    )

    cif: str | None = Field(None, description="CIF text (its first data block with atom sites is used)")
    structure: StructureInput | None = Field(
        None, description="lattice, species and positions (no pymatgen dictionaries: they can name code to import)"
    )
    radius: PositiveRadius
    symprec: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        DEFAULT_SYMPREC, description="spglib tolerance, Angstrom"
    )
    invariance: Invariance = Field(
        "e3",
        description="frames averaged: 'e3' (a crystal and its mirror image are the same) or 'proper' (rotations only)",
    )
    real: bool = False


class StandardizedCell(BaseModel):
    lattice: list[list[float]] = Field(description="(3, 3) rows a, b, c in Angstrom")
    positions: list[list[float]] = Field(description="(M, 3) fractional coordinates")
    numbers: list[int] = Field(description="(M,) atomic numbers")


class StructureEncodingResponse(BaseModel):
    group: int
    hall_number: int
    hall_symbol: str
    international: str
    radius: float
    symprec: float
    invariance: Invariance
    looser_group: int | None = Field(description="the larger group spglib finds at ten times symprec, if any")
    n_basis: int
    n_frames: int = Field(
        description="frames averaged: cosets of the group in its Euclidean normalizer for this lattice, "
        "times polar origins"
    )
    transformation_matrix: list[list[float]] = Field(
        description="P with x_std = P x + p (mod 1); det P < 0 when the input was inverted"
    )
    origin_shift: list[float] = Field(description="p")
    inverted: bool = Field(
        description="the mirror image of the input was standardized (second member of an enantiomorphic pair, e3 only)"
    )
    standardized: StandardizedCell
    input_to_standardized: list[int] = Field(description="for each input atom, the standardized atom at its image")
    wyckoffs: list[str]
    equivalent_atoms: list[int]
    warnings: list[str] = Field(
        description="what reading and standardizing the structure warned of: e.g. a CIF whose named space group "
        "its listed symmetry operations do not form (they are used), or a larger group at a looser tolerance"
    )
    encodings: dict[str, list[list[float]]] = Field(
        description="(N_input, n_basis) per input atom, in the request's atom order: the atom's features averaged over "
        "every frame of the crystal, so the same for any cell, origin, orientation, atom order (and, with e3, "
        "handedness) of the same crystal; real (and imag) parts"
    )


class StoreIdentity(BaseModel):
    schema_version: int
    radii: list[float]
    n_settings: int
    fingerprint: str = Field(description="sha256 over the store's dataset checksums")
    created_utc: str
    basisdb_version: str
    spglib_version: str
    verification: str = Field(description="'passed' (every dataset's sha256 checked at start-up) or 'skipped'")


class HealthResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ok",
                    "store": {
                        "schema_version": 1,
                        "radii": [2, 3, 4, 6, 8, 12, 16],
                        "n_settings": 230,
                        "fingerprint": "cfab36d36ced2aa0...",
                        "created_utc": "2026-11-22T00:15:07+00:00",
                        "basisdb_version": "0.1.0",
                        "spglib_version": "2.8.0",
                        "verification": "passed",
                    },
                    "heavy_requests": 0,
                    "workers_replaced": 0,
                }
            ]
        }
    )

    status: str = Field(
        description="'ok', or 'unhealthy' (with status code 503) once a read failed its checksum "
        "or the store file was replaced"
    )
    problem: str | None = Field(None, description="why the service is unhealthy")
    store: StoreIdentity
    heavy_requests: int = Field(description="heavy requests running in this process now")
    workers_replaced: int = Field(
        description="worker processes of this process replaced since it started: after a request left one above "
        "--max-worker-bytes, or after one stopped"
    )


class BasisSize(BaseModel):
    radius: float
    n_basis: int


class GroupSummary(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "number": 227,
                    "symbol": "Fd-3m",
                    "hall_number": 525,
                    "hall_symbol": "F 4d 2 3 -1d",
                    "crystal_system": "cubic",
                    "n_operations": 192,
                    "basis_sizes": [{"radius": 4, "n_basis": 5}],
                }
            ]
        }
    )

    number: int
    symbol: str
    hall_number: int
    hall_symbol: str
    crystal_system: str
    n_operations: int
    basis_sizes: list[BasisSize]


class Operation(BaseModel):
    rotation: list[list[int]] = Field(description="R, acting on fractional coordinates (column vectors)")
    translation: list[str] = Field(description="t as exact fractions, e.g. ['1/4', '0', '3/4']")


class Verification(BaseModel):
    radius: float
    n_frequencies: int
    n_basis: int
    n_absent: int
    invariance_error: float
    orthogonality_error: float
    real_orthogonality_error: float
    real_imaginary_error: float
    orbit_sizes: list[int]


class GroupDetail(GroupSummary):
    choice: str
    metric: str = Field(description="truncation form: 'hexagonal' (h^2+hk+k^2+l^2) or 'euclidean'")
    operations: list[Operation]
    verification: list[Verification]


class RoutingMatrix(BaseModel):
    shape: list[int] = Field(description="[n_basis, K]")
    row: list[int]
    col: list[int]
    real: list[float]
    imag: list[float]


class BasisResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "group": 225,
                    "hall_number": 523,
                    "hall_symbol": "-F 4 2 3",
                    "radius": 2,
                    "n_basis": 2,
                    "frequencies": [[-1, -1, -1], [-1, -1, 1]],
                    "routing": {
                        "shape": [2, 32],
                        "row": [0, 0],
                        "col": [0, 1],
                        "real": [0.354, 0.354],
                        "imag": [0.0, 0.0],
                    },
                    "verification": {
                        "radius": 2,
                        "n_frequencies": 32,
                        "n_basis": 2,
                        "n_absent": 18,
                        "invariance_error": 1.4e-15,
                        "orthogonality_error": 2.2e-16,
                        "real_orthogonality_error": 2.2e-16,
                        "real_imaginary_error": 5.6e-17,
                        "orbit_sizes": [8, 6],
                    },
                }
            ]
        }
    )

    group: int
    hall_number: int
    hall_symbol: str
    radius: float
    n_basis: int
    frequencies: list[list[int]] = Field(description="(K, 3) Miller indices in the setting's conventional cell")
    routing: RoutingMatrix = Field(description="COO entries of the (n_basis, K) complex routing matrix")
    verification: Verification
