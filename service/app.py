"""The FastAPI application: ``uvicorn basisdb.service.app:app`` or :func:`create_app`."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware

import basisdb

from .answers import CachedAnswers
from .config import ServiceSettings
from .conventions import HttpConventions
from .errors import install_error_handlers
from .limits import DeadlineMiddleware
from .routers import docs, encode, explorer, export, groups, health
from .state import ServiceState

__all__ = ["create_app"]  # and `app`, created on first access (see __getattr__)

API_PREFIX = "/v1"

DESCRIPTION = """\
Exact symmetry-adapted Fourier bases for the 230 space groups, served from a verified
basisdb store: routing matrices, invariant encodings of positions and structures, and batch
export. Coordinates are fractional coordinates of the conventional cell of the setting
(default: spglib's standardization setting, the smallest Hall number of each type).
"""


class ServiceApp(FastAPI):
    """FastAPI with :class:`~basisdb.service.conventions.HttpConventions` outside everything,
    Starlette's own error handling included (whose 500 is plain text)."""

    def build_middleware_stack(self):
        return HttpConventions(super().build_middleware_stack())


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """An application serving one store, opened once and read-only."""
    settings = settings or ServiceSettings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await run_in_threadpool(state.catalog)  # open (or build) and verify the store before the first request
        state.scratch  # noqa: B018 - made now, removing what killed servers left behind
        await run_in_threadpool(state.heavy.start_processes)  # ready when the server says it is
        gc.freeze()  # what start-up made lives as long as the process: keep it out of GC passes
        yield
        state.close()

    app = ServiceApp(
        title="basisdb service",
        version=basisdb.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by routers.docs, with assets from a package, not a CDN
        redoc_url=None,
        max_body_size=settings.max_body_bytes,  # larger bodies get 413 before they are parsed
    )
    app.state.service = state
    for module in (health, groups, encode, export):
        app.include_router(module.router, prefix=API_PREFIX)
    docs.install(app)
    if settings.explorer:
        explorer.install(app)  # /explorer and /static, outside the API and its schema

    def openapi() -> dict:
        if app.openapi_schema is None:
            FastAPI.openapi(app)["components"]["schemas"].update(encode.REQUEST_SCHEMAS)
        return app.openapi_schema

    app.openapi = openapi
    install_error_handlers(app)
    # Outermost last: CORS, then cached answers (served at once), then the deadline that
    # bounds every other request, body and answer included.
    app.add_middleware(DeadlineMiddleware, seconds=settings.request_timeout)
    app.add_middleware(CachedAnswers, cache=state.answers, trusted=state.trusted)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"])
    return app


def __getattr__(name: str):
    # ``uvicorn basisdb.service.app:app`` builds the app on first access, from the environment as
    # it is then (basisdb serve sets it before starting uvicorn), not at import time.
    if name == "app":
        globals()["app"] = application = create_app()
        return application
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
