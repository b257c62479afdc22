"""Response bodies: JSON through orjson (numpy arrays serialized natively), npz and HDF5.

Large answers are produced in pieces (:func:`json_pieces`, :func:`npz_file`), so that a body
is never held in memory two or three times over."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import orjson

from basisdb import Basis

from .answers import Rendered

__all__ = [
    "json_bytes",
    "json_pieces",
    "rows_of",
    "write_npz",
    "basis_content",
    "render_basis",
    "encoding_content",
    "FORMATS",
]

FORMATS = {"json": "application/json", "npz": "application/x-npz", "h5": "application/x-hdf5"}
_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_bytes(content: Any) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


def _verification(basis: Basis) -> dict[str, Any]:
    figures = dict(basis.verification)
    figures["orbit_sizes"] = np.ascontiguousarray(figures["orbit_sizes"], dtype=np.int64)
    return figures


def basis_content(basis: Basis) -> dict[str, Any]:
    """The JSON document of a basis (also the content of the npz and h5 downloads)."""
    routing = basis.routing.tocoo()
    return {
        "group": basis.group,
        "hall_number": basis.hall_number,
        "hall_symbol": basis.hall_symbol,
        "radius": basis.radius,
        "n_basis": basis.n_basis,
        "frequencies": np.ascontiguousarray(basis.frequencies, dtype=np.int64),
        "routing": {
            "shape": list(routing.shape),
            "row": routing.row.astype(np.int64),
            "col": routing.col.astype(np.int64),
            "real": np.ascontiguousarray(routing.data.real),
            "imag": np.ascontiguousarray(routing.data.imag),
        },
        "verification": _verification(basis),
    }


def render_basis(basis: Basis, fmt: str) -> Rendered:
    content = basis_content(basis)
    stem = f"basis-{basis.group}-hall{basis.hall_number}-r{basis.radius:g}"
    if fmt == "json":
        return json_bytes(content), FORMATS["json"], None
    scalars = {k: content[k] for k in ("group", "hall_number", "hall_symbol", "radius", "n_basis")}
    figures = {k: v for k, v in content["verification"].items() if k != "orbit_sizes"}
    arrays = {
        "frequencies": content["frequencies"],
        **{f"routing_{k}": np.asarray(v) for k, v in content["routing"].items()},
        "orbit_sizes": content["verification"]["orbit_sizes"],
    }
    buffer = io.BytesIO()
    if fmt == "npz":
        np.savez_compressed(
            buffer, metadata=np.array(json_bytes({**scalars, "verification": figures}).decode()), **arrays
        )
    else:
        with h5py.File(buffer, "w") as handle:
            handle.attrs.update(scalars)
            for name, array in arrays.items():
                handle.create_dataset(name, data=array)
            handle.create_group("verification").attrs.update(figures)
    return buffer.getvalue(), FORMATS[fmt], f"{stem}.{fmt}"


Rows = Callable[[int, int], np.ndarray]  # (start, stop) -> those rows of a 2-D array


# Numbers serialized per piece: orjson holds the GIL while it writes one, and the event loop
# (/v1/health) waits for it; 16k numbers take about a millisecond.
PIECE_NUMBERS = 1 << 14


def json_pieces(
    fields: dict[str, Any], columns: dict[str, Rows], n_rows: int, width: int, within: str | None = None
) -> Iterator[bytes]:
    """One JSON object: ``fields``, then each column as a nested list of ``n_rows`` rows of
    ``width`` numbers (inside an object named ``within``, if given), produced a few rows at a
    time and computed when needed, so that a large answer is never in memory whole."""
    rows = max(1, PIECE_NUMBERS // max(1, width))
    head = json_bytes(fields)[:-1]  # without the closing brace
    yield head
    first = head == b"{"
    if within is not None:
        yield (b"" if first else b",") + json_bytes(within) + b":{"
        first = True
    for name, column in columns.items():
        yield (b"" if first else b",") + json_bytes(name) + b":["
        first = False
        for start in range(0, n_rows, rows):
            piece = json_bytes(np.ascontiguousarray(column(start, min(start + rows, n_rows))))
            yield (b"," if start else b"") + piece[1:-1]
        yield b"]"
    yield b"}}" if within is not None else b"}"


def rows_of(array: np.ndarray) -> Rows:
    return lambda start, stop: array[start:stop]


def write_npz(path: Path, content: dict[str, Any]) -> Path:
    """An uncompressed npz of a flat document (arrays as they are, scalars as 0-d arrays),
    written to ``path``: the caller streams the file and removes it."""
    with open(path, "wb") as file:
        np.savez(file, **{key: np.asarray(value) for key, value in content.items()})
    return path


def encoding_content(features: np.ndarray, real: bool) -> dict[str, Any]:
    """``{"real": ..., "imag": ...}`` for complex features, ``{"real": ...}`` for real ones."""
    if real:
        return {"real": np.ascontiguousarray(features)}
    return {"real": np.ascontiguousarray(features.real), "imag": np.ascontiguousarray(features.imag)}
