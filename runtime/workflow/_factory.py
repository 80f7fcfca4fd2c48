"""``@workflow_factory``: a function that builds a workflow the same way here and on a
remote runtime's servers.

A remote runtime runs a workflow the servers build themselves: by its name when they
serve it by name, or by calling the same factory with the same JSON parameters when
they serve the factory's module (``SUPERSTEP_WORKFLOWS=module:*``). A factory marked
with this decorator records on each workflow it builds where it came from
(``Workflow.origin``: ``("module:function", {parameter: JSON value})``, the module
being the one users import the function from), and ``RemoteRuntime`` sends that
along, so ``build(workers=4).run(job, runtime=remote)`` needs nothing else.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec

from runtime.workflow._plain import public_module

if TYPE_CHECKING:
    from runtime.workflow._workflow import Workflow

__all__ = ["FACTORY_MARK", "factory_origin", "is_workflow_factory", "workflow_factory"]

P = ParamSpec("P")

FACTORY_MARK = "__superstep_factory__"
"""The attribute ``@workflow_factory`` sets on the function it returns (its
``module:function``): servers list such functions of a ``module:*`` module as factories."""


def workflow_factory(fn: Callable[P, Workflow]) -> Callable[P, Workflow]:
    """Mark a module-level function returning a ``Workflow`` as a workflow factory.

    Each workflow it builds records its origin, ``("module:function", params)``, where
    ``params`` are the arguments of the call by parameter name (defaults are left to
    the factory). When they are not JSON data (an object, a tuple, NaN), the workflow
    has no origin: it runs in-process as ever, and a remote runtime can only run it by
    name. Servers that list ``module:*`` list the factory with its parameters
    (``GET /workflows``).
    """
    ref = f"{fn.__module__}:{fn.__qualname__}"
    if "." in fn.__qualname__ or fn.__qualname__.startswith("_"):
        raise TypeError(
            f"@workflow_factory needs a public module-level function (servers call it by "
            f"module:function), not {ref}"
        )
    signature = inspect.signature(fn)
    by_position = [
        p.name
        for p in signature.parameters.values()
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)
    ]
    if by_position:
        raise TypeError(
            f"@workflow_factory: {ref} takes {', '.join(by_position)} by position only; "
            "servers pass a factory's parameters by name"
        )

    @functools.wraps(fn)
    def build(*args: P.args, **kwargs: P.kwargs) -> Workflow:
        wf = fn(*args, **kwargs)
        # named where users import it from: a package that exports a factory of its
        # private module is what servers list (``runtime.demo:*``)
        wf.origin = factory_origin(
            f"{public_module(build)}:{fn.__qualname__}", signature.bind(*args, **kwargs)
        )
        # the same call again gives a workflow with executor instances of its own: what a
        # concurrent run of this object runs on (``Workflow.fresh``)
        wf._rebuild = functools.partial(fn, *args, **kwargs)
        return wf

    setattr(build, FACTORY_MARK, ref)
    return build


def is_workflow_factory(fn: Callable[..., Any]) -> bool:
    """Does ``fn`` build workflows: marked with ``@workflow_factory``, or annotated to
    return a ``Workflow``? (Servers of a ``module:*`` module call only these.)"""
    if getattr(fn, FACTORY_MARK, None) is not None:
        return True
    try:
        returns = inspect.signature(fn).return_annotation
    except (TypeError, ValueError):
        return False
    if isinstance(returns, str):  # postponed (``from __future__ import annotations``)
        return returns == "Workflow" or returns.endswith(".Workflow")
    from runtime.workflow._workflow import Workflow

    return isinstance(returns, type) and issubclass(returns, Workflow)


def factory_origin(ref: str, bound: inspect.BoundArguments) -> tuple[str, dict[str, Any]] | None:
    """``(ref, params)`` for a call bound to a factory's signature, or None when its
    arguments do not cross JSON unchanged."""
    params: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = bound.signature.parameters[name].kind
        if kind is inspect.Parameter.VAR_KEYWORD:
            params.update(value)
        else:
            params[name] = value
    return (ref, params) if _is_json(params) else None


def _is_json(value: Any) -> bool:
    """Is ``value`` JSON data exactly: no subclasses (an enum member, a tuple), no NaN?"""
    t = type(value)
    if t in (str, int, bool, type(None)):
        return True
    if t is float:
        return math.isfinite(value)
    if t is list:
        return all(_is_json(v) for v in value)
    if t is dict:
        return all(type(k) is str and _is_json(v) for k, v in value.items())
    return False
