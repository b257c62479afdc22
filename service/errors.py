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

from .schemas import ErrorResponse
from .validation import MAX_ISSUES, InvalidRequest, issue

__all__ = ["install_error_handlers", "status_of", "error_responses"]

_MAX_DETAIL = 1000  # characters of a message

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
    message = state.public_message(str(error))[:_MAX_DETAIL]
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _problems(issues: list[dict], count: int) -> JSONResponse:
    return JSONResponse({"detail": issues[:MAX_ISSUES], "error_count": count}, status_code=422)


async def _invalid_request(request: Request, error: InvalidRequest) -> JSONResponse:
    return _problems(error.issues, error.count)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    """FastAPI's checks of a query or path: its first problems, without the offending input
    (echoing NaN or infinity would fail to serialize)."""
    errors = error.errors()
    return _problems([issue(e["loc"], e["msg"], e["type"]) for e in errors[:MAX_ISSUES]], len(errors))


# What each error status means, in every route that can answer it.
_MEANING = {
    400: "a multipart form that cannot be parsed: a broken body, or too many fields or files",
    404: "a group, setting or radius that does not exist or is not in the store; the message lists what is",
    413: "too large a request or answer; the message gives the limit",
    415: "a media type the route does not read",
    422: "a request that cannot be read: its first problems (at most 20, one per offending field) and their "
    "count, or a message",
    503: "busy, over the request's time limit, or the store cannot be trusted; retry after Retry-After seconds",
}


def error_responses(*statuses: int, meaning: dict[int, str] | None = None) -> dict[int | str, dict]:
    """The OpenAPI ``responses`` of the error answers a route gives: each status with its
    schema and what it means (``meaning`` overrides the general text for this route)."""
    meaning = {**_MEANING, **(meaning or {})}
    return {status: {"model": ErrorResponse, "description": meaning[status]} for status in statuses}


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(BasisDBError, _basisdb_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidRequest, _invalid_request)
