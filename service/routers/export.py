import shutil
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from basisdb import N_GROUPS, InvalidGroupError, default_hall_number, export_store, parse_number_ranges

from ..cancellation import Cancellation
from ..dependencies import get_state
from ..errors import error_responses
from ..limits import LeasedStreamingResponse
from ..state import ServiceState
from ..validation import group_of
from ..workers import worker_store

router = APIRouter(tags=["export"])

_CHUNK = 1 << 20


def _parse_groups(spec: str) -> list[int]:
    """ITA numbers from ``"1-230"``, ``"2,14,15"`` or symbols among them (``"Fd-3m,P2_1/c,1-3"``);
    every end is checked against 1-230 before a range is expanded (404 outside), an unknown
    symbol is a 404, and an empty selection is a 422, never "all"."""
    parts = [part.strip() for part in spec.split(",")]
    symbols = [part for part in parts if part[:1].isalpha()]  # a symbol starts with its lattice letter
    numbers = ",".join(part for part in parts if part not in symbols)
    try:
        named = [group_of(symbol, from_text=True) for symbol in symbols]  # a query's text
        if not numbers.strip(", ") and named:
            return sorted(set(named))
        # the grammar of `basisdb build --settings`
        return sorted({*parse_number_ranges(numbers, upper=N_GROUPS, out_of_range=InvalidGroupError), *named})
    except InvalidGroupError as exc:
        raise InvalidGroupError(f"groups: {exc}; space groups are 1-{N_GROUPS}") from None
    except ValueError as exc:
        raise HTTPException(422, f"groups: {exc}") from None


def _parse_radii(spec: str) -> list[float]:
    parts = [part for part in spec.split(",") if part.strip()]
    if not parts:
        raise HTTPException(422, "give at least one radius, e.g. radii=2,4")
    try:
        return sorted({float(part) for part in parts})
    except ValueError:
        raise HTTPException(422, f"radii must be comma-separated numbers such as '2,4'; got {spec[:80]!r}") from None


@router.get(
    "/export",
    summary="Stream a subset of the store as one HDF5 file in the store's own schema",
    response_class=LeasedStreamingResponse,
    responses={
        200: {"content": {"application/x-hdf5": {}}, "description": "an HDF5 basis store"},
        **error_responses(
            404, 413, 422, 503, meaning={413: "more settings than one export may hold; the message gives the limit"}
        ),
    },
)
async def export(
    request: Request,
    groups: str = Query(
        "1-230",
        description="ITA numbers, ranges and Hermann-Mauguin symbols, e.g. '1-230', '2,14,15' or 'Fd-3m,P2_1/c'",
        max_length=2000,
    ),
    radii: str | None = Query(
        None, description="comma-separated radii, e.g. '2,4'; default: all in the store", max_length=2000
    ),
    state: ServiceState = Depends(get_state),
) -> LeasedStreamingResponse:
    group_numbers = _parse_groups(groups)
    radius_list = _parse_radii(radii) if radii is not None else None
    hall_numbers = [default_hall_number(g) for g in group_numbers]
    if len(hall_numbers) > state.settings.max_export_settings:
        raise HTTPException(413, f"at most {state.settings.max_export_settings} settings per export")
    store = state.usable_store()
    for radius in radius_list or ():
        store.check_radius(radius)  # 404 with the radii present, before any work
    lease = state.heavy.lease()
    directory = state.scratch.new_directory()
    lease.on_release(lambda: shutil.rmtree(directory, ignore_errors=True))  # once the writer and the answer are done
    path = directory / "export.h5"
    try:
        # In the slot's worker process: h5py holds the GIL, for 0.2 s at a time when the file is closed.
        await state.heavy.run_in_process(
            request, write_export, lease, store.path, store.fingerprint, path, hall_numbers, radius_list
        )
    except BaseException:
        lease.drop()
        raise
    return LeasedStreamingResponse(
        _chunks(path),
        lease,
        media_type="application/x-hdf5",
        headers={
            "Content-Disposition": 'attachment; filename="basisdb-export.h5"',
            "Content-Length": str(path.stat().st_size),
        },
    )


def write_export(
    cancel: Cancellation, store_path: Path, fingerprint: str, out: Path, hall_numbers: list[int], radii
) -> None:
    """Write the export (in a worker process), checking for a cancellation before each setting."""
    export_store(worker_store(store_path, fingerprint), out, hall_numbers=hall_numbers, radii=radii, check=cancel.check)


def _chunks(path: Path):
    """The file in 1 MiB pieces: the export is never held in memory."""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk
