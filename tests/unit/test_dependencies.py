"""A core install (``pip install superstep``, no extras) runs ``superstep demo``.

The demo runs in a fresh interpreter of this environment (which has every extra
installed) that cannot import any distribution a core install lacks: one that neither
pyproject.toml's core dependencies nor, in turn, their own requirements bring in. So an
import only an extra satisfies fails here as in a fresh venv (``No module named
'opentelemetry'``, once), while optional imports (httpx's of ``rich``) fall back there
as they do here.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).parents[2]

_DEMO = """
import json, sys

class CoreInstallOnly:
    # a finder of sys.meta_path that finds nothing a core install lacks
    def __init__(self, finder, missing):
        self.finder, self.missing = finder, missing

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.missing:
            return None
        return self.finder.find_spec(name, path, target)

    def invalidate_caches(self):
        getattr(self.finder, "invalidate_caches", lambda: None)()

missing = set(json.loads(sys.argv[1]))
sys.meta_path[:] = [CoreInstallOnly(f, missing) for f in sys.meta_path]
from runtime.cli import main
sys.exit(main(["demo", "--docs", "4", "--workers", "2", "--latency-ms", "0"]))
"""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _core_closure() -> set[str]:
    """The distributions a core install brings: pyproject's dependencies and, in turn,
    what each of them requires without an extra."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    todo = [Requirement(r) for r in project["dependencies"]]
    seen: set[str] = set()
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = _normalise(req.name)
        if name in seen:
            continue
        seen.add(name)
        todo.extend(Requirement(r) for r in metadata.requires(req.name) or ())
    return seen


def _outside_a_core_install() -> list[str]:
    """Top-level modules installed here only by distributions a core install lacks."""
    core = _core_closure()
    return sorted(
        module
        for module, dists in metadata.packages_distributions().items()
        if not {_normalise(d) for d in dists} & core
        and module not in sys.stdlib_module_names
        and module != "runtime"
    )


def test_the_demo_runs_with_only_what_a_core_install_has() -> None:
    missing = _outside_a_core_install()
    assert "dapr" in missing and "fastapi" in missing  # the dapr extra's, for one
    done = subprocess.run(
        [sys.executable, "-c", _DEMO, json.dumps(missing)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "Processed 4 documents" in done.stdout
