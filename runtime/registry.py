"""The workflows a server serves, loaded from ``module:attr`` specs: the Dapr runtime's
apps (``SUPERSTEP_WORKFLOWS``) and ``superstep console`` (``--workflow``).

``attr`` may be a ``Workflow``, a zero-argument factory returning one, or a list
or dict of either (or a factory returning such a collection). Every run gets
fresh ``Workflow`` objects from its factory, because executor instances hold the
run's executor state.

``module:*`` serves every workflow factory of ``module`` with JSON parameters — a
public function defined in the module or exported by it (its ``__all__``) that returns
a ``Workflow`` (annotated so, or marked ``@workflow_factory``): a run names the factory
(``module:function``) and its parameters, and every app builds the same workflow from
them (the conformance suite runs this way). Parameters are checked against the
factory's signature and annotations (as JSON, strictly) before it is called.

``describe`` gives what ``GET /workflows`` lists of them, and ``refusal`` the problem
a start is answered with when its workflow cannot be had: the same in both APIs.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from runtime.engine import canonical_json, describe_group, readable_error
from runtime.workflow import Workflow, input_schema, is_workflow_factory

__all__ = [
    "FactoryParameter",
    "InvalidParameters",
    "Placeable",
    "UnknownWorkflow",
    "WorkflowRegistry",
    "describe",
    "refusal",
]

Factory = Callable[[], Workflow]
Refuse = Callable[[int, str, str], Exception]
"""Makes the problem (status, title, detail) an API answers a refused start with."""
T = TypeVar("T")

_BUILT_TEMPLATES = 64
"""Factory-built templates kept (by factory and parameters), least recently used first out."""


class UnknownWorkflow(LookupError):
    """The named workflow (or factory) is not served here."""


class InvalidParameters(ValueError):
    """A served factory does not take these parameters (or refused them)."""


@dataclass(frozen=True)
class FactoryParameter:
    """One parameter of a served factory, as ``GET /workflows`` lists it."""

    name: str
    type: str | list[str] | None
    """Its JSON type (or types) where its annotation says, else None."""
    json_schema: dict[str, Any] | None
    """The JSON schema of its annotation, where pydantic can describe it."""
    required: bool
    default: Any = None
    """Its default value when that is JSON data (else None)."""


class WorkflowRegistry:
    """Workflows served by name (``factories``: name -> what builds a new instance) and
    the factories of ``modules`` (``module:*``); ``listed_in`` names where a server lists
    its modules (for the message when a factory's module is not one)."""

    def __init__(
        self,
        factories: dict[str, Factory],
        modules: Iterable[str] = (),
        *,
        listed_in: str = "SUPERSTEP_WORKFLOWS",
    ) -> None:
        self._factories = factories
        self._templates = {name: f() for name, f in factories.items()}
        self.modules = tuple(modules)
        """Modules whose factories may be called with parameters (``module:*``)."""
        self.listed_in = listed_in
        self._built: dict[tuple[str, str], Workflow] = {}

    @classmethod
    def load(cls, specs: Iterable[str]) -> WorkflowRegistry:
        factories: dict[str, Factory] = {}
        modules: list[str] = []
        for spec in specs:
            module_name, sep, attr = spec.partition(":")
            if not sep or not attr:
                raise ValueError(f"workflow spec {spec!r} is not module:attr")
            if attr == "*":
                importlib.import_module(module_name)
                modules.append(module_name)
                continue
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            for factory in _factories_of(obj, spec):
                name = factory().name
                if name in factories:
                    raise ValueError(f"two workflows are named {name!r} ({spec})")
                factories[name] = factory
        return cls(factories, modules)

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def serves(self, name: str, factory: str | None) -> bool:
        if factory is None:
            return name in self._factories
        return self.serves_factory(factory)

    def serves_factory(self, factory: str) -> bool:
        """Is ``factory``'s module served as ``module:*`` (the factory may not exist)?"""
        return factory.partition(":")[0] in self.modules

    @property
    def factory_names(self) -> list[str]:
        """Every factory served, ``module:function``, in order."""
        out: list[str] = []
        for module_name in self.modules:
            module = importlib.import_module(module_name)
            for attr in sorted(vars(module)):
                fn = factory_function(module_name, attr)
                if fn is not None and is_workflow_factory(fn):
                    out.append(f"{module_name}:{attr}")
        return out

    def factory(self, factory: str) -> Callable[..., Any]:
        """The served factory ``module:function``."""
        module_name, _, attr = factory.partition(":")
        if module_name not in self.modules:
            raise UnknownWorkflow(
                f"factory {factory!r} is not served here (its module is not listed as "
                f"'{module_name}:*' in {self.listed_in})"
            )
        obj = factory_function(module_name, attr)
        if obj is None:
            raise UnknownWorkflow(
                f"factory {factory!r} does not exist (a factory is a public function "
                f"defined in {module_name} or exported by it)"
            )
        if not is_workflow_factory(obj):
            raise UnknownWorkflow(
                f"{factory!r} is not a workflow factory: a factory returns a Workflow "
                "(annotate it '-> Workflow' or mark it @workflow_factory)"
            )
        return obj

    def parameters(self, factory: str) -> list[FactoryParameter]:
        """The parameters of a served factory, from its signature."""
        return [_describe(p) for p in _signature(self.factory(factory)).parameters.values()]

    def _unknown(self, name: str) -> UnknownWorkflow:
        served = f"served by name: {', '.join(map(repr, self.names)) or 'none'}"
        if self.modules:
            served += f"; factories of {', '.join(self.modules)}"
        return UnknownWorkflow(
            f"no workflow named {name!r} ({served}; GET /workflows lists them). A workflow "
            "built by a factory runs by its factory: mark the factory @workflow_factory "
            "and serve its module as module:*"
        )

    def _call(self, factory: str, params: Mapping[str, Any]) -> Workflow:
        obj = self.factory(factory)
        _check_parameters(factory, _signature(obj), params)
        try:
            made = obj(**params)
        except Exception as exc:  # the factory's own check of its parameters, say
            raise InvalidParameters(
                f"factory {factory!r} failed with these parameters: {readable_error(exc)}"
            ) from exc
        if not isinstance(made, Workflow):
            raise UnknownWorkflow(f"factory {factory!r} did not return a Workflow")
        return made

    def resolve(
        self,
        name: str,
        factory: str | None = None,
        params: Mapping[str, Any] | None = None,
        *,
        refuse: Refuse | None = None,
    ) -> Workflow:
        """The shared template of a served workflow (never run). With ``refuse``, one
        that cannot be had is raised as ``refuse(status, title, detail)``: the problem
        both APIs answer a start with (``refusal``)."""
        if refuse is not None:
            try:
                return self.resolve(name, factory, params)
            except (LookupError, TypeError, ValueError) as exc:
                found = refusal(exc, factory)
                if found is None:
                    raise
                raise refuse(*found) from exc
        if factory is None:
            return self._by_name(self._templates, name)
        key = (factory, canonical_json(dict(params or {})))
        wf = self._built.pop(key, None)
        if wf is None:
            wf = self._call(factory, params or {})
        self._built[key] = wf  # most recently used last
        while len(self._built) > _BUILT_TEMPLATES:
            del self._built[next(iter(self._built))]
        return wf

    def build(
        self, name: str, factory: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Workflow:
        """A new instance whose executors belong to one run."""
        if factory is None:
            return self._by_name(self._factories, name)()
        return self._call(factory, params or {})

    def _by_name(self, table: Mapping[str, T], name: str) -> T:
        if name not in table:
            raise self._unknown(name)
        return table[name]


Placeable = Callable[[str, Literal["workflow", "factory"], Workflow], Mapping[str, bool]]
"""Whether a live host can run each executor (id -> bool) of the workflow a catalog
entry builds, given the entry's name, its kind and that workflow."""


def describe(registry: WorkflowRegistry, placeable: Placeable) -> list[dict[str, Any]]:
    """What ``GET /workflows`` lists: every workflow ``registry`` serves by name (``kind``
    ``workflow``), then every factory of its ``module:*`` modules (``kind`` ``factory``,
    named ``module:function``, with its parameters). A factory's graph fields describe
    the workflow it builds with its defaults, and are empty when it has required
    parameters (or its defaults do not build)."""
    out = []
    for name in registry.names:
        wf = registry.resolve(name)
        out.append(_entry(name, "workflow", wf, [], placeable, wf.description))
    for ref in registry.factory_names:
        parameters = registry.parameters(ref)
        built: Workflow | None = None
        if not any(p.required for p in parameters):
            try:
                built = registry.resolve("", ref, {})
            except (LookupError, ValueError):  # its defaults do not build (a probe needed)
                built = None
        description = _first_paragraph(registry.factory(ref).__doc__)
        out.append(_entry(ref, "factory", built, parameters, placeable, description))
    return out


def _entry(
    name: str,
    kind: Literal["workflow", "factory"],
    wf: Workflow | None,
    parameters: list[FactoryParameter],
    placeable: Placeable,
    description: str | None,
) -> dict[str, Any]:
    graph = wf.graph if wf is not None else None
    can = placeable(name, kind, wf) if wf is not None else {}
    return {
        "name": name,
        "kind": kind,
        "description": description,
        "parameters": [dataclasses.asdict(p) for p in parameters],
        "workflow": wf.name if wf is not None else None,
        "signature": graph.signature if graph is not None else None,
        "start": graph.start if graph is not None else None,
        "input_schema": input_schema(wf) if wf is not None else None,
        "executors": [
            {
                "id": n.id,
                "pool": n.placement.pool,
                "labels": dict(n.placement.labels),
                "placeable": can.get(n.id, False),
            }
            for n in (graph.executors if graph is not None else ())
        ],
        "edges": [describe_group(g) for g in (graph.groups if graph is not None else ())],
    }


def _first_paragraph(doc: str | None) -> str | None:
    if not doc:
        return None
    return " ".join(doc.strip().split("\n\n")[0].split()) or None


def refusal(exc: Exception, factory: str | None) -> tuple[int, str, str] | None:
    """The problem (status, title, detail) a start is refused with when resolving its
    workflow raised ``exc`` (None for an exception that is no refusal)."""
    if isinstance(exc, UnknownWorkflow):
        return 404, "Unknown workflow", str(exc)
    if isinstance(exc, InvalidParameters):
        return 422, "Invalid workflow parameters", str(exc)
    if isinstance(exc, (TypeError, ValueError)):
        return 400, "Invalid workflow parameters", f"{factory}: {exc}"
    return None


def factory_function(module_name: str, attr: str) -> Callable[..., Any] | None:
    """The factory ``module_name:attr`` of a ``module:*`` spec: a public function defined
    in that module or exported by it (its ``__all__``), never an attribute path
    (``os.system`` reached through an import of the module), a class, a private name or
    anything else it merely imported."""
    if not attr.isidentifier() or attr.startswith("_"):
        return None
    module = importlib.import_module(module_name)
    obj = vars(module).get(attr)
    if not inspect.isfunction(obj):
        return None
    if obj.__module__ != module.__name__ and attr not in getattr(module, "__all__", ()):
        return None
    return obj


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """``fn``'s signature with its annotations evaluated where they can be (postponed
    ones naming what only type checkers import stay strings)."""
    try:
        return inspect.signature(fn, eval_str=True)
    except Exception:  # NameError and the like, from evaluating an annotation
        return inspect.signature(fn)


def _adapter(annotation: Any) -> Any:
    """A pydantic ``TypeAdapter`` of a parameter's annotation, or None."""
    if annotation is inspect.Parameter.empty or isinstance(annotation, str):
        return None
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(annotation)
    except Exception:  # a type pydantic cannot build a validator for (a probe object)
        return None


def _check_parameters(factory: str, sig: inspect.Signature, params: Mapping[str, Any]) -> None:
    try:
        bound = sig.bind(**params)
    except TypeError as exc:
        raise InvalidParameters(
            f"factory {factory!r} does not take these parameters: {exc}"
        ) from None
    for name, value in bound.arguments.items():
        p = sig.parameters[name]
        adapter = _adapter(p.annotation)
        if adapter is None:
            continue
        values = value if p.kind is inspect.Parameter.VAR_KEYWORD else {name: value}
        for key, v in values.items():
            try:
                adapter.validate_json(json.dumps(v, allow_nan=False), strict=True)
            except ValueError as exc:
                raise InvalidParameters(
                    f"factory {factory!r}, parameter {key!r}: {readable_error(exc)}"
                ) from None


def _describe(p: inspect.Parameter) -> FactoryParameter:
    adapter = _adapter(p.annotation)
    schema: dict[str, Any] | None = None
    if adapter is not None:
        try:
            schema = adapter.json_schema()
        except Exception:  # an annotation pydantic validates but cannot describe
            schema = None
    default: Any = None
    if p.default is not inspect.Parameter.empty:
        try:
            default = json.loads(json.dumps(p.default, allow_nan=False))
        except (TypeError, ValueError):
            default = None
    return FactoryParameter(
        name=p.name,
        type=_json_type(schema),
        json_schema=schema,
        required=p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL),
        default=default,
    )


def _json_type(schema: dict[str, Any] | None) -> str | list[str] | None:
    if schema is None:
        return None
    kind = schema.get("type")
    if isinstance(kind, str):
        return kind
    members = schema.get("anyOf")
    if isinstance(members, list):
        kinds = [m.get("type") for m in members if isinstance(m, dict)]
        named = [k for k in kinds if isinstance(k, str)]
        if named and len(named) == len(members):
            return named
    return None


def _factories_of(obj: Any, spec: str) -> list[Factory]:
    if isinstance(obj, Workflow):
        template = obj
        return [lambda: copy.deepcopy(template)]
    if isinstance(obj, dict):
        return [f for v in obj.values() for f in _factories_of(v, spec)]
    if isinstance(obj, (list, tuple)):
        return [f for v in obj for f in _factories_of(v, spec)]
    if callable(obj):
        made = obj()
        if isinstance(made, Workflow):
            return [obj]
        # a factory of a collection: each member gets a factory that rebuilds the collection
        names = [w.name for w in _members(made, spec)]
        return [_picker(obj, n, spec) for n in names]
    raise TypeError(f"{spec} is not a Workflow, a factory of one, or a collection of them")


def _members(made: Any, spec: str) -> list[Workflow]:
    items = made.values() if isinstance(made, dict) else made
    out = [w for w in items if isinstance(w, Workflow)]
    if not out:
        raise TypeError(f"{spec}() returned no Workflow")
    return out


def _picker(factory: Callable[[], Any], name: str, spec: str) -> Factory:
    def build() -> Workflow:
        for w in _members(factory(), spec):
            if w.name == name:
                return w
        raise KeyError(name)

    return build
