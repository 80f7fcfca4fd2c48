"""The workflows an app serves, loaded from ``module:attr`` specs.

``attr`` may be a ``Workflow``, a zero-argument factory returning one, or a list
or dict of either (or a factory returning such a collection). Every run gets
fresh ``Workflow`` objects from its factory, because executor instances hold the
run's executor state.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable, Iterable
from typing import Any

from runtime import Workflow

__all__ = ["WorkflowRegistry"]

Factory = Callable[[], Workflow]


class WorkflowRegistry:
    def __init__(self, factories: dict[str, Factory]) -> None:
        self._factories = factories
        self._templates = {name: f() for name, f in factories.items()}

    @classmethod
    def load(cls, specs: Iterable[str]) -> WorkflowRegistry:
        factories: dict[str, Factory] = {}
        for spec in specs:
            module_name, sep, attr = spec.partition(":")
            if not sep or not attr:
                raise ValueError(f"workflow spec {spec!r} is not module:attr")
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            for factory in _factories_of(obj, spec):
                name = factory().name
                if name in factories:
                    raise ValueError(f"two workflows are named {name!r} ({spec})")
                factories[name] = factory
        return cls(factories)

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def template(self, name: str) -> Workflow:
        """A shared instance for planning and validation (never run)."""
        try:
            return self._templates[name]
        except KeyError:
            raise KeyError(name) from None

    def fresh(self, name: str) -> Workflow:
        """A new instance whose executors belong to one run."""
        return self._factories[name]()

    def __contains__(self, name: object) -> bool:
        return name in self._factories


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
