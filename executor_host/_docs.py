"""The apps' API documentation pages, with every file they load served by the app.

FastAPI's default ``/docs`` and ``/redoc`` pages load Swagger UI and ReDoc from a CDN,
so they stay blank offline or behind a proxy that blocks it. Here the pages are
FastAPI's own (``get_swagger_ui_html``, ``get_redoc_html``: its documented way of
self-hosting the docs' static files), pointed at copies of those files that the
``fastapi-offline`` package ships (Swagger UI 5, which renders OpenAPI 3.1, and ReDoc),
served under ``/docs/assets/``. ReDoc leaves out Google's fonts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, Response

__all__ = ["ASSETS_PREFIX", "DOCS_URL", "REDOC_URL", "install_docs"]

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_PREFIX = "/docs/assets"

_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def _asset_folder() -> Path:
    return Path(str(files("fastapi_offline").joinpath("static")))


def install_docs(app: FastAPI) -> list[str]:
    """Add ``/docs``, its OAuth2 redirect page, ``/redoc`` and their files to ``app``
    (created with ``docs_url=None, redoc_url=None``); returns their paths, which show
    no run data and are open to anyone, as the OpenAPI document is."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None")
    folder = _asset_folder()
    missing = [name for name in _ASSETS if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"fastapi-offline's files are missing in {folder}: {missing}")
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{ASSETS_PREFIX}/favicon.png"

    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=favicon,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )

    pages: dict[str, Callable[[], Awaitable[Response]]] = {
        DOCS_URL: swagger_ui,
        OAUTH2_REDIRECT_URL: oauth2_redirect,
        REDOC_URL: redoc,
    }
    for name, media_type in _ASSETS.items():
        pages[f"{ASSETS_PREFIX}/{name}"] = _file(folder / name, media_type)
    for path, endpoint in pages.items():
        app.add_api_route(path, endpoint, methods=["GET", "HEAD"], include_in_schema=False)
    return sorted(pages)


def _file(path: Path, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def docs_asset() -> Response:
        return FileResponse(path, media_type=media_type)

    return docs_asset
