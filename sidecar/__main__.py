"""``python -m sidecar run -f dapr.yaml``: run a multi-app template with the local sidecar,
or with ``--daprd`` beside real daprd processes (Dapr's binaries, as ``tools/dapr/install``
builds them), the way ``dapr run -f`` does.

``python -m sidecar control-plane``: Dapr's placement (50005) and scheduler (50006), for
``dapr run -f dapr.yaml`` with the Dapr CLI, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from sidecar.errors import ResourceError, StartupError
from sidecar.launcher import Topology, load_template
from sidecar.launcher.daprd import ControlPlane, find_binaries

log = logging.getLogger("sidecar")


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _started(start: Coroutine[Any, Any, None]) -> bool:
    """Await a start; on a :class:`StartupError` print it with its log tail."""
    try:
        await start
    except StartupError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        for line in exc.log_tail:
            print(f"  | {line}", file=sys.stderr)
        return False
    return True


async def _run(template_file: str, daprd: str | None) -> int:
    template = load_template(template_file)
    try:
        binaries = find_binaries(daprd or None) if daprd is not None else None
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    topology = Topology(template.apps, daprd=binaries)
    banner = "== daprd ==" if binaries is not None else "== local sidecar =="
    stop = _stop_on_signals()
    if not await _started(topology.start()):
        return 1
    for spec in topology.apps:
        http_port, grpc_port = topology.ports(spec.name)
        log.info("%s: sidecar HTTP %d, gRPC %d, ready", spec.name, http_port, grpc_port)
    print(f"{banner} {len(topology.apps)} app(s) running; Ctrl-C stops them", flush=True)
    waiter = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            exited = asyncio.create_task(topology.wait_any_exit())
            done, _ = await asyncio.wait({waiter, exited}, return_when=asyncio.FIRST_COMPLETED)
            if exited in done:
                app_id = exited.result()
                log.warning("app %s exited; its sidecar keeps running", app_id)
                topology.processes.pop(app_id, None)
                if not topology.processes:
                    break
            else:
                exited.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await exited
    finally:
        waiter.cancel()
        print(f"{banner} stopping", flush=True)
        await topology.stop()
    return 0


async def _control_plane(daprd: str) -> int:
    try:
        plane = ControlPlane(find_binaries(daprd or None), sink=_print_line)
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = _stop_on_signals()
    if not await _started(plane.start()):
        return 1
    print(
        f"== control plane == placement {plane.placement_address}, scheduler "
        f"{plane.scheduler_address}"
        + ("" if plane.processes else " (both were running already)")
        + "; Ctrl-C stops what this started",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await plane.stop()
    return 0


def _print_line(name: str, line: str) -> None:
    print(f"{name}: {line}", flush=True)


def _event_loop_runner() -> Callable[[Coroutine[Any, Any, int]], int]:
    """uvloop when it is installed (it comes with ``uvicorn[standard]``): every hop of
    every app's sidecar runs on this one loop, and uvloop's I/O costs less CPU
    (bench/README.md)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run
    return uvloop.run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sidecar",
        description="Run apps with the Dapr-API-compatible local sidecar (not Dapr itself).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run a multi-app template (like `dapr run -f`)")
    run.add_argument("-f", "--file", required=True, help="the run template, e.g. dapr.yaml")
    run.add_argument("--log-level", default="info")
    run.add_argument(
        "--daprd",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="run real daprd beside each app (binaries from DIR, else $DAPR_INSTALL_DIR, "
        "else ~/.dapr/bin; placement and scheduler are started when not running)",
    )
    plane = sub.add_parser(
        "control-plane",
        help="run Dapr's placement and scheduler for `dapr run -f` (until Ctrl-C)",
        description="Start Dapr's placement (port 50005, or $SUPERSTEP_DAPR_PLACEMENT_PORT) "
        "and scheduler (50006, or $SUPERSTEP_DAPR_SCHEDULER_PORT) from DIR, else "
        "$DAPR_INSTALL_DIR, else ~/.dapr/bin, unless they already answer there; stop them "
        "on Ctrl-C.",
    )
    plane.add_argument("--daprd", default="", metavar="DIR", help="the binaries' folder")
    args = parser.parse_args(argv)
    if args.command == "control-plane":
        return asyncio.run(_control_plane(args.daprd))
    logging.basicConfig(
        level=args.log_level.upper(), format="== SIDECAR == %(levelname)s %(name)s: %(message)s"
    )
    try:
        return _event_loop_runner()(_run(args.file, args.daprd))
    except ResourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
