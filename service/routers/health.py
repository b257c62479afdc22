from fastapi import APIRouter, Depends, Response

from ..dependencies import get_state
from ..schemas import HealthResponse
from ..state import ServiceState

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    summary="Liveness and the identity of the store",
    responses={
        503: {
            "model": HealthResponse,
            "description": "the store cannot be trusted (a failed checksum, a replaced file)",
        }
    },
)
async def health(response: Response, state: ServiceState = Depends(get_state)) -> HealthResponse:
    # async and free of blocking work: it answers on the event loop while heavy work runs.
    try:
        state.usable_store()
    except Exception:  # 503 below, with the problem
        pass
    store = state.store
    provenance = store.provenance
    problem = state.health.problem
    if problem:
        response.status_code = 503
    return HealthResponse(
        status="unhealthy" if problem else "ok",
        problem=problem,
        store={
            **store.identity,
            "created_utc": provenance["created_utc"],
            "basisdb_version": provenance["basisdb_version"],
            "spglib_version": provenance["spglib_version"],
            "verification": state.health.verification,
        },
        heavy_requests=state.heavy.running,
        workers_replaced=state.heavy.workers.replaced,
    )
