from fractions import Fraction
from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from basisdb import TRANSLATION_DENOMINATOR, get_setting

from ..answers import Rendered, answer_headers
from ..dependencies import get_state
from ..errors import error_responses
from ..rendering import FORMATS, render_basis
from ..schemas import BasisResponse, GroupDetail, GroupSummary
from ..state import ServiceState, summary_fields
from ..validation import GROUP_DESCRIPTION, MAX_GROUP_TEXT, group_of

router = APIRouter(tags=["groups"])

HallQuery = Query(None, description="Hall number (1-530) of another setting of the group")
GroupPath = Path(
    max_length=MAX_GROUP_TEXT,
    description=GROUP_DESCRIPTION + "; in a path, a slash is written %2F ('P2_1%2Fc')",
    examples=["227", "Fd-3m", "P2_1%2Fc"],
)


@router.get(
    "/groups",
    response_model=list[GroupSummary],
    summary="The default setting of every group in the store",
    responses=error_responses(503),
)
def list_groups(state: ServiceState = Depends(get_state)) -> Response:
    state.usable_store()
    return Response(state.catalog(), media_type="application/json")  # built from models, once


@router.get(
    "/groups/{group}",
    summary="Operations and verification figures of a setting",
    responses=error_responses(404, 422, 503),
)
async def group_detail(
    group: str = GroupPath, hall: int | None = HallQuery, state: ServiceState = Depends(get_state)
) -> GroupDetail:
    # FastAPI checks the model against the schema on the event loop (an async route): built in
    # the thread pool, as it may read the store, it takes one trip there, not two.
    return await run_in_threadpool(_detail, state, group_of(group, from_text=True), hall)


def _detail(state: ServiceState, group: int, hall: int | None) -> GroupDetail:
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
    return GroupDetail(
        **summary_fields(setting, ((f["radius"], f["n_basis"]) for f in figures)),
        choice=setting.choice,
        metric=setting.metric,
        operations=operations,
        verification=figures,
    )


# The hot path: each answer is rendered once, as bytes, and then served from memory (also ahead
# of the router, by answers.CachedAnswers), so FastAPI never validates it against BasisResponse;
# the tests do (test_service.py, and the fuzz test's response_schema_conformance).
@router.get(
    "/groups/{group}/basis",
    summary="Frequencies and routing matrix of a setting at one radius",
    response_model=BasisResponse,
    responses={
        200: {
            "content": {FORMATS["npz"]: {}, FORMATS["h5"]: {}},
            "description": "JSON, or the same content as an npz or HDF5 download",
        },
        **error_responses(404, 422, 503),
    },
)
async def basis(
    request: Request,
    group: str = GroupPath,
    radius: float = Query(..., gt=0, allow_inf_nan=False, description="a radius present in the store"),
    hall: int | None = HallQuery,
    format: Literal["json", "npz", "h5"] = Query("json", description="json, npz or h5"),
    state: ServiceState = Depends(get_state),
) -> Response:
    key = (group_of(group, from_text=True), hall, radius, format)  # one answer for 227, "227" and "Fd-3m"
    rendered = state.answers.get(key)  # no thread hop for a cached answer
    state.usable_store()  # 503 once the store cannot be trusted, cached or not
    if rendered is None:
        rendered = await run_in_threadpool(
            state.answers.get_or_render, key, lambda: _render(state, key[0], hall, radius, format)
        )
    state.answers.remember(
        request.scope["path"], request.scope["query_string"], key
    )  # next time: answers.CachedAnswers
    return _response(rendered)


def _render(state: ServiceState, group: int, hall: int | None, radius: float, fmt: str) -> Rendered:
    return render_basis(state.usable_store().basis(group, hall=hall, radius=radius), fmt)


def _response(rendered: Rendered) -> Response:
    response = Response(rendered[0])
    response.raw_headers = answer_headers(rendered)  # the same headers as answers.CachedAnswers sends
    return response
