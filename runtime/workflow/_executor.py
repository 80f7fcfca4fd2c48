"""Executors: typed ``@handler`` methods, ``@response_handler``s, function executors."""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, get_args, get_origin, overload

from runtime.engine import ExecutorPolicy, Placement
from runtime.engine._types import depends_on_value, flatten_union, is_instance_of, type_name
from runtime.workflow._context import WorkflowContext

__all__ = ["Executor", "FunctionExecutor", "executor", "handler", "response_handler"]

F = TypeVar("F", bound=Callable[..., Any])

_HANDLER_ATTR = "__superstep_handler__"
_RESPONSE_ATTR = "__superstep_response_handler__"


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    name: str
    func: Callable[..., Awaitable[None]]
    message_type: Any
    output_types: tuple[Any, ...] | None
    yield_types: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class ResponseHandlerSpec:
    name: str
    func: Callable[..., Awaitable[None]]
    request_type: Any
    response_type: Any
    output_types: tuple[Any, ...] | None
    yield_types: tuple[Any, ...] | None


@dataclass(frozen=True, slots=True)
class _Marker:
    input: Any = None
    output: Any = None
    workflow_output: Any = None


@overload
def handler(func: F) -> F: ...
@overload
def handler(
    func: None = None, *, input: Any = None, output: Any = None, workflow_output: Any = None
) -> Callable[[F], F]: ...
def handler(
    func: F | None = None,
    *,
    input: Any = None,
    output: Any = None,
    workflow_output: Any = None,
) -> F | Callable[[F], F]:
    """Mark an ``async def name(self, message: T, ctx: WorkflowContext[...])`` method as a
    handler for messages of type ``T``. Types come from the annotations, or from
    ``input=``/``output=``/``workflow_output=`` when given."""

    def mark(f: F) -> F:
        setattr(f, _HANDLER_ATTR, _Marker(input, output, workflow_output))
        return f

    return mark(func) if func is not None else mark


@overload
def response_handler(func: F) -> F: ...
@overload
def response_handler(
    func: None = None, *, request: Any = None, response: Any = None
) -> Callable[[F], F]: ...
def response_handler(
    func: F | None = None, *, request: Any = None, response: Any = None
) -> F | Callable[[F], F]:
    """Mark ``async def name(self, original_request: Req, response: Resp, ctx)`` as the
    handler of responses to ``ctx.request_info(Req, Resp)``."""

    def mark(f: F) -> F:
        setattr(f, _RESPONSE_ATTR, _Marker(request, response))
        return f

    return mark(func) if func is not None else mark


def _ctx_types(annotation: Any) -> tuple[tuple[Any, ...] | None, tuple[Any, ...] | None] | None:
    """(output types, workflow-output types) declared by a ``WorkflowContext`` annotation;
    None when the annotation is not a WorkflowContext."""
    origin = get_origin(annotation) or annotation
    if not (isinstance(origin, type) and issubclass(origin, WorkflowContext)):
        return None
    args = get_args(annotation)
    out = flatten_union(args[0]) if len(args) >= 1 else None
    yld = flatten_union(args[1]) if len(args) >= 2 else None
    return (_declared(out), _declared(yld))


def _declared(types: tuple[Any, ...] | None) -> tuple[Any, ...] | None:
    """Declared types without the "nothing" markers: ``Never``, ``NoReturn`` and ``None``
    (``WorkflowContext[None, str]`` reads as "sends nothing, yields str")."""
    if types is None or any(t is Any for t in types):
        return None
    nothing = (typing.Never, typing.NoReturn, None, type(None))
    return tuple(t for t in types if t not in nothing)


def _hints(func: Callable[..., Any], owner: str) -> tuple[dict[str, Any], str | None]:
    try:
        return typing.get_type_hints(func), None
    except Exception as exc:
        return {}, f"{owner}: cannot resolve the annotations of {func.__qualname__}: {exc}"


def _inspect_handler(
    func: Callable[..., Any], marker: _Marker, owner: str, bound: bool
) -> tuple[HandlerSpec | None, str | None]:
    name = func.__qualname__
    if not inspect.iscoroutinefunction(func):
        return None, f"{owner}: handler {name} must be 'async def'"
    params = list(inspect.signature(func).parameters.values())
    if bound:
        params = params[1:]
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2 or len(params) != 2:
        return None, (
            f"{owner}: handler {name} must take exactly (message, ctx)"
            f"{' after self' if bound else ''}, got ({', '.join(p.name for p in params)})"
        )
    hints, problem = _hints(func, owner)
    if problem:
        return None, problem
    msg_t = marker.input if marker.input is not None else hints.get(positional[0].name)
    if msg_t is None:
        return None, (
            f"{owner}: handler {name} has no type for its message parameter "
            f"{positional[0].name!r}; annotate it or pass @handler(input=...)"
        )
    ctx_ann = hints.get(positional[1].name)
    ctx_types = _ctx_types(ctx_ann) if ctx_ann is not None else None
    if ctx_types is None:
        return None, (
            f"{owner}: handler {name} must annotate its context parameter "
            f"{positional[1].name!r} as WorkflowContext, WorkflowContext[T] or WorkflowContext[T, U]"
        )
    out_t, yld_t = ctx_types
    if marker.output is not None:
        out_t = _declared(flatten_union(marker.output))
    if marker.workflow_output is not None:
        yld_t = _declared(flatten_union(marker.workflow_output))
    return HandlerSpec(func.__name__, func, msg_t, out_t, yld_t), None


def _inspect_response(
    func: Callable[..., Any], marker: _Marker, owner: str
) -> tuple[ResponseHandlerSpec | None, str | None]:
    name = func.__qualname__
    if not inspect.iscoroutinefunction(func):
        return None, f"{owner}: response handler {name} must be 'async def'"
    params = list(inspect.signature(func).parameters.values())[1:]
    if len(params) != 3:
        return None, (
            f"{owner}: response handler {name} must take (original_request, response, ctx) "
            f"after self, got ({', '.join(p.name for p in params)})"
        )
    hints, problem = _hints(func, owner)
    if problem:
        return None, problem
    req_t = marker.input if marker.input is not None else hints.get(params[0].name)
    resp_t = marker.output if marker.output is not None else hints.get(params[1].name)
    if req_t is None or resp_t is None:
        return None, f"{owner}: response handler {name} must annotate original_request and response"
    ctx_types = _ctx_types(hints.get(params[2].name))
    if ctx_types is None:
        return None, f"{owner}: response handler {name} must annotate ctx as WorkflowContext[...]"
    return ResponseHandlerSpec(func.__name__, func, req_t, resp_t, *ctx_types), None


_Discovered = tuple[tuple[HandlerSpec, ...], tuple[ResponseHandlerSpec, ...], tuple[str, ...]]
_DISCOVERED: dict[type, _Discovered] = {}


def _class_handlers(cls: type) -> _Discovered:
    """The handlers of an executor class (inspected once per class)."""
    found = _DISCOVERED.get(cls)
    if found is None:
        found = _DISCOVERED[cls] = _inspect_class(cls)
    return found


def _inspect_class(cls: type) -> _Discovered:
    handlers: list[HandlerSpec] = []
    responses: list[ResponseHandlerSpec] = []
    problems: list[str] = []
    seen: set[str] = set()
    for klass in cls.__mro__:
        for attr, member in vars(klass).items():
            if attr in seen:
                continue
            marker = getattr(member, _HANDLER_ATTR, None)
            rmarker = getattr(member, _RESPONSE_ATTR, None)
            if marker is None and rmarker is None:
                continue
            seen.add(attr)
            if marker is not None:
                spec, problem = _inspect_handler(member, marker, cls.__qualname__, bound=True)
                if spec is not None:
                    handlers.append(spec)
            else:
                assert isinstance(rmarker, _Marker)
                rspec, problem = _inspect_response(member, rmarker, cls.__qualname__)
                if rspec is not None:
                    responses.append(rspec)
            if problem:
                problems.append(problem)
    return tuple(handlers), tuple(responses), tuple(problems)


class Executor:
    """A node of the workflow graph. Subclass it and mark methods with ``@handler``.

    ``policy`` bounds and retries its activations; ``placement`` says which pool of
    hosts may run it on a distributed runtime (validated and recorded in-process).

    An executor handles its messages one at a time and never runs concurrently
    with itself. Instance attributes persist across supersteps of a run; override
    ``on_checkpoint_save``/``on_checkpoint_restore`` so that they survive
    checkpoints, retries and failover.
    """

    def __init__(
        self,
        id: str,
        *,
        policy: ExecutorPolicy | None = None,
        placement: Placement | None = None,
    ) -> None:
        if not isinstance(id, str) or not id:
            raise ValueError("an executor id must be a non-empty string")
        self.id = id
        self.policy = policy
        self.placement = placement
        handlers, responses, problems = self._discover()
        self._handlers = handlers
        self._response_handlers = responses
        self._problems = list(problems)
        if not handlers and not responses and not problems:
            self._problems.append(
                f"executor {id!r} ({type(self).__qualname__}) has no @handler methods; mark "
                "its message handlers with @handler"
            )
        self._dispatch: dict[type, HandlerSpec | None] = {}
        # a Literal handler matches some values of a type and not others: no per-type cache
        self._dispatch_per_type = not any(depends_on_value(h.message_type) for h in handlers)

    def _discover(
        self,
    ) -> tuple[tuple[HandlerSpec, ...], tuple[ResponseHandlerSpec, ...], tuple[str, ...]]:
        return _class_handlers(type(self))

    # -- introspection --------------------------------------------------------------
    @property
    def kind(self) -> str:
        cls = type(self)
        return f"{cls.__module__}.{cls.__qualname__}"

    @property
    def input_types(self) -> list[Any]:
        return [h.message_type for h in self._handlers]

    @property
    def output_types(self) -> list[Any] | None:
        """What its handlers declare they send; None when any handler leaves it open."""
        return _union_declared(
            [h.output_types for h in self._handlers]
            + [h.output_types for h in self._response_handlers]
        )

    @property
    def workflow_output_types(self) -> list[Any] | None:
        """What its handlers declare they yield; None when any handler leaves it open."""
        return _union_declared(
            [h.yield_types for h in self._handlers]
            + [h.yield_types for h in self._response_handlers]
        )

    def can_handle(self, value: Any) -> bool:
        return self._handler_for(value) is not None

    def _handler_for(self, value: Any) -> HandlerSpec | None:
        t = type(value)
        simple = self._dispatch_per_type and t not in (list, dict, tuple, set, frozenset)
        if simple:
            try:
                return self._dispatch[t]
            except KeyError:
                pass
        found = None
        for h in self._handlers:
            if is_instance_of(value, h.message_type):
                found = h
                break
        if simple:
            self._dispatch[t] = found
        return found

    def _response_handler_for(self, request: Any, response: Any) -> ResponseHandlerSpec | None:
        for h in self._response_handlers:
            if is_instance_of(request, h.request_type) and is_instance_of(
                response, h.response_type
            ):
                return h
        return None

    def _has_response_handler(self, request: Any, response_type: type) -> bool:
        return any(
            is_instance_of(request, h.request_type) and _covers(h.response_type, response_type)
            for h in self._response_handlers
        )

    def _call(
        self, spec: HandlerSpec, value: Any, ctx: WorkflowContext[Any, Any]
    ) -> Awaitable[None]:
        """The handler's coroutine for ``value`` (returned, not awaited here: one
        coroutine per message instead of two)."""
        return spec.func(self, value, ctx)

    # -- snapshots ------------------------------------------------------------------
    async def on_checkpoint_save(self) -> dict[str, Any]:
        """Return this executor's own state (JSON-codec values) for checkpoints."""
        return {}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        """Restore what ``on_checkpoint_save`` returned."""

    @property
    def _has_snapshot(self) -> bool:
        return type(self).on_checkpoint_save is not Executor.on_checkpoint_save

    def __repr__(self) -> str:
        return f"{type(self).__qualname__}(id={self.id!r})"


def _union_declared(declared: list[tuple[Any, ...] | None]) -> list[Any] | None:
    out: list[Any] = []
    for types in declared:
        if types is None:
            return None
        out.extend(types)
    return out


def _covers(declared: Any, wanted: Any) -> bool:
    if declared is Any or declared is object or declared == wanted:
        return True
    members = flatten_union(declared)
    return any(
        m == wanted or (isinstance(m, type) and isinstance(wanted, type) and issubclass(wanted, m))
        for m in members
    )


class FunctionExecutor(Executor):
    """An executor made from one ``async def f(message: T, ctx: WorkflowContext[...])``."""

    def __init__(
        self,
        func: Callable[..., Awaitable[None]],
        id: str | None = None,
        *,
        policy: ExecutorPolicy | None = None,
        placement: Placement | None = None,
        input: Any = None,
        output: Any = None,
        workflow_output: Any = None,
    ) -> None:
        self._func = func
        self._marker = _Marker(input, output, workflow_output)
        super().__init__(id or func.__name__, policy=policy, placement=placement)
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def _discover(
        self,
    ) -> tuple[tuple[HandlerSpec, ...], tuple[ResponseHandlerSpec, ...], tuple[str, ...]]:
        spec, problem = _inspect_handler(
            self._func, self._marker, f"function executor {self._func.__name__!r}", bound=False
        )
        return ((spec,) if spec else ()), (), ((problem,) if problem else ())

    @property
    def kind(self) -> str:
        return f"{self._func.__module__}.{self._func.__qualname__}"

    def _call(
        self, spec: HandlerSpec, value: Any, ctx: WorkflowContext[Any, Any]
    ) -> Awaitable[None]:
        return self._func(value, ctx)


@overload
def executor(func: Callable[..., Awaitable[None]]) -> FunctionExecutor: ...
@overload
def executor(
    func: None = None,
    *,
    id: str | None = None,
    policy: ExecutorPolicy | None = None,
    placement: Placement | None = None,
    input: Any = None,
    output: Any = None,
    workflow_output: Any = None,
) -> Callable[[Callable[..., Awaitable[None]]], FunctionExecutor]: ...
def executor(
    func: Callable[..., Awaitable[None]] | None = None,
    *,
    id: str | None = None,
    policy: ExecutorPolicy | None = None,
    placement: Placement | None = None,
    input: Any = None,
    output: Any = None,
    workflow_output: Any = None,
) -> FunctionExecutor | Callable[[Callable[..., Awaitable[None]]], FunctionExecutor]:
    """Turn ``async def f(message: T, ctx: WorkflowContext[...])`` into an executor
    (id defaults to the function name)."""

    def wrap(f: Callable[..., Awaitable[None]]) -> FunctionExecutor:
        return FunctionExecutor(
            f,
            id,
            policy=policy,
            placement=placement,
            input=input,
            output=output,
            workflow_output=workflow_output,
        )

    return wrap(func) if func is not None else wrap


def describe_types(types: list[Any] | tuple[Any, ...]) -> str:
    return ", ".join(type_name(t) for t in types) or "nothing"
