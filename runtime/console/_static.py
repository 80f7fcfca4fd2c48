"""The console's files (``static/``) and the headers they are served with."""

from __future__ import annotations

from functools import cache
from importlib.resources import files

__all__ = ["MEDIA_TYPES", "SECURITY_HEADERS", "assets"]

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""The media type of each kind of file the console is made of."""

SECURITY_HEADERS = {
    # the page loads nothing from elsewhere, and runs no inline script
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
}
"""The headers of the page and its files."""


@cache
def assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the console by name (``index.html``, ``app.js``, ...): its bytes and
    its media type."""
    out: dict[str, tuple[bytes, str]] = {}
    for entry in files("runtime.console").joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            out[entry.name] = (entry.read_bytes(), MEDIA_TYPES[suffix])
    return out
