"""``superstep console``: the run console for the in-process runtime."""

from __future__ import annotations

import argparse
import asyncio
import copy
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from runtime.checkpoint import CheckpointStorage, FileCheckpointStorage, InMemoryCheckpointStorage
from runtime.cli._commands import checkpoint_directory
from runtime.cli._common import EXIT_OK, CliError, import_module, load_workflow
from runtime.workflow import Workflow

if TYPE_CHECKING:
    from runtime.cli._common import SubParsers

__all__ = ["add_console_parser"]

DEFAULT_PORT = 8301


def workflow_factory_of(spec: str) -> Callable[[], Workflow]:
    """What builds a new instance of the workflow ``module:attr`` for each run: the
    function itself, when ``attr`` is one, else a copy of the ``Workflow`` (its executors
    hold a run's state)."""
    template = load_workflow(spec)  # reports what is wrong with the spec, once
    module_name, _, attr = spec.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    if isinstance(obj, Workflow):
        return lambda: copy.deepcopy(template)
    factory: Callable[[], Workflow] = obj
    return factory


async def console(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from runtime.console import ConsoleApp, serve_console

    if not args.workflow and args.checkpoint_dir is None:
        raise CliError("give --workflow module:attr (runs to start) and/or --checkpoint-dir DIR")
    specs = args.workflow or ()
    modules = [import_module(spec[:-2]).__name__ for spec in specs if spec.endswith(":*")]
    factories = [workflow_factory_of(spec) for spec in specs if not spec.endswith(":*")]
    storage: CheckpointStorage
    if args.checkpoint_dir is not None:
        directory = checkpoint_directory(
            args.checkpoint_dir, create=args.create, hint=" (--create makes it)"
        )
        storage = FileCheckpointStorage(directory)
    else:
        storage = InMemoryCheckpointStorage()
    try:
        app = ConsoleApp(
            factories, storage, modules=modules, keep_runs=args.keep_runs, token=args.token
        )
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    try:
        server = await serve_console(app, args.host, args.port)
    except OSError as exc:
        raise CliError(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}") from exc
    if server.host not in ("127.0.0.1", "localhost", "::1") and not args.token:
        err.write(
            "superstep: warning: the console has no token: anyone who reaches "
            f"{server.url} can start, answer and cancel runs\n"
        )
    out.write(f"superstep console: {server.url}  (Ctrl-C stops it)\n")
    out.flush()
    try:
        await server.serve_forever()
    except asyncio.CancelledError:
        pass
    finally:
        await server.close()
        if isinstance(storage, FileCheckpointStorage):
            storage.close()
    return EXIT_OK


def add_console_parser(sub: SubParsers) -> None:
    p = sub.add_parser(
        "console",
        help="serve the run console for in-process runs and a checkpoint folder",
        description=(
            "Serve the run console (a web page to start, watch, answer and debug runs) for "
            "the in-process runtime: the runs of a checkpoint folder written by 'superstep "
            "run --checkpoint-dir DIR', and runs of the --workflow workflows started from the "
            "page (their checkpoints go to DIR, or stay in memory). Prints the address to "
            "open; runs until interrupted."
        ),
    )
    p.add_argument(
        "--workflow",
        metavar="module:attr",
        action="append",
        help="a workflow (or a function returning one) to start runs of, or module:* for "
        "the workflow factories of a module (a run names one and its parameters); repeatable",
    )
    p.add_argument(
        "--checkpoint-dir",
        metavar="DIR",
        help="the checkpoint folder to show and to write the runs' checkpoints to",
    )
    p.add_argument("--create", action="store_true", help="create --checkpoint-dir when missing")
    p.add_argument(
        "--token",
        default=os.environ.get("SUPERSTEP_CONSOLE_TOKEN") or None,
        help="a token the page's API calls must carry (Authorization: Bearer; the page asks "
        "for it); default $SUPERSTEP_CONSOLE_TOKEN, else none",
    )
    p.add_argument(
        "--keep-runs",
        type=int,
        default=200,
        metavar="N",
        help="finished runs kept in memory, the oldest forgotten first (default 200; without "
        "--checkpoint-dir their checkpoints go with them)",
    )
    p.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free)"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; without --token keep it local)",
    )
    p.set_defaults(handler=console)
