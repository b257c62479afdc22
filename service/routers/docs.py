"""The API documentation pages, ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc), with their
scripts and styles served by this service from the ``fastapi-offline`` package, which ships
them: FastAPI's own pages load them from a CDN and are blank on a machine without internet.

The pages are FastAPI's, pointed at ``/docs-assets``; their policy lets them load nothing from
elsewhere (Swagger UI and ReDoc write inline scripts and styles, which the policy allows).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS", "install"]

ASSETS = "/docs-assets"

# Everything from this origin; inline code because both pages start themselves inline; ReDoc
# runs its search in a worker made from a blob.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def _assets_folder() -> str:
    return str(resources.files("fastapi_offline") / "static")


def install(app: FastAPI) -> None:
    """Serve ``/docs``, its OAuth2 redirect page, ``/redoc`` and their files at ``/docs-assets``
    (none of them in the OpenAPI schema). The app must be made with ``docs_url=None`` and
    ``redoc_url=None``."""
    router = APIRouter(include_in_schema=False)
    title = app.title

    def prefix(request: Request) -> str:
        return request.scope.get("root_path", "").rstrip("/")

    @router.get("/docs")
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title}: API docs",
            oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    @router.get("/docs/oauth2-redirect")
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        root = prefix(request)
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{title}: API reference",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
        page.headers.update(PAGE_HEADERS)
        return page

    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=_assets_folder()), name="docs-assets")
