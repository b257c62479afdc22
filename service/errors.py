"""basisdb's exceptions as HTTP answers: bad input is never a 5xx, and no answer names a path
on the server."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from basisdb import (
    BasisDBError,
    InvalidCoordinatesError,
    InvalidGroupError,
    InvalidHallNumberError,
    InvalidRadiusError,
    RadiusNotInStoreError,
    SettingNotInStoreError,
    StoreError,
    StructureError,
    StructureTooLargeError,
)

from .schemas import ErrorResponse, ValidationErrorResponse

__all__ = ["install_error_handlers", "status_of", "validation_detail", "error_responses"]

_STATUS = (
    ((InvalidGroupError, InvalidHallNumberError, RadiusNotInStoreError, SettingNotInStoreError), 404),
    ((StructureTooLargeError,), 413),
    ((InvalidCoordinatesError, InvalidRadiusError, StructureError), 422),
    ((StoreError,), 503),
)


def status_of(error: BasisDBError) -> int:
    """404 for what does not exist, 413 for what is too large, 422 for what cannot be read,
    503 for a store that cannot be trusted (500 for anything else: a bug)."""
    return next((status for kinds, status in _STATUS if isinstance(error, kinds)), 500)


async def _basisdb_error(request: Request, error: BasisDBError) -> JSONResponse:
    state = request.app.state.service
    status = status_of(error)
    if isinstance(error, StoreError):  # a failed checksum or an unreadable dataset: stop serving
        state.mark_unhealthy(state.public_message(str(error)))
    headers = {"Retry-After": "60"} if status == 503 else None
    return JSONResponse({"detail": state.public_message(str(error))}, status_code=status, headers=headers)


def validation_detail(errors) -> list[dict]:
    """Location, message and type of each validation error, without the offending input:
    echoing it fails to serialize when it is NaN or infinity (which would be a 500)."""
    return [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in errors]


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    return JSONResponse({"detail": validation_detail(error.errors())}, status_code=422)


# What each error status means, in every route that can answer it.
_MEANING = {
    400: "a multipart form that cannot be parsed: a broken body, or too many fields or files",
    404: "a group, setting or radius that does not exist or is not in the store; the message lists what is",
    413: "too large a request or answer; the message gives the limit",
    415: "a media type the route does not read",
    422: "a request that cannot be read: one entry per offending field, or a message",
    503: "busy, over the request's time limit, or the store cannot be trusted; retry after Retry-After seconds",
}


def error_responses(*statuses: int, meaning: dict[int, str] | None = None) -> dict[int | str, dict]:
    """The OpenAPI ``responses`` of the error answers a route gives: each status with its
    schema and what it means (``meaning`` overrides the general text for this route)."""
    meaning = {**_MEANING, **(meaning or {})}
    return {
        status: {"model": ValidationErrorResponse if status == 422 else ErrorResponse, "description": meaning[status]}
        for status in statuses
    }


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BasisDBError, _basisdb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
