"""The JSON codec: messages, outputs, state values and events cross it as JSON.

No pickle. A value encodes to JSON-compatible Python data:

* ``None``, ``bool``, ``int``, ``str`` and finite ``float`` stand for themselves;
* lists and tuples become JSON arrays (tuples arrive as lists);
* dicts with string keys become objects (a dict whose keys start with ``$`` is
  wrapped as ``{"$dict": {...}}``);
* a registered dataclass or pydantic model becomes
  ``{"$type": "<module>.<qualname>", "$value": <its JSON form>}``.

Only registered classes can be decoded, so a peer cannot make us instantiate an
arbitrary class. Workflows register the classes named in their handlers'
annotations automatically; others are added with ``WorkflowBuilder.register_types``.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from collections.abc import Iterable
from typing import Any

from runtime.errors import CodecError

__all__ = ["JsonCodec", "canonical_json", "digest", "type_tag"]

_PRIMITIVES = (str, int, bool, type(None))


def type_tag(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(data: Any) -> str:
    """The canonical JSON text of encoded data: sorted keys, no spaces."""
    return _CANONICAL.encode(data)


def digest(*parts: str) -> str:
    """A 128-bit hex digest of text parts.

    Parts are joined with NUL, which canonical JSON never contains and executor
    ids may not contain, so the concatenation is unambiguous.
    """
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).hexdigest()


class JsonCodec:
    """Encodes values to JSON-compatible data and back, with a registry of allowed types."""

    def __init__(self, types: Iterable[type] = ()) -> None:
        self._by_tag: dict[str, type] = {}
        self._by_type: dict[type, str] = {}
        self._adapters: dict[type, Any] = {}
        for t in types:
            self.register(t)

    # -- registry ---------------------------------------------------------------
    def register(self, cls: type) -> None:
        if cls in self._by_type:
            return
        if not (dataclasses.is_dataclass(cls) or _is_model(cls) or issubclass(cls, enum.Enum)):
            raise CodecError(
                f"cannot register {cls.__qualname__}: only dataclasses, pydantic models and "
                "enums cross the codec"
            )
        tag = type_tag(cls)
        other = self._by_tag.get(tag)
        if other is not None and other is not cls:
            raise CodecError(f"two different classes share the codec name {tag!r}")
        self._by_tag[tag] = cls
        self._by_type[cls] = tag
        self._adapter(cls)  # build the (costly) validator now, not on the first message

    @property
    def registered(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_tag))

    def _adapter(self, cls: type) -> Any:
        adapter = self._adapters.get(cls)
        if adapter is None:
            from pydantic import TypeAdapter  # imported lazily: keeps start-up lean

            adapter = TypeAdapter(cls)
            self._adapters[cls] = adapter
        return adapter

    # -- encoding ---------------------------------------------------------------
    def encode(self, value: Any) -> Any:
        t = type(value)
        if t in _PRIMITIVES:
            return value
        if t is float:
            if not math.isfinite(value):
                raise CodecError(f"{value!r} is not valid JSON (NaN and infinities are not)")
            return value
        if t is list or t is tuple:
            return [self.encode(v) for v in value]
        if t is dict:
            out: dict[str, Any] = {}
            wrap = False
            for k, v in value.items():
                if type(k) is not str:
                    raise CodecError(f"dict keys must be strings to cross JSON, got {k!r}")
                if k.startswith("$"):
                    wrap = True
                out[k] = self.encode(v)
            return {"$dict": out} if wrap else out
        tag = self._by_type.get(t)
        if tag is None:
            raise CodecError(
                f"{t.__module__}.{t.__qualname__} is not a registered message type. Name it in a "
                "handler's annotation or call WorkflowBuilder.register_types("
                f"{t.__qualname__}); dataclasses, pydantic models, enums, JSON primitives, "
                "lists and string-keyed dicts can cross the codec."
            )
        try:
            encoded = self._adapter(t).dump_python(value, mode="json")
        except Exception as exc:
            raise CodecError(f"cannot encode {tag}: {exc}") from exc
        return {"$type": tag, "$value": encoded}

    # -- decoding ---------------------------------------------------------------
    def decode(self, data: Any) -> Any:
        t = type(data)
        if t in _PRIMITIVES:
            return data
        if t is float:
            if not math.isfinite(data):
                raise CodecError(f"{data!r} is not valid JSON (NaN and infinities are not)")
            return data
        if t is list:
            return [self.decode(v) for v in data]
        if t is dict:
            tag = data.get("$type")
            if tag is not None:
                cls = self._by_tag.get(tag) if type(tag) is str else None
                if cls is None:
                    raise CodecError(
                        f"unknown message type {tag!r}: it is not registered here; name it in a "
                        "handler's annotation or call WorkflowBuilder.register_types(...) on "
                        "this side too"
                    )
                try:
                    return self._adapter(cls).validate_python(data.get("$value"))
                except Exception as exc:
                    raise CodecError(f"cannot decode {tag}: {exc}") from exc
            inner = data.get("$dict")
            if inner is not None and len(data) == 1:
                if type(inner) is not dict:
                    raise CodecError(f"malformed $dict wrapper: {inner!r} is not an object")
                return {k: self.decode(v) for k, v in inner.items()}
            return {k: self.decode(v) for k, v in data.items()}
        raise CodecError(f"not JSON data: {data!r}")

    def roundtrip(self, value: Any) -> Any:
        return self.decode(self.encode(value))


def _is_model(cls: type) -> bool:
    return any(
        b.__name__ == "BaseModel" and b.__module__.startswith("pydantic") for b in cls.__mro__
    )
