"""The run console: a single web page to start, watch, answer and debug runs.

Its files (``static/``: HTML, ES modules, CSS, SVG; no build step, nothing fetched from
elsewhere) ship with the package. The API app of the Dapr runtime serves them at ``/``
and under ``/console/`` (``executor_host._console``); ``superstep console`` serves them
with the same API for the in-process runtime (``serve_console``: the runs of a
checkpoint folder, and runs of the given workflows started from the page). The page
talks to the HTTP API of the origin that served it.
"""

from __future__ import annotations

from runtime.console._app import ConsoleApp
from runtime.console._server import ConsoleServer, serve_console
from runtime.console._static import MEDIA_TYPES, SECURITY_HEADERS, assets

__all__ = [
    "MEDIA_TYPES",
    "SECURITY_HEADERS",
    "ConsoleApp",
    "ConsoleServer",
    "assets",
    "serve_console",
]
