"""Plain JSON: workflow values as people, shells and other languages write and read them.

The codec's own form tags each registered class so that it decodes exactly
(``{"$type": "pkg._module.Class", "$value": {...}}``). The plain form is the value's
JSON alone — a dataclass or pydantic model is its JSON object — and:

* coming in, it is validated against the type its receiver declares: a run's input
  against the start executor's handlers, a response against its request's response
  type (strictly, as JSON: ``"5"`` is no ``int``); a value in the codec's tagged
  form is taken too;
* going out, the type is named beside it: ``{"type": "mymod.Finding", "value": {...}}``,
  by the class's public name (``runtime.demo.Summary``, not the private module that
  defines it). Values nested in lists and dicts show as their plain JSON.

The CLI's ``--input`` and ``--responses`` and the Dapr runtime's HTTP API read and
write this form.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Union

from runtime.engine import JsonCodec, PendingRequest, readable_error
from runtime.engine._types import type_name
from runtime.errors import CodecError, RequestError
from runtime.workflow._events import RESERVED_EVENT_TYPES

if TYPE_CHECKING:
    from runtime.workflow._workflow import Workflow

from runtime.workflow._responses import BUILTIN_RESPONSE_TYPES

__all__ = [
    "input_from_json",
    "input_schema",
    "plain_event",
    "plain_json",
    "plain_request",
    "plain_value",
    "response_from_json",
]

_BUILTINS: dict[str, Any] = {**BUILTIN_RESPONSE_TYPES, "None": None}

_VALUE_EVENTS = frozenset({"output", "request_info", "message_dropped"})
"""Runtime events whose data is a workflow value (custom events' data is one too)."""


# -- in ---------------------------------------------------------------------------------
def input_from_json(workflow: Workflow, raw: Any, *, what: str = "the input") -> Any:
    """The value of plain JSON ``raw`` that the start executor accepts.

    Tried in order: the codec's tagged form, the JSON value itself, then each type the
    start executor handles (a JSON object becomes its dataclass or pydantic model).
    Raises ``CodecError`` naming the start executor, the types it handles and, for
    each, the first field that does not fit; ``what`` names the input in it."""
    graph = workflow.graph
    start = graph.nodes[graph.start]
    if isinstance(raw, dict) and "$type" in raw:
        try:
            value = graph.codec.decode(raw)
        except CodecError as exc:
            raise CodecError(f"{what}: {exc}") from None
        if start.accepts(value):
            return value
    elif start.accepts(raw):
        return raw
    errors: list[str] = []
    for t in start.input_types:
        try:
            value = _validate(t, raw)
        except _NoValidator:
            continue
        except ValueError as exc:
            errors.append(f"as {type_name(t)}: {readable_error(exc)}")
            continue
        if start.accepts(value):
            return value
    handled = ", ".join(type_name(t) for t in start.input_types) or "nothing"
    detail = f" ({'; '.join(errors)})" if errors else ""
    raise CodecError(
        f"{what} does not fit the start executor {start.id!r}, which handles {handled}{detail}"
    )


def response_from_json(workflow: Workflow, pending: PendingRequest, raw: Any) -> Any:
    """The response value of plain JSON ``raw`` for a pending request: validated
    against the request's response type. Raises ``RequestError`` when it does not
    fit (``CodecError`` for a tagged value that does not decode)."""
    codec = workflow.graph.codec
    if isinstance(raw, dict) and "$type" in raw:
        return codec.decode(raw)
    expected = pending.response_type
    cls = None if expected in _BUILTINS else codec.lookup(expected)
    if cls is None:
        return raw  # a JSON type: checked against the request as it is
    try:
        return _validate(cls, raw)
    except _NoValidator:
        return codec.decode({"$type": expected, "$value": raw})
    except ValueError as exc:
        raise RequestError(
            f"response to request {pending.request_id!r} must be "
            f"{_public_name(codec, expected)}: {readable_error(exc)}"
        ) from None


class _NoValidator(Exception):
    """pydantic cannot build a validator for this type."""


def _validate(t: Any, raw: Any) -> Any:
    """``raw`` as a ``t``, validated as JSON in strict mode (``ValueError`` if it does
    not fit)."""
    from pydantic import TypeAdapter  # imported lazily: keeps start-up lean

    try:
        adapter: TypeAdapter[Any] = TypeAdapter(t)
    except Exception as exc:  # a type pydantic cannot build a validator for
        raise _NoValidator from exc
    try:
        text = json.dumps(raw, allow_nan=False)
    except ValueError as exc:
        raise ValueError("NaN and infinities are not JSON") from exc
    return adapter.validate_json(text, strict=True)


def input_schema(workflow: Workflow) -> dict[str, Any] | None:
    """The JSON schema of what the start executor takes (None where pydantic cannot
    describe one of its types)."""
    return _schema(workflow.graph.nodes[workflow.graph.start].input_types)


def _schema(types: Sequence[Any]) -> dict[str, Any] | None:
    if not types:
        return None
    from pydantic import TypeAdapter

    t: Any = types[0] if len(types) == 1 else Union[tuple(types)]  # noqa: UP007  (a runtime tuple)
    try:
        schema: dict[str, Any] = TypeAdapter(t).json_schema()
    except Exception:  # a type pydantic cannot describe
        return None
    return schema


# -- out --------------------------------------------------------------------------------
def plain_json(data: Any) -> Any:
    """Codec JSON with the codec's wrappers removed: a registered class as its JSON."""
    t = type(data)
    if t is list:
        return [plain_json(v) for v in data]
    if t is dict:
        if "$type" in data:
            return data.get("$value")
        inner = data.get("$dict")
        if len(data) == 1 and type(inner) is dict:
            return {k: plain_json(v) for k, v in inner.items()}
        return {k: plain_json(v) for k, v in data.items()}
    return data


def plain_value(codec: JsonCodec | None, data: Any) -> dict[str, Any]:
    """``{"type": <type name>, "value": <plain JSON>}`` of a codec-encoded value.

    A registered class is named by its public name when ``codec`` knows it (else by
    its codec name); other values by their JSON type's Python name (``int``, ``str``,
    ``float``, ``bool``, ``None``, ``list``, ``dict``)."""
    return {"type": _type_of(codec, data), "value": plain_json(data)}


def plain_request(codec: JsonCodec | None, pending: PendingRequest) -> dict[str, Any]:
    """A pending request in plain form, with the JSON schema of the response it wants."""
    expected = pending.response_type
    cls = codec.lookup(expected) if codec is not None else None
    if expected in _BUILTINS:
        schema = _schema([_BUILTINS[expected]])
    else:
        schema = _schema([cls]) if cls is not None else None
    return {
        "request_id": pending.request_id,
        "executor_id": pending.executor_id,
        "superstep": pending.superstep,
        "data": plain_value(codec, pending.data),
        "response_type": _public_name(codec, expected),
        "response_schema": schema,
    }


def plain_event(codec: JsonCodec | None, event: Mapping[str, Any]) -> dict[str, Any]:
    """An event's JSON (``event_to_json``) in plain form: the data of outputs, requests,
    dropped messages and custom events as ``plain_value``, the rest as plain JSON."""
    out = dict(event)
    kind = event.get("type")
    data = event.get("data")
    if kind in _VALUE_EVENTS or kind not in RESERVED_EVENT_TYPES:
        out["data"] = plain_value(codec, data)
    else:
        out["data"] = plain_json(data)
    details = plain_json(event.get("details") or {})
    if isinstance(details, dict) and isinstance(details.get("response_type"), str):
        details["response_type"] = _public_name(codec, details["response_type"])
    out["details"] = details
    return out


def _type_of(codec: JsonCodec | None, data: Any) -> str:
    t = type(data)
    if t is dict:
        tag = data.get("$type")
        return _public_name(codec, tag) if type(tag) is str else "dict"
    if data is None:
        return "None"
    return t.__name__


def _public_name(codec: JsonCodec | None, tag: str) -> str:
    """A registered class's name as its users import it (``public_module``); the codec
    name when the codec does not know it."""
    cls = codec.lookup(tag) if codec is not None else None
    if cls is None:
        return tag
    return f"{public_module(cls)}.{cls.__qualname__}"


def public_module(obj: Any) -> str:
    """Where users import a class or function from: its module when that is public,
    else the nearest public package that exports it under the same name
    (``runtime.demo`` for ``runtime.demo._workflow.Summary``), else its module."""
    module: str = obj.__module__
    parts = module.split(".")
    public = 0
    while public < len(parts) and not parts[public].startswith("_"):
        public += 1
    if public == len(parts):
        return module
    for end in range(public, 0, -1):
        package = ".".join(parts[:end])
        found: Any = sys.modules.get(package)
        for name in obj.__qualname__.split("."):
            found = getattr(found, name, None)
        if found is obj or found is getattr(obj, "__wrapped__", None):
            return package
    return module
