"""The run console (``runtime.console``) served by the API app: its page at ``/`` and its
files under ``/console/``.

The files hold no run data, so they are served without the API token (the page asks
for the token and sends it on its own calls to the API); they are left out of the
OpenAPI document, which describes the API of clients.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from fastapi import FastAPI
from fastapi.responses import Response

from runtime.console import SECURITY_HEADERS, assets

__all__ = ["CONSOLE_PREFIX", "install_console"]

CONSOLE_PREFIX = "/console"


def install_console(app: FastAPI, *, token_required: bool) -> list[str]:
    """Add the console's routes to ``app``; returns their paths (open to anyone).

    ``token_required``: whether the API wants a token, which the page reads from
    ``/console/settings.json`` before it calls the API (to ask for the token first)."""
    files = assets()
    routes = {f"{CONSOLE_PREFIX}/{name}": file for name, file in files.items()}
    settings = json.dumps({"token_required": token_required}).encode()
    routes[f"{CONSOLE_PREFIX}/settings.json"] = (settings, "application/json")
    if "index.html" in files:
        routes["/"] = files["index.html"]
    for path, (content, media_type) in sorted(routes.items()):
        app.add_api_route(
            path, _endpoint(content, media_type), methods=["GET", "HEAD"], include_in_schema=False
        )
    return sorted(routes)


def _endpoint(content: bytes, media_type: str) -> Callable[[], Awaitable[Response]]:
    async def console_file() -> Response:
        return Response(content, media_type=media_type, headers=SECURITY_HEADERS)

    return console_file
