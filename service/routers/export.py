import os
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from basisdb import default_hall_number
from basisdb.build import parse_number_ranges
from basisdb.errors import InvalidGroupError
from basisdb.store import export_store

from ..dependencies import get_state
from ..state import ServiceState

router = APIRouter(tags=["export"])

_CHUNK = 1 << 20


def _parse_groups(spec: str) -> list[int]:
    try:
        groups = parse_number_ranges(spec)  # the grammar of build_db.py --settings
    except ValueError as exc:
        raise HTTPException(422, f"groups: {exc}") from None
    bad = [g for g in groups if not 1 <= g <= 230]
    if bad:
        raise InvalidGroupError(f"groups {bad[:10]} are outside 1-230")
    return groups


def _parse_radii(spec: str) -> list[float]:
    try:
        radii = [float(part) for part in spec.split(",") if part.strip()]
    except ValueError:
        raise HTTPException(422, f"radii must be comma-separated numbers such as '2,4'; got {spec!r}") from None
    if not radii:
        raise HTTPException(422, "give at least one radius")
    return radii


@router.get(
    "/export",
    summary="Stream a subset of the store as one HDF5 file in the store's own schema",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-hdf5": {}}, "description": "an HDF5 basis store"}},
)
async def export(
    groups: str = Query("1-230", description="ITA numbers and ranges, e.g. '1-230' or '2,14,15'", max_length=2000),
    radii: str | None = Query(None, description="comma-separated radii, e.g. '2,4'; default: all in the store", max_length=2000),
    state: ServiceState = Depends(get_state),
) -> StreamingResponse:
    group_numbers = _parse_groups(groups)
    radius_list = _parse_radii(radii) if radii is not None else None
    hall_numbers = [default_hall_number(g) for g in group_numbers]
    if len(hall_numbers) > state.settings.max_export_settings:
        raise HTTPException(413, f"at most {state.settings.max_export_settings} settings per export")
    directory = tempfile.mkdtemp(prefix="basisdb-export-")
    path = Path(directory) / "export.h5"
    try:
        await run_in_threadpool(export_store, state.store, path, hall_numbers=hall_numbers, radii=radius_list)
    except BaseException:
        _remove(directory)
        raise
    return StreamingResponse(
        _chunks(path),
        media_type="application/x-hdf5",
        headers={"Content-Disposition": 'attachment; filename="basisdb-export.h5"', "Content-Length": str(path.stat().st_size)},
        background=BackgroundTask(_remove, directory),
    )


def _chunks(path: Path):
    """The file in 1 MiB pieces: the export is never held in memory."""
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            yield chunk


def _remove(directory: str) -> None:
    for name in os.listdir(directory):
        os.unlink(os.path.join(directory, name))
    os.rmdir(directory)
