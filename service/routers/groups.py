from fractions import Fraction
from typing import Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from basisdb import crystal_system, get_setting
from basisdb.settings import TRANSLATION_DENOMINATOR

from ..answers import Rendered, answer_headers
from ..dependencies import get_state
from ..rendering import FORMATS, json_bytes, render_basis
from ..schemas import BasisResponse, GroupDetail, GroupSummary
from ..state import ServiceState

router = APIRouter(tags=["groups"])

HallQuery = Query(None, description="Hall number (1-530) of another setting of the group")


@router.get("/groups", response_model=list[GroupSummary], summary="The default setting of every group in the store")
def list_groups(state: ServiceState = Depends(get_state)) -> Response:
    state.usable_store()
    return Response(json_bytes(state.catalog()), media_type="application/json")


@router.get("/groups/{group}", response_model=GroupDetail, summary="Operations and verification figures of a setting")
def group_detail(group: int, hall: int | None = HallQuery, state: ServiceState = Depends(get_state)) -> Response:
    store = state.usable_store()
    figures = store.verification(group, hall=hall)  # validates group, hall and presence
    setting = get_setting(group, hall=hall)
    operations = [
        {
            "rotation": rotation.tolist(),
            "translation": [str(Fraction(int(n), TRANSLATION_DENOMINATOR)) for n in translation],
        }
        for rotation, translation in zip(setting.rotations, setting.translations)
    ]
    content = {
        "number": setting.group,
        "symbol": setting.international,
        "hall_number": setting.hall_number,
        "hall_symbol": setting.hall_symbol,
        "choice": setting.choice,
        "crystal_system": crystal_system(setting.group),
        "metric": setting.metric,
        "n_operations": setting.n_operations,
        "basis_sizes": [{"radius": f["radius"], "n_basis": f["n_basis"]} for f in figures],
        "operations": operations,
        "verification": figures,
    }
    return Response(json_bytes(content), media_type="application/json")


@router.get(
    "/groups/{group}/basis",
    summary="Frequencies and routing matrix of a setting at one radius",
    response_model=BasisResponse,
    responses={200: {"content": {FORMATS["npz"]: {}, FORMATS["h5"]: {}}, "description": "JSON, or the same content as an npz or HDF5 download"}},
)
async def basis(
    request: Request,
    group: int,
    radius: float = Query(..., gt=0, allow_inf_nan=False, description="a radius present in the store"),
    hall: int | None = HallQuery,
    format: Literal["json", "npz", "h5"] = Query("json", description="json, npz or h5"),
    state: ServiceState = Depends(get_state),
) -> Response:
    key = (group, hall, radius, format)
    rendered = state.answers.get(key)  # no thread hop for a cached answer
    state.usable_store()  # 503 once the store cannot be trusted, cached or not
    if rendered is None:
        rendered = await run_in_threadpool(state.answers.get_or_render, key, lambda: _render(state, group, hall, radius, format))
    state.answers.remember(request.scope["path"], request.scope["query_string"], key)  # next time: answers.CachedAnswers
    return _response(rendered)


def _render(state: ServiceState, group: int, hall: int | None, radius: float, fmt: str) -> Rendered:
    return render_basis(state.usable_store().basis(group, hall=hall, radius=radius), fmt)


def _response(rendered: Rendered) -> Response:
    response = Response(rendered[0])
    response.raw_headers = answer_headers(rendered)  # the same headers as answers.CachedAnswers sends
    return response
