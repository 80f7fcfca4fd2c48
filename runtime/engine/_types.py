"""Runtime type matching for handler dispatch and build-time edge checks."""

from __future__ import annotations

import collections.abc
import dataclasses
import itertools
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin

__all__ = [
    "depends_on_value",
    "flatten_union",
    "is_instance_of",
    "iter_named_types",
    "list_element_types",
    "type_name",
]

_UNION_ORIGINS: tuple[Any, ...] = (Union, types.UnionType)


def flatten_union(annotation: Any) -> tuple[Any, ...]:
    """``A | B`` -> ``(A, B)``; anything else -> ``(annotation,)``."""
    if get_origin(annotation) in _UNION_ORIGINS:
        out: list[Any] = []
        for arg in get_args(annotation):
            out.extend(flatten_union(arg))
        return tuple(out)
    return (annotation,)


def type_name(annotation: Any) -> str:
    """A short readable name for an annotation, for error messages."""
    if annotation is type(None) or annotation is None:
        return "None"
    if isinstance(annotation, type) and get_origin(annotation) is None:
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def is_instance_of(value: Any, annotation: Any) -> bool:
    """``isinstance`` that understands the typing forms handlers use.

    Supports ``Any``/``object``, unions and ``Optional``, ``list[X]``, ``set[X]``,
    ``tuple[X, ...]``, ``dict[K, V]``, ``Sequence``/``Mapping`` generics, ``Literal``
    and plain classes. Containers are checked element by element.
    """
    if annotation is Any or annotation is object:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = get_origin(annotation)
    if origin is None:
        if isinstance(annotation, type):
            if annotation is float:
                return isinstance(value, (int, float)) and not isinstance(value, bool)
            return isinstance(value, annotation)
        return False
    if origin in _UNION_ORIGINS:
        return any(is_instance_of(value, a) for a in get_args(annotation))
    if origin is Literal:
        return any(value == a and type(value) is type(a) for a in get_args(annotation))
    args = get_args(annotation)
    if origin in (list, set, frozenset, collections.abc.Sequence, collections.abc.Set):
        if not isinstance(value, origin) or isinstance(value, (str, bytes)):
            return False
        if not args:
            return True
        elem = args[0]
        if elem is Any or elem is object:
            return True
        if isinstance(elem, type) and get_origin(elem) is None and elem is not float:
            # the common case, without recursion and in one C loop
            return all(map(isinstance, value, itertools.repeat(elem)))
        return all(is_instance_of(v, elem) for v in value)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if not args:
            return True
        if len(args) == 2 and args[1] is Ellipsis:
            return all(is_instance_of(v, args[0]) for v in value)
        return len(args) == len(value) and all(
            is_instance_of(v, a) for v, a in zip(value, args, strict=True)
        )
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return False
        if not args:
            return True
        k_t, v_t = args
        return all(is_instance_of(k, k_t) and is_instance_of(v, v_t) for k, v in value.items())
    if isinstance(origin, type):
        return isinstance(value, origin)
    return False


def depends_on_value(annotation: Any) -> bool:
    """Does matching ``annotation`` depend on the value and not only on its type?

    True when a ``Literal`` appears anywhere in it: such matches cannot be cached
    per type.
    """
    if get_origin(annotation) is Literal:
        return True
    return any(depends_on_value(a) for a in get_args(annotation) if a is not Ellipsis)


def list_element_types(annotation: Any) -> tuple[Any, ...] | None:
    """For ``list[X]`` (or a union containing one) the element types; else ``None``."""
    found: list[Any] = []
    for member in flatten_union(annotation):
        origin = get_origin(member)
        if origin in (list, collections.abc.Sequence):
            args = get_args(member)
            found.extend(flatten_union(args[0]) if args else (Any,))
        elif member is list:
            found.append(Any)
    return tuple(found) if found else None


def is_subtype(candidate: Any, accepted: Any) -> bool:
    """Can a value declared as ``candidate`` be accepted by a handler of ``accepted``?

    Conservative build-time check: true when some value of the candidate type could
    match. Unknown forms count as compatible so that validation never rejects a
    graph that could work.
    """
    if accepted is Any or accepted is object or candidate is Any:
        return True
    acc = flatten_union(accepted)
    for c in flatten_union(candidate):
        for a in acc:
            if _member_compatible(c, a):
                return True
    return False


def _member_compatible(c: Any, a: Any) -> bool:
    if a is Any or a is object or c is Any:
        return True
    if c is type(None) or c is None:
        return a is type(None) or a is None
    c_origin, a_origin = get_origin(c), get_origin(a)
    if c_origin is None and a_origin is None:
        if isinstance(c, type) and isinstance(a, type):
            if a is float and c is int:
                return True
            return issubclass(c, a) or issubclass(a, c)
        return True
    if c_origin is Literal or a_origin is Literal:
        return True
    c_base = c_origin or c
    a_base = a_origin or a
    if isinstance(c_base, type) and isinstance(a_base, type):
        if not (issubclass(c_base, a_base) or issubclass(a_base, c_base)):
            return False
        c_args, a_args = get_args(c), get_args(a)
        if c_args and a_args and len(c_args) == len(a_args):
            return all(
                x is Ellipsis or y is Ellipsis or is_subtype(x, y)
                for x, y in zip(c_args, a_args, strict=True)
            )
        return True
    return True


def iter_named_types(annotation: Any) -> collections.abc.Iterator[type]:
    """Every dataclass or pydantic model class mentioned by an annotation."""
    if isinstance(annotation, typing.TypeVar):
        return
    origin = get_origin(annotation)
    if origin is not None:
        for arg in get_args(annotation):
            if arg is not Ellipsis:
                yield from iter_named_types(arg)
        return
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or _is_pydantic_model(annotation)
    ):
        yield annotation


def _is_pydantic_model(cls: type) -> bool:
    return any(
        base.__module__.startswith("pydantic") and base.__name__ == "BaseModel"
        for base in cls.__mro__
    )
