"""The run console: a single web page to start, watch, answer and debug runs.

Its files (``static/``: HTML, ES modules, CSS, SVG; no build step, nothing fetched from
elsewhere) ship with the package. The API app of the Dapr runtime serves them at ``/``
and under ``/console/`` (``executor_host._console``); the page talks to the HTTP API of
the origin that served it.
"""

from __future__ import annotations

from importlib.resources import files

__all__ = ["MEDIA_TYPES", "assets"]

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
"""The media type of each kind of file the console is made of."""


def assets() -> dict[str, tuple[bytes, str]]:
    """Every file of the console by name (``index.html``, ``app.js``, ...): its bytes and
    its media type."""
    out: dict[str, tuple[bytes, str]] = {}
    for entry in files(__name__).joinpath("static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            out[entry.name] = (entry.read_bytes(), MEDIA_TYPES[suffix])
    return out
