"""What clients send the API app: the bodies of a start and of responses, how workflow
values in them are encoded, and the checks they pass before a run's coordinator is
called — the text check, the run state a start begins with, the responses applied to
a run's pending requests, and whether live hosts can run the workflow's executors."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import Query
from pydantic import BaseModel, Field

from executor_host._ids import CHECKPOINT_ID_MAX, CHECKPOINT_ID_PATTERN, RUN_ID_MAX, RUN_ID_PATTERN
from executor_host._problems import Problem
from executor_host._services import APIServices
from runtime.engine import Checkpoint, RunState, start
from runtime.errors import CheckpointError, CodecError, RequestError
from runtime.workflow import Workflow, input_from_json, response_from_json
from runtime.workflow.driver import apply_responses

__all__ = [
    "Encoding",
    "EncodingQuery",
    "Responses",
    "StartRun",
    "check_placement",
    "check_text",
    "initial_state",
    "with_responses",
]

Encoding = Literal["plain", "codec"]
"""How workflow values cross the API: ``plain`` JSON (validated against the declared
types coming in, ``{"type": ..., "value": ...}`` going out), or the ``codec``'s exact
tagged form (``RemoteRuntime`` uses it: it decodes values into the same classes)."""

_ENCODING_DOC = (
    "plain: workflow values as plain JSON, named by their type going out "
    '({"type": "mymod.Finding", "value": {...}}); codec: the JSON codec\'s tagged form'
)

EncodingQuery = Annotated[Encoding, Query(description=_ENCODING_DOC)]


class StartRun(BaseModel):
    workflow: str | None = Field(
        default=None, min_length=1, description="a workflow served by name (GET /workflows)"
    )
    factory: str | None = Field(
        default=None,
        description="or the module:function of a served factory, called with params",
    )
    params: dict[str, Any] | None = None
    input: Any = Field(
        default=None,
        description="the run input: plain JSON, validated against what the start executor "
        "takes (its JSON schema is in GET /workflows)",
    )
    encoding: Encoding = Field(default="plain", description=_ENCODING_DOC)
    has_input: bool = Field(default=True, description="false when resuming from a checkpoint")
    run_id: str | None = Field(default=None, max_length=RUN_ID_MAX, pattern=RUN_ID_PATTERN)
    seed: int = 0
    signature: str | None = Field(default=None, description="the client's graph signature")
    checkpoint: dict[str, Any] | None = Field(default=None, description="a checkpoint to resume")
    checkpoint_id: str | None = Field(
        default=None,
        max_length=CHECKPOINT_ID_MAX,
        pattern=CHECKPOINT_ID_PATTERN,
        description="a stored checkpoint to resume (<run id>@<superstep in six digits>)",
    )
    responses: dict[str, Any] | None = None


class Responses(BaseModel):
    responses: dict[str, Any] = Field(
        min_length=1,
        description="request id -> response, validated against the request's response type",
    )
    encoding: Encoding = Field(default="plain", description=_ENCODING_DOC)


_SURROGATE = re.compile("[\ud800-\udfff]")


def check_text(value: Any) -> None:
    """A 400 problem for a lone UTF-16 surrogate in any string (or key) of ``value``.

    JSON text can escape one (``"\\ud800"``), and Python decodes it, but it is no
    character: it has no UTF-8 encoding, so a run could neither store nor send it on."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found is not None:
                raise Problem(
                    400,
                    "Invalid text",
                    f"the request holds a lone surrogate, U+{ord(found.group()):04X}: "
                    "JSON strings must be Unicode text (a surrogate escape only as half of "
                    "a pair)",
                )
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


async def initial_state(services: APIServices, wf: Workflow, body: StartRun) -> RunState:
    """The run state a start begins with: from its checkpoint (given, or stored), or a
    new run of its input; with its responses applied."""
    graph = wf.graph
    codec = graph.codec
    state: RunState
    if body.checkpoint is not None or body.checkpoint_id is not None:
        try:
            if body.checkpoint is not None:
                cp = Checkpoint.from_json(body.checkpoint)
            else:
                found = await services.store.load_checkpoint(body.checkpoint_id or "")
                if found is None:
                    raise Problem(
                        404, "Unknown checkpoint", f"no checkpoint {body.checkpoint_id!r}"
                    )
                cp = found
        except CheckpointError as exc:
            raise Problem(400, "Invalid checkpoint", str(exc)) from exc
        if cp.graph_signature != graph.signature:
            raise Problem(
                409,
                "Checkpoint of another graph",
                f"checkpoint {cp.checkpoint_id!r} was taken with graph signature "
                f"{cp.graph_signature[:12]}, {body.workflow!r} has {graph.signature[:12]}",
            )
        state = cp.state
        if body.run_id is not None and body.run_id != state.run_id:
            state = replace(state, run_id=body.run_id)
    else:
        if not body.has_input:
            raise Problem(400, "No input", "a new run needs an input (or a checkpoint)")
        run_id = body.run_id or uuid.uuid4().hex
        if body.encoding == "plain":
            try:
                value = input_from_json(wf, body.input)
                encoded = codec.encode(value)
            except CodecError as exc:
                raise Problem(422, "Input not accepted", str(exc)) from exc
            state = start(graph, encoded, run_id=run_id, seed=body.seed)
        else:
            try:
                value = codec.decode(body.input)
            except CodecError as exc:
                raise Problem(400, "Undecodable input", str(exc)) from exc
            node = graph.nodes[graph.start]
            if not node.accepts(value):
                raise Problem(
                    422,
                    "Input not accepted",
                    f"the start executor {graph.start!r} has no handler for "
                    f"{type(value).__qualname__}",
                )
            state = start(graph, body.input, run_id=run_id, seed=body.seed)
    if body.responses:
        state, _ = with_responses(wf, state, body.responses, body.encoding)
    return state


def with_responses(
    wf: Workflow, state: RunState, responses: Mapping[str, Any], encoding: Encoding
) -> tuple[RunState, dict[str, Any]]:
    """The run state with the responses added, and the responses (codec JSON); a 400
    problem for a response its request does not take."""
    codec = wf.graph.codec
    try:
        if encoding == "plain":
            values = {
                r: d if r not in state.pending else response_from_json(wf, state.pending[r], d)
                for r, d in responses.items()
            }
        else:
            values = {r: codec.decode(d) for r, d in responses.items()}
        applied = apply_responses(wf, state, values)
        return applied, {r: codec.encode(v) for r, v in values.items()}
    except (RequestError, CodecError) as exc:
        raise Problem(400, "Invalid response", str(exc)) from exc


async def check_placement(services: APIServices, wf: Workflow, factory: str | None) -> None:
    """A 409 problem unless each executor of ``wf`` has a live host of its pool and
    labels that serves the workflow (or, for a factory's, the factory's module)."""
    hosts = [h for h in await services.hosts() if h["alive"]]
    missing: list[str] = []
    module = (factory or "").partition(":")[0]
    for node in wf.graph.executors:
        ok = any(
            h["pool"] == node.placement.pool
            and (
                module in h.get("modules", [])
                if factory
                else node.id in h["workflows"].get(wf.name, [])
            )
            and all(h["labels"].get(k) == v for k, v in node.placement.labels.items())
            for h in hosts
        )
        if not ok:
            want = f"pool {node.placement.pool!r}"
            if node.placement.labels:
                want += f" with labels {dict(node.placement.labels)}"
            missing.append(f"{node.id!r} needs a live host in {want}")
    if missing:
        raise Problem(
            409,
            "Executors cannot be placed",
            "no live executor host can run: " + "; ".join(missing),
            executors=[m.split("'")[1] for m in missing],
        )
