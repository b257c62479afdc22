from fastapi import APIRouter, Depends

from ..dependencies import get_state
from ..schemas import HealthResponse
from ..state import ServiceState

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Liveness and the identity of the store")
def health(state: ServiceState = Depends(get_state)) -> dict:
    store = state.store
    provenance = store.provenance
    return {
        "status": "ok",
        "store": {
            **store.identity,
            "created_utc": provenance["created_utc"],
            "basisdb_version": provenance["basisdb_version"],
            "spglib_version": provenance["spglib_version"],
        },
    }
