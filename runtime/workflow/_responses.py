"""Checking a human response against the pending request's declared type."""

from __future__ import annotations

from typing import Any

from runtime.engine import JsonCodec, PendingRequest, type_tag
from runtime.errors import RequestError

__all__ = ["check_response"]

BUILTIN_RESPONSE_TYPES: dict[str, type] = {
    "int": int,
    "str": str,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
}
"""Response type names that are no registered class (``ctx.request_info`` spells them)."""


def check_response(codec: JsonCodec, pending: PendingRequest, value: Any) -> None:
    """Raise ``RequestError`` unless ``value`` has the type the request asked for."""
    expected = pending.response_type
    if expected == "None":
        ok = value is None
    elif expected in BUILTIN_RESPONSE_TYPES:
        t = BUILTIN_RESPONSE_TYPES[expected]
        ok = isinstance(value, t) and not (t is int and isinstance(value, bool))
        if t is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
    else:
        ok = type_tag(type(value)) == expected or any(
            type_tag(b) == expected for b in type(value).__mro__
        )
    if not ok:
        raise RequestError(
            f"response to request {pending.request_id!r} must be {expected}, got "
            f"{type(value).__qualname__}"
        )
    codec.encode(value)
