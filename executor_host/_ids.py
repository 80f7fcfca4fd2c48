"""The alphabet of run ids and checkpoint ids the HTTP API takes.

A run id names its coordinator actor (a segment of the sidecar's actor URL) and is part
of every state key of the run (``run:<run>``, ``ckpt:<run>@<superstep>``, ...). So the
API takes only ids that cross both unchanged: up to 200 of ``A-Z a-z 0-9 _ . : -``, not
dots only ("." and ".." would be taken as the URL path's own segments). Ids of new runs
are ``uuid4().hex``; ``RemoteRuntime`` prefixes a caller's own ids with its
``run_id_prefix``, the conformance harness with ``c<hex>.``. Nothing outside the
alphabet reaches the sidecar: ``|`` for one, which Dapr reserves in state keys
(``<app>||<key>``), or ``/``, ``%``, ``?`` and ``#``, which change a URL's meaning.

A checkpoint id is ``<run id>@<superstep>`` (``runtime.checkpoint.checkpoint_id_for``
writes the superstep with at least six digits).
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Path

__all__ = [
    "CHECKPOINT_ID_MAX",
    "CHECKPOINT_ID_PATTERN",
    "RUN_ID_MAX",
    "RUN_ID_PATTERN",
    "CheckpointId",
    "RunId",
    "is_run_id",
]

_RUN = r"[A-Za-z0-9_.:-]*[A-Za-z0-9_:-][A-Za-z0-9_.:-]*"
# without lookarounds: pydantic's regex engine has none
RUN_ID_PATTERN = f"^{_RUN}$"
RUN_ID_MAX = 200
CHECKPOINT_ID_PATTERN = f"^{_RUN}@[0-9]{{1,12}}$"
CHECKPOINT_ID_MAX = RUN_ID_MAX + 13

_RUN_ID = re.compile(RUN_ID_PATTERN)

RunId = Annotated[
    str,
    Path(
        pattern=RUN_ID_PATTERN,
        max_length=RUN_ID_MAX,
        description="letters, digits, '_', '.', ':' and '-', not dots only",
    ),
]
"""A run id in a route's path: refused with a 422 problem outside the alphabet."""

CheckpointId = Annotated[
    str,
    Path(
        pattern=CHECKPOINT_ID_PATTERN,
        max_length=CHECKPOINT_ID_MAX,
        description="<run id>@<superstep in six digits>, e.g. r1@000001",
    ),
]
"""A checkpoint id in a route's path."""


def is_run_id(text: str) -> bool:
    """Whether ``text`` is a run id the API takes."""
    return len(text) <= RUN_ID_MAX and _RUN_ID.fullmatch(text) is not None
