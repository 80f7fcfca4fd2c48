"""The event loop the ``superstep`` command runs workflows on.

The in-process runtime runs on whatever loop its caller runs (``await workflow.run``);
where superstep owns the loop — the ``superstep`` command — it picks one:

* ``uvloop`` when it is installed (it is with ``superstep[dapr]``): its timers fire
  within about 0.1 ms of their deadline where the standard loop's wake up to 1 ms late
  (``selectors.EpollSelector`` rounds every timeout up to the next millisecond), which
  is 5-10% of the wall time of workflows whose executors wait on many short I/O calls
  (bench/README.md, "Event loops");
* ``asyncio`` otherwise, or when asked for.

``SUPERSTEP_LOOP`` (``auto``, ``asyncio``, ``uvloop``) or ``superstep --loop`` chooses.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["LOOPS", "resolve_loop", "run"]

LOOPS = ("auto", "asyncio", "uvloop")
T = TypeVar("T")


def resolve_loop(choice: str | None = None) -> str:
    """``asyncio`` or ``uvloop``: ``choice``, else ``$SUPERSTEP_LOOP``, else ``auto``
    (uvloop when installed). Asking for uvloop without it installed is a ``ValueError``."""
    source = "--loop" if choice is not None else "SUPERSTEP_LOOP"
    wanted = (choice if choice is not None else os.environ.get("SUPERSTEP_LOOP", "auto")).strip()
    if wanted not in LOOPS:
        raise ValueError(
            f"{source}: unknown event loop {wanted!r}; choose one of {', '.join(LOOPS)}"
        )
    has_uvloop = importlib.util.find_spec("uvloop") is not None
    if wanted == "uvloop" and not has_uvloop:
        raise ValueError(f"{source}: uvloop is not installed (pip install uvloop)")
    if wanted == "auto":
        return "uvloop" if has_uvloop else "asyncio"
    return wanted


def run(main: Coroutine[Any, Any, T], *, loop: str | None = None) -> T:
    """``asyncio.run(main)`` on the loop ``resolve_loop(loop)`` names."""
    try:
        kind = resolve_loop(loop)
    except ValueError:
        main.close()  # never awaited: say so quietly instead of a RuntimeWarning
        raise
    if kind == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
