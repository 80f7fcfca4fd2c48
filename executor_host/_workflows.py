"""The workflows an app serves, loaded from ``module:attr`` specs.

``attr`` may be a ``Workflow``, a zero-argument factory returning one, or a list
or dict of either (or a factory returning such a collection). Every run gets
fresh ``Workflow`` objects from its factory, because executor instances hold the
run's executor state.

``module:*`` serves every module-level factory of ``module`` with JSON parameters:
a run names the factory (``module:function``) and its parameters, and every app
builds the same workflow from them (the conformance suite runs this way).
"""

from __future__ import annotations

import copy
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from runtime import Workflow
from runtime.engine import canonical_json

__all__ = ["WorkflowRegistry"]

Factory = Callable[[], Workflow]

_BUILT_TEMPLATES = 64
"""Factory-built templates kept (by factory and parameters), least recently used first out."""


class UnknownWorkflow(LookupError):
    """The named workflow (or factory) is not served here."""


class WorkflowRegistry:
    def __init__(self, factories: dict[str, Factory], modules: Iterable[str] = ()) -> None:
        self._factories = factories
        self._templates = {name: f() for name, f in factories.items()}
        self.modules = tuple(modules)
        """Modules whose factories may be called with parameters (``module:*``)."""
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
        return factory.partition(":")[0] in self.modules

    def _call(self, factory: str, params: Mapping[str, Any]) -> Workflow:
        module_name, _, attr = factory.partition(":")
        if module_name not in self.modules:
            raise UnknownWorkflow(
                f"factory {factory!r} is not served here (its module is not listed as "
                f"'{module_name}:*' in SUPERSTEP_WORKFLOWS)"
            )
        obj = factory_function(module_name, attr)
        if obj is None:
            raise UnknownWorkflow(
                f"factory {factory!r} does not exist (a factory is a public function "
                f"defined in {module_name})"
            )
        try:
            inspect.signature(obj).bind(**params)
        except TypeError as exc:
            raise UnknownWorkflow(
                f"factory {factory!r} does not take these parameters: {exc}"
            ) from None
        made = obj(**params)
        if not isinstance(made, Workflow):
            raise UnknownWorkflow(f"factory {factory!r} did not return a Workflow")
        return made

    def resolve(
        self, name: str, factory: str | None = None, params: Mapping[str, Any] | None = None
    ) -> Workflow:
        """The shared template of a served workflow (never run)."""
        if factory is None:
            if name not in self._templates:
                raise UnknownWorkflow(f"no workflow named {name!r}; registered: {self.names}")
            return self._templates[name]
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
            if name not in self._factories:
                raise UnknownWorkflow(f"no workflow named {name!r}; registered: {self.names}")
            return self._factories[name]()
        return self._call(factory, params or {})


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
