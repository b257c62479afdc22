"""The basis explorer: one static page (HTML, JavaScript and CSS, no build step, nothing
fetched from elsewhere) at ``/explorer``, and its files under ``/static``.

The page is a client of the JSON routes like any other: it lists ``/v1/groups``, plots a basis
function from ``/v1/encode`` on a grid of a slice of the cell, and encodes a pasted CIF with
``/v1/encode/structure``.  It computes nothing but colours.  Its Content-Security-Policy allows
scripts, styles and requests from this service only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC", "router", "install"]

STATIC = Path(__file__).resolve().parent.parent / "static"

# The page and its assets come from this origin only; nothing may frame it.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

router = APIRouter(include_in_schema=False)


@router.get("/explorer")
async def explorer() -> FileResponse:
    return FileResponse(STATIC / "explorer.html", media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def install(app: FastAPI) -> None:
    """Serve the page at ``/explorer`` and its files at ``/static`` (neither is in the
    OpenAPI schema)."""
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
