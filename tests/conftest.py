"""Session-wide test settings: which Dapr the Dapr tests run on.

``SUPERSTEP_DAPR_TARGET=daprd`` runs the sidecar contract tests and the Dapr runtime's
tests on real daprd (the binaries ``tools/dapr/install`` builds into ``~/.dapr/bin``, or
``$DAPR_INSTALL_DIR``), with Dapr's placement and scheduler services started once for
the session on ports of its own (``SUPERSTEP_DAPR_PLACEMENT_PORT``,
``SUPERSTEP_DAPR_SCHEDULER_PORT``). By default the tests use the project's local sidecar.

A test that cannot run on daprd is marked ``sidecar_only("why")``: it is skipped there
with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sidecar.launcher import daprd
from sidecar.launcher.daprd import ControlPlane, find_binaries
from sidecar.testing import BackgroundLoop
from tests.sidecar.runs import ON_DAPRD


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sidecar_only(reason): needs the local sidecar (its internals or its fault "
        "injection); skipped with SUPERSTEP_DAPR_TARGET=daprd",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # the browser tests last: Playwright's sync API switches greenlets in this thread,
    # after which CPython 3.11 can refuse to compile a module imported later (a plugin's
    # lazily imported module, rewritten by pytest: "AST constructor recursion depth
    # mismatch"); nothing is imported after them
    console = Path(__file__).resolve().parent / "console"
    items.sort(key=lambda item: Path(str(item.path)).is_relative_to(console))
    if not ON_DAPRD:
        return
    for item in items:
        marker = item.get_closest_marker("sidecar_only")
        if marker is not None:
            why = marker.args[0] if marker.args else "needs the local sidecar's internals"
            item.add_marker(pytest.mark.skip(reason=f"sidecar_only: {why}"))


@pytest.fixture(scope="session", autouse=True)
def dapr_control_plane() -> Iterator[ControlPlane | None]:
    """On the daprd target, placement and scheduler for the whole session."""
    if not ON_DAPRD:
        yield None
        return
    # ports of the session's own, read by every launcher it starts (in this process and
    # in the `python -m sidecar run --daprd` it runs)
    daprd.use_free_ports()
    with BackgroundLoop() as bg:
        plane = ControlPlane(find_binaries())
        bg.run(plane.start(), timeout=90)
        try:
            yield plane
        finally:
            bg.run(plane.stop(), timeout=60)


def daprd_binaries() -> Path | None:
    """The folder of Dapr's binaries on the daprd target, ``None`` otherwise."""
    return find_binaries() if ON_DAPRD else None
