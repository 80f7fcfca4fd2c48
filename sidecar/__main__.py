"""``python -m sidecar run -f dapr.yaml``: run a multi-app template with the local sidecar,
or with ``--daprd`` beside real daprd processes (Dapr's binaries, as ``tools/dapr/install``
builds them), the way ``dapr run -f`` does; ``python -m sidecar list`` shows the running
runs and their apps, ``python -m sidecar stop -f dapr.yaml`` (or ``--name``) stops one,
as ``dapr list`` and ``dapr stop -f`` do (``sidecar.launcher.runs``). Each app's log lines
go to the console and/or a file as its ``appLogDestination`` says
(``sidecar.launcher.logs``).

``python -m sidecar control-plane``: Dapr's placement (50005) and scheduler (50006), for
``dapr run -f dapr.yaml`` with the Dapr CLI, until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from sidecar.errors import ResourceError, StartupError
from sidecar.launcher import RunTemplate, Topology, load_template
from sidecar.launcher.daprd import ControlPlane, find_binaries
from sidecar.launcher.logs import LogRouter
from sidecar.launcher.runs import AppEntry, RunEntry, remove_run, running, stop_run, write_run

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
    started = time.time()
    logs = LogRouter(template.apps, started=started)
    topology = Topology(template.apps, daprd=binaries, sink=logs)
    banner = "== daprd ==" if binaries is not None else "== local sidecar =="
    stop = _stop_on_signals()
    if not await _started(topology.start()):
        logs.close()
        return 1
    for spec in topology.apps:
        http_port, grpc_port = topology.ports(spec.name)
        log.info("%s: sidecar HTTP %d, gRPC %d, ready", spec.name, http_port, grpc_port)
        for kind in ("app", "daprd") if binaries is not None else ("app",):
            path = logs.path(spec.name, kind)
            if path is not None:
                log.info("%s: %s log in %s", spec.name, kind, path)
    record = write_run(_entry(template, topology, logs, started))
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
        remove_run(record)
        logs.close()
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


def _entry(template: RunTemplate, topology: Topology, logs: LogRouter, started: float) -> RunEntry:
    apps = []
    for spec in topology.apps:
        http_port, grpc_port = topology.ports(spec.name)
        process = topology.processes.get(spec.name)
        daprd = topology.daprds.get(spec.name)
        app_log, daprd_log = logs.path(spec.name, "app"), logs.path(spec.name, "daprd")
        apps.append(
            AppEntry(
                app_id=spec.name,
                app_port=spec.app_port,
                http_port=http_port,
                grpc_port=grpc_port,
                app_pid=process.pid if process is not None else None,
                daprd_pid=daprd.process.pid if daprd is not None else None,
                command=list(spec.command),
                app_log=str(app_log) if app_log is not None and spec.command else None,
                daprd_log=str(daprd_log) if daprd_log is not None and daprd else None,
            )
        )
    return RunEntry(
        name=template.name,
        template=str(template.file),
        launcher_pid=os.getpid(),
        started_at=started,
        sidecar="daprd" if topology.daprd is not None else "local",
        apps=apps,
    )


def _age(seconds: float) -> str:
    """An age as ``dapr list`` shows it: 12s, 5m, 3h, 2d."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"


def _list(output: str) -> int:
    runs = running()
    if output == "json":
        print(json.dumps([run.to_json() for run in runs], indent=2))
        return 0
    if not runs:
        print("No runs of the launcher are running.")
        return 0
    header = (
        "APP ID",
        "HTTP PORT",
        "GRPC PORT",
        "APP PORT",
        "AGE",
        "CREATED",
        "LAUNCHER PID",
        "APP PID",
        "SIDECAR",
        "RUN TEMPLATE NAME",
        "RUN TEMPLATE PATH",
    )
    rows = [header]
    now = time.time()
    for run in runs:
        created = time.strftime("%Y-%m-%d %H:%M.%S", time.localtime(run.started_at))
        for app in run.apps:
            sidecar = f"daprd {app.daprd_pid}" if app.daprd_pid is not None else run.sidecar
            rows.append(
                (
                    app.app_id,
                    str(app.http_port),
                    str(app.grpc_port),
                    "-" if app.app_port is None else str(app.app_port),
                    _age(now - run.started_at),
                    created,
                    str(run.launcher_pid),
                    "-" if app.app_pid is None else str(app.app_pid),
                    sidecar,
                    run.name,
                    run.template,
                )
            )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _stop(file: str | None, name: str | None) -> int:
    if file is not None:
        path = Path(file)
        if path.is_dir():  # as the Dapr CLI: a folder means its dapr.yaml
            path = path / "dapr.yaml"
        wanted = str(path.resolve())
        chosen = [run for run in running() if run.template == wanted]
        what = f"of {wanted}"
    else:
        chosen = [run for run in running() if run.name == name]
        what = f"named {name!r}"
    if not chosen:
        print(f"error: no run {what} is running (python -m sidecar list)", file=sys.stderr)
        return 1
    code = 0
    for run in chosen:
        apps = ", ".join(app.app_id for app in run.apps)
        if stop_run(run):
            print(f"stopped run {run.name!r} (launcher {run.launcher_pid}: {apps})")
        else:
            print(f"error: launcher {run.launcher_pid} did not stop in time", file=sys.stderr)
            code = 1
    return code


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
    listing = sub.add_parser("list", help="list the running runs and their apps (like `dapr list`)")
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table")
    stopping = sub.add_parser("stop", help="stop a running run (like `dapr stop -f`)")
    which = stopping.add_mutually_exclusive_group(required=True)
    which.add_argument("-f", "--file", help="the run template it was started with (or its folder)")
    which.add_argument("-n", "--name", help="the run's name (its template's name, else file name)")
    args = parser.parse_args(argv)
    if args.command == "list":
        return _list(args.output)
    if args.command == "stop":
        return _stop(args.file, args.name)
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
