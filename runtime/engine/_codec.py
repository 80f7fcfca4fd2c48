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
import json.encoder
import math
from collections.abc import Callable, Iterable
from typing import Any

from runtime.errors import CodecError

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - orjson is a dependency
    _orjson = None  # type: ignore[assignment]

__all__ = [
    "JsonCodec",
    "canonical_json",
    "compact_json",
    "compact_json_bytes",
    "digest",
    "readable_error",
    "type_tag",
]

_PRIMITIVES = (str, int, bool, type(None))
_PRIMITIVE_SET = frozenset(_PRIMITIVES)


def type_tag(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def _not_json(o: Any) -> Any:
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


# The C encoder ``_CANONICAL.encode`` builds on every call, made once: the same text
# without the per-call set-up (a few microseconds, most of the cost for small data).
# No circular-reference bookkeeping: encoded data is a tree (a cycle would recurse
# forever in ``JsonCodec.encode`` first); a cycle shows as ``RecursionError``.
# W1 -2.2%, W3b -6.6% instructions against ``_CANONICAL.encode`` (bench/README.md)
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_c_encode_basestring: Any = getattr(json.encoder, "c_encode_basestring", None)
_CANONICAL_C: Callable[[Any, int], Any] | None = (
    _c_make_encoder(None, _not_json, _c_encode_basestring, None, ":", ",", True, False, False)
    if _c_make_encoder is not None and _c_encode_basestring is not None
    else None
)


def _canonical_encode(data: Any, _level: int) -> tuple[str]:  # pragma: no cover
    return (_CANONICAL.encode(data),)


canonical_chunks: Callable[[Any, int], Any] = _CANONICAL_C or _canonical_encode
"""``"".join(canonical_chunks(data, 0)) == canonical_json(data)``, for loops over many
values (a cycle raises ``RecursionError`` here; ``canonical_json`` makes it ``ValueError``)."""


def canonical_json(data: Any) -> str:
    """The canonical JSON text of encoded data: sorted keys, no spaces."""
    if _CANONICAL_C is None:  # pragma: no cover - CPython always has the C encoder
        return _CANONICAL.encode(data)
    try:
        return "".join(_CANONICAL_C(data, 0))
    except RecursionError as exc:  # no circular-reference bookkeeping in the C encoder
        raise ValueError("Circular reference detected") from exc


_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
"""What ``compact_json`` falls back on (orjson writes the rest)."""


# Types orjson would write and json refuses (dataclasses, datetimes) pass through to
# the stdlib encoder, which refuses them with its own message.
_ORJSON_OPTS = (
    0 if _orjson is None else _orjson.OPT_PASSTHROUGH_DATACLASS | _orjson.OPT_PASSTHROUGH_DATETIME
)
_ORJSON_OPTS_NL = 0 if _orjson is None else _ORJSON_OPTS | _orjson.OPT_APPEND_NEWLINE


def compact_json(data: Any) -> str:
    """Compact JSON text for documents written at every barrier (checkpoints, run
    records): keys in their order, no spaces, non-ASCII kept; it parses back to what
    ``json.dumps(data, separators=(",", ":"), ensure_ascii=False)`` gives.

    Written by orjson (faster than the stdlib's C encoder; bench/README.md);
    what orjson cannot write (integers beyond 64 bits, non-string keys, very deep
    nesting) goes through the stdlib encoder. The text differs from ``json.dumps``
    only in how a float's exponent is spelled (``1e16`` for ``1e+16``), never in a
    value. Only codec JSON forms reach it, and the codec refuses NaN and infinities
    (which orjson would write as ``null``).
    """
    if _orjson is not None:
        try:
            return _orjson.dumps(data, option=_ORJSON_OPTS).decode()
        except _orjson.JSONEncodeError:
            pass
    return _COMPACT.encode(data)


def compact_json_bytes(data: Any, *, newline: bool = False) -> bytes:
    """``compact_json(data)`` as UTF-8 bytes, with a trailing newline when ``newline``
    (one line of a JSON-lines log), without an intermediate ``str``."""
    if _orjson is not None:
        try:
            return _orjson.dumps(data, option=_ORJSON_OPTS_NL if newline else _ORJSON_OPTS)
        except _orjson.JSONEncodeError:
            pass
    text = _COMPACT.encode(data)
    return (text + "\n").encode() if newline else text.encode()


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
        # per registered type, the pydantic-core serializer / validator call, taken from
        # the adapter once it is complete (skips the TypeAdapter wrapper on every message)
        self._dumpers: dict[type, Callable[..., Any]] = {}
        self._loaders: dict[type, Callable[[Any], Any]] = {}
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

    def lookup(self, tag: str) -> type | None:
        """The registered class of a codec name (``type_tag``), if any."""
        return self._by_tag.get(tag)

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
            if _all_primitive(value):
                return list(value)
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
            dump = self._dumpers.get(t)
            if dump is None:
                dump = self._core_call(t, "serializer", "to_python", self._dumpers)
            encoded = dump(value, mode="json")
        except Exception as exc:
            raise CodecError(f"cannot encode {tag}: {readable_error(exc)}") from exc
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
            if _all_primitive(data):
                return list(data)
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
                    load = self._loaders.get(cls)
                    if load is None:
                        load = self._core_call(cls, "validator", "validate_python", self._loaders)
                    return load(data.get("$value"))
                except Exception as exc:
                    raise CodecError(f"cannot decode {tag}: {readable_error(exc)}") from exc
            inner = data.get("$dict")
            if inner is not None and len(data) == 1:
                if type(inner) is not dict:
                    raise CodecError(f"malformed $dict wrapper: {inner!r} is not an object")
                return {k: self.decode(v) for k, v in inner.items()}
            return {k: self.decode(v) for k, v in data.items()}
        raise CodecError(f"not JSON data: {data!r}")

    def roundtrip(self, value: Any) -> Any:
        return self.decode(self.encode(value))

    def _core_call(
        self, cls: type, part: str, method: str, cache: dict[type, Callable[..., Any]]
    ) -> Callable[..., Any]:
        """The pydantic-core ``method`` of ``cls``'s adapter (``serializer.to_python``,
        ``validator.validate_python``): what ``TypeAdapter.dump_python`` and
        ``validate_python`` call with these defaults. Cached once the adapter is
        complete; an adapter still waiting for a forward reference is asked each time
        (its mock rebuilds it on use)."""
        adapter = self._adapter(cls)
        call: Callable[..., Any] = getattr(getattr(adapter, part), method)
        if getattr(adapter, "pydantic_complete", False):
            cache[cls] = call
        return call


def readable_error(exc: BaseException) -> str:
    """One line for a failed validation: the first error's field path and message
    (pydantic's own text spans lines and names its error codes and docs links)."""
    from pydantic_core import ValidationError  # imported lazily: keeps start-up lean

    if isinstance(exc, ValidationError):
        found = exc.errors(include_url=False, include_context=False, include_input=False)
        if found:
            first = found[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            text = f"{where}: {first['msg']}" if where else str(first["msg"])
            more = len(found) - 1
            return text + (
                f" (and {more} more {'error' if more == 1 else 'errors'})" if more else ""
            )
    return " ".join(str(exc).split()) or type(exc).__name__


def _all_primitive(items: list[Any] | tuple[Any, ...]) -> bool:
    """Are all items ``str``, ``int``, ``bool`` or ``None`` (which cross the codec
    unchanged)? One pass in C over the element types, not a call per element."""
    return _PRIMITIVE_SET.issuperset(map(type, items))


def _is_model(cls: type) -> bool:
    return any(
        b.__name__ == "BaseModel" and b.__module__.startswith("pydantic") for b in cls.__mro__
    )
